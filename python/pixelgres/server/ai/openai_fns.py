"""OpenAI-compatible remote functions, evaluated in batches inside the backend.

``pxt.openai_chat_completions`` and ``pxt.openai_embeddings`` are *batched* functions: a
statement's distinct calls arrive here together (pixelgres.server.core.batch) and are sent with
the official ``openai`` client's AsyncOpenAI on an asyncio loop run inside the backend:

* bounded concurrency (default 32, the ``concurrency`` argument);
* per-model rate limits (pxt.ai_rate_limits, and what ``x-ratelimit-*`` headers announce),
  pauses on ``retry-after`` shared by every request of that model (ratelimit.py);
* retries with exponential backoff and jitter on 408/409/429/5xx, connection errors and
  timeouts; a hard per-request timeout, so a hung server cannot hang the backend;
* embeddings in multi-input requests (up to 256 inputs each);
* images in messages sent as data URIs, downscaled to ``image_max_side`` (default 2048);
* a result cache (pxt.ai_cache) keyed by function, endpoint, model, parameters and input,
  so a re-run, a recompute or a delete-and-reinsert does not pay twice;
* the statement stays cancellable (pg_cancel_backend, statement_timeout) while waiting.

A failed call is that row's error, whose message carries the HTTP status and the server's
message ("OpenAIError: HTTP 500: ..."); the API key is scrubbed from every message. The key
comes from ``pixelgres.openai_api_key`` or the server's OPENAI_API_KEY, never from table
data; the server's key is only sent to the endpoint the server itself is configured with.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import os
import struct
import urllib.parse

import plpy

from ..core import batch, deps
from ..core.errors import MediaError
from ..media.store import host_allowed, setting
from . import ratelimit

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_CONCURRENCY = 32
MAX_CONCURRENCY = 1024
DEFAULT_TIMEOUT = 120.0      # seconds, per request attempt
DEFAULT_MAX_RETRIES = 6
DEFAULT_IMAGE_MAX_SIDE = 2048
EMBED_CHUNK = 256            # inputs per embeddings request
EMBED_CHUNK_CHARS = 400_000  # and at most this much text (~100k tokens) per request
IMAGE_TOKENS = 765           # rate-limit estimate of one image (OpenAI: 512px tiles, high detail)
INTERRUPT_CHECK = 0.1        # seconds between checks for a cancel / statement_timeout
RETRY_STATUS = {408, 409, 429}
# where a pixelgres.openai_base_url value comes from that only an administrator controls
TRUSTED_SOURCES = {"default", "configuration file", "command line", "environment variable", "override"}


class OpenAIError(Exception):
    """A remote call that failed; str() is what a row records (HTTP status and message)."""


class QueryCanceled(BaseException):
    """The statement was canceled while requests were in flight. A BaseException so that the
    batch executor does not turn it into per-row errors: the statement must end."""


# PL/Python names exceptions of other modules "module.Class: msg"; users should read
# "OpenAIError: HTTP 500: ..." (and pxt.errors() type OpenAIError), so present them as builtins.
OpenAIError.__module__ = "builtins"
QueryCanceled.__module__ = "builtins"

_PLANS: dict = {}


def _plan(name: str, query: str, types=()):
    p = _PLANS.get(name)
    if p is None:
        p = _PLANS[name] = plpy.prepare(query, list(types))
    return p


# --- configuration ------------------------------------------------------------------------------
class Endpoint:
    """Where requests go and with which key; ``repr`` never shows the key."""

    def __init__(self, url: str, key: str, use_cache: bool, concurrency: int = DEFAULT_CONCURRENCY):
        self.url, self.key, self.use_cache, self.concurrency = url, key, use_cache, concurrency
        self.key_id = hashlib.sha256(key.encode()).hexdigest()[:16]

    def __repr__(self):
        return f"Endpoint({self.url!r})"

    def scrub(self, text: str) -> str:
        if self.key and len(self.key) >= 4:
            text = text.replace(self.key, "[api key]")
        return text


def endpoint() -> Endpoint:
    r = plpy.execute(_plan("endpoint", """
        SELECT current_setting('pixelgres.openai_base_url') AS url,
               (SELECT source FROM pg_catalog.pg_settings WHERE name = 'pixelgres.openai_base_url') AS source,
               current_setting('pixelgres.openai_api_key') AS key,
               coalesce((SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user), false) AS su,
               current_setting('pixelgres.ai_cache', true) AS cache,
               current_setting('pixelgres.ai_concurrency', true) AS concurrency"""))[0]
    url = (r["url"] or "").strip()
    trusted = not url or r["source"] in TRUSTED_SOURCES
    url = (url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise OpenAIError(f"pixelgres.openai_base_url {url!r} is not an http(s) URL")
    key = r["key"] or ""
    if not key:
        key = os.environ.get("OPENAI_API_KEY", "")
        if key and not trusted and not r["su"]:
            raise OpenAIError(
                "pixelgres.openai_base_url is set by this session (" + str(r["source"]) + "); the server's "
                "OPENAI_API_KEY is only sent to the endpoint the server is configured with: "
                "set pixelgres.openai_api_key as well")
    if not key:
        if url == DEFAULT_BASE_URL:
            raise OpenAIError("no API key: set pixelgres.openai_api_key or the server's OPENAI_API_KEY")
        key = "EMPTY"  # local OpenAI-compatible servers (vLLM, Ollama...) often need none
    if not trusted:  # a URL a user chose: the same host rules as media URLs
        try:
            host_allowed(parsed.hostname)
        except MediaError as e:
            raise OpenAIError(f"pixelgres.openai_base_url: {e}")
    # optional settings (defined by the extension's library when present): a session-wide cache
    # switch and default concurrency
    cache = (r["cache"] or "on").lower() not in ("off", "false", "0", "no")
    try:
        concurrency = int(r["concurrency"]) if r["concurrency"] else DEFAULT_CONCURRENCY
    except ValueError:
        concurrency = DEFAULT_CONCURRENCY
    return Endpoint(url, key, cache, max(1, min(MAX_CONCURRENCY, concurrency)))


def _rate_limits(models: set) -> dict:
    rows = plpy.execute(_plan("limits", """
        SELECT model, requests_per_minute AS rpm, tokens_per_minute AS tpm
        FROM pxt.ai_rate_limits WHERE model = ANY($1) OR model = '*'""", ["text[]"]), [sorted(models)])
    by = {r["model"]: (r["rpm"], r["tpm"]) for r in rows}
    return {m: by.get(m, by.get("*", (None, None))) for m in models}


# --- result cache (pxt.ai_cache) ----------------------------------------------------------------
def _canon(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _reraise_cancel(e) -> None:
    """A canceled statement must end, not become rows' errors."""
    if getattr(e, "sqlstate", None) == "57014":
        raise QueryCanceled(str(e.args[0] if e.args else e))


def cache_get(keys: list[str]) -> dict:
    if not keys:
        return {}
    rows = plpy.execute(_plan("cache_get", """
        SELECT key, result::text AS result FROM pxt.ai_cache
        WHERE owner = current_user AND key = ANY($1)""", ["text[]"]), [keys])
    found = {r["key"]: r["result"] for r in rows}
    if found:  # hit counters: skip rows another session is updating rather than wait for it
        plpy.execute(_plan("cache_hit", """
            UPDATE pxt.ai_cache c SET hits = c.hits + 1, last_hit_at = now()
            WHERE (c.owner, c.key) IN (SELECT owner, key FROM pxt.ai_cache
                                       WHERE owner = current_user AND key = ANY($1) FOR UPDATE SKIP LOCKED)""",
                           ["text[]"]), [list(found)])
    return found


def cache_put(entries: list[tuple]) -> None:
    """entries: (key, func, model, params_json, input_hash, result_json); replaces older results.
    A failure to write the cache is a warning, not the rows' error (they have their results)."""
    entries = list({e[0]: e for e in entries}.values())  # one row per key and statement
    if not entries:
        return
    cols = list(zip(*entries))
    try:
        _cache_insert(cols)
    except plpy.SPIError as e:
        _reraise_cancel(e)
        plpy.warning(f"pixelgres: could not store AI results in pxt.ai_cache: {e}")


def _cache_insert(cols) -> None:
    plpy.execute(_plan("cache_put", """
        INSERT INTO pxt.ai_cache AS c (key, func, model, params, input_hash, result)
        SELECT k, f, m, p::jsonb, i, r::jsonb FROM unnest($1::text[], $2::text[], $3::text[], $4::text[],
                                                         $5::text[], $6::text[]) AS u(k, f, m, p, i, r)
        ON CONFLICT (owner, key) DO UPDATE SET result = excluded.result, created_at = now()""",
                         ["text[]"] * 6), [list(c) for c in cols])


# --- running requests ---------------------------------------------------------------------------
_LOOP = None
_CLIENTS: dict = {}  # (url, key id) -> AsyncOpenAI bound to _LOOP (keeps connections alive)


RESOLVER_THREADS = 4


def _resolver_pool():
    """The loop's default executor (it runs getaddrinfo), its threads started with every signal
    blocked: a process-directed signal (cancel, statement_timeout, die) must reach the
    backend's main thread, never a helper thread. All threads are started here, at once, so
    the pool never spawns one later from a thread with signals unblocked."""
    import signal
    import threading
    from concurrent.futures import ThreadPoolExecutor

    old = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
    try:
        pool = ThreadPoolExecutor(max_workers=RESOLVER_THREADS, thread_name_prefix="pixelgres-resolver")
        barrier = threading.Barrier(RESOLVER_THREADS + 1)
        started = [pool.submit(barrier.wait) for _ in range(RESOLVER_THREADS)]
        barrier.wait()
        for f in started:
            f.result()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
    return pool


def _loop():
    """One event loop per backend, reused by every batch, so clients keep their connections."""
    global _LOOP
    if _LOOP is None or _LOOP.is_closed():
        _LOOP = asyncio.new_event_loop()
        _LOOP.set_default_executor(_resolver_pool())
        _CLIENTS.clear()
    return _LOOP


def _reset_loop() -> None:
    global _LOOP
    loop, _LOOP = _LOOP, None
    _CLIENTS.clear()
    if loop is not None and not loop.is_closed():
        try:
            pool = loop._default_executor
            loop.close()
            if pool is not None:
                pool.shutdown(wait=False)
        except Exception:
            pass


def _client(ep: Endpoint):
    """(AsyncOpenAI client, the httpx response class to ask ``client.post`` for).

    Requests go through ``client.post(path, cast_to=<httpx Response>)``, the client's documented
    way to send a raw request: auth, headers and errors as usual, but neither the typed
    transform of the request (which walks every message) nor a pydantic model of the
    response, which we return as JSON anyway: both cost more CPU than the request itself."""
    openai = deps.need("openai")
    try:  # the HTTP library this openai release is built on
        import httpx2 as http
    except ImportError:
        import httpx as http
    _loop()  # a new loop drops the clients bound to the old one: make sure it exists first
    k = (ep.url, ep.key_id)
    c = _CLIENTS.get(k)
    if c is None:
        if len(_CLIENTS) >= 8:  # rotated keys or many endpoints: forget the oldest
            _CLIENTS.pop(next(iter(_CLIENTS)))
        c = _CLIENTS[k] = openai.AsyncOpenAI(api_key=ep.key, base_url=ep.url, max_retries=0,
                                             timeout=DEFAULT_TIMEOUT)
    return c, http.Response


def _error_message(e) -> str:
    body = getattr(e, "body", None)
    msg = None
    if isinstance(body, dict):
        msg = body.get("message") or body.get("error")
        if isinstance(msg, dict):
            msg = msg.get("message")
    if not msg:
        resp = getattr(e, "response", None)
        try:
            msg = resp.text.strip() if resp is not None else ""
        except Exception:
            msg = ""
        msg = msg or getattr(e, "message", "") or str(e)
    msg = " ".join(str(msg).split())
    return msg[:1000]


class Runner:
    """One batch's requests: a semaphore, per-model limiters, retry policy, interrupt checks."""

    def __init__(self, ep: Endpoint, concurrency: int):
        self.ep = ep
        self.concurrency = max(1, min(MAX_CONCURRENCY, concurrency))
        self.sem = None
        self.in_flight = 0
        self.max_in_flight = 0

    def run(self, coros: list) -> list:
        """Run coroutines (each returns its result or an exception) to completion."""
        if not coros:
            return []
        loop = _loop()
        try:
            return loop.run_until_complete(self._all(coros))
        except QueryCanceled:
            raise
        except BaseException:
            _reset_loop()
            raise

    async def _all(self, coros: list) -> list:
        self.sem = asyncio.Semaphore(self.concurrency)
        tasks = [asyncio.ensure_future(c) for c in coros]
        everything = asyncio.gather(*tasks, return_exceptions=True)
        watch = asyncio.ensure_future(self._watch())
        try:
            await asyncio.wait({everything, watch}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not everything.done():
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            watch.cancel()
            await asyncio.gather(watch, return_exceptions=True)
        if watch.done() and not watch.cancelled() and watch.exception() is not None:
            raise watch.exception()
        return everything.result()

    async def _watch(self) -> None:
        """Let the backend see a cancel request or statement_timeout while we wait on sockets."""
        plan = _plan("interrupts", "SELECT pg_catalog.pg_sleep(0)")
        while True:
            await asyncio.sleep(INTERRUPT_CHECK)
            try:
                plpy.execute(plan)
            except plpy.SPIError as e:  # 57014, or the backend is being terminated: stop either way
                raise QueryCanceled(str(e.args[0] if e.args else e))

    async def request(self, limiter, send, tokens: float, timeout: float, max_retries: int):
        """``send()`` -> awaitable raw response; returns the response's JSON or an OpenAIError."""
        openai = deps.need("openai")

        attempt = 0
        while True:
            delay = None
            async with self.sem:
                await limiter.acquire(tokens)
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
                try:
                    raw = await asyncio.wait_for(send(), timeout + 1.0)  # hard bound over httpx's own
                    data = json.loads(raw.content)
                    limiter.observe(raw.headers)
                    return data
                except openai.APIStatusError as e:
                    headers = e.response.headers
                    limiter.observe(headers)
                    status = e.status_code
                    err = OpenAIError(f"HTTP {status}: {_error_message(e)}")
                    should = headers.get("x-should-retry")
                    retry = should == "true" or (should != "false" and (status in RETRY_STATUS or status >= 500))
                    delay = ratelimit.retry_after(headers)
                    if status == 429:
                        limiter.pause(delay if delay is not None else ratelimit.backoff(attempt))
                except (openai.APITimeoutError, asyncio.TimeoutError):
                    err, retry = OpenAIError(f"request timed out after {timeout:g} s"), True
                except openai.APIConnectionError as e:
                    cause = e.__cause__ or e.__context__
                    detail = f"{type(cause).__name__}: {cause}" if cause else str(e)
                    err, retry = OpenAIError(f"connection error: {' '.join(detail.split())[:500]}"), True
                except ValueError as e:  # JSON
                    err, retry = OpenAIError(f"invalid JSON in the response: {e}"), False
                except asyncio.CancelledError:
                    raise
                except Exception as e:
                    err, retry = OpenAIError(f"{type(e).__name__}: {e}"), False
                finally:
                    self.in_flight -= 1
            if not retry or attempt >= max_retries:
                if attempt:
                    err = OpenAIError(f"{err} (after {attempt + 1} attempts)")
                return err
            await ratelimit.CLOCK.sleep(delay if delay is not None else ratelimit.backoff(attempt))
            attempt += 1


def _num(v, default, lo, hi, name):
    if v is None:
        return default
    if not (lo <= v <= hi):
        raise ValueError(f"{name} must be between {lo} and {hi}, not {v}")
    return v


def _options(args_timeout, args_retries):
    timeout = float(_num(args_timeout, DEFAULT_TIMEOUT, 0.001, 3600, "timeout"))
    retries = int(_num(args_retries, DEFAULT_MAX_RETRIES, 0, 100, "max_retries"))
    return timeout, retries


def _concurrency(values, default: int) -> int:
    """The smallest concurrency any call of the batch asked for, else the default."""
    given = [v for v in values if v is not None and 1 <= v <= MAX_CONCURRENCY]
    return min(given) if given else default


def _scrubbed(ep: Endpoint, results: list) -> list:
    out = []
    for r in results:
        if isinstance(r, BaseException):
            msg = str(r)
            clean = ep.scrub(msg)
            if clean != msg:
                r = type(r)(clean) if isinstance(r, (OpenAIError, ValueError)) else OpenAIError(clean)
        out.append(r)
    return out


def _fail_all(n: int, e: Exception, ep: Endpoint | None = None) -> list:
    if ep is not None:
        e = _scrubbed(ep, [e])[0]
    return [e] * n


# --- chat completions ---------------------------------------------------------------------------
def _fit_data_uri(uri: str, max_side: int) -> str:
    """Downscale an image data URI whose larger side exceeds ``max_side``."""
    header, sep, payload = uri.partition(",")
    if not sep or not header.startswith("data:image/") or not header.endswith(";base64"):
        return uri
    from ..media import image  # lazy: Pillow loads for image inputs only

    try:
        data = base64.b64decode(payload, validate=False)
        im = image.Image.open(io.BytesIO(data))
        w, h = im.size
    except Exception as e:
        raise ValueError(f"image data URI in messages does not decode: {type(e).__name__}: {e}")
    if max(w, h) <= max_side:
        return uri
    limit = int(setting("pixelgres.max_image_pixels"))
    if w * h > limit:
        raise ValueError(f"image in messages has {w}x{h} pixels, more than pixelgres.max_image_pixels ({limit})")
    if im.format == "JPEG":
        im.draft("RGB", (max_side, max_side))
    im = image.ImageOps.exif_transpose(im)
    im.thumbnail((max_side, max_side))
    fmt = "JPEG" if im.mode in ("RGB", "L") else "PNG"
    buf = io.BytesIO()
    im.save(buf, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return f"data:{image.Image.MIME[fmt]};base64,{base64.b64encode(buf.getvalue()).decode()}"


def _prepare_messages(raw: str, max_side: int) -> tuple[list, int, int]:
    """Parsed messages with every image as an {"url": ...} data URI (or http(s) URL) no larger
    than ``max_side``; also (text characters, images) for the rate-limit estimate."""
    try:
        messages = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError as e:
        raise ValueError(f"messages is not valid JSON: {e}")
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages) or not messages:
        raise ValueError("messages must be a non-empty JSON array of message objects")
    chars = images = 0
    for m in messages:
        content = m.get("content")
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            for part in content:
                if not isinstance(part, dict):
                    continue
                if "image_url" in part:
                    iu = part["image_url"]
                    iu = {"url": iu} if isinstance(iu, str) else dict(iu or {})
                    url = iu.get("url")
                    if not isinstance(url, str) or not url:
                        raise ValueError("image_url without a url in messages (is the image NULL?)")
                    if url.startswith("data:"):
                        if max_side > 0:
                            iu["url"] = _fit_data_uri(url, max_side)
                    elif not url.startswith(("http://", "https://")):  # a media reference
                        from ..media import image  # lazy: Pillow, as above

                        try:
                            iu["url"] = image.data_uri(url, max_side if max_side > 0 else None)
                        except MediaError as e:
                            raise ValueError(f"image in messages: {e}")
                    part["image_url"] = iu
                    images += 1
                elif isinstance(part.get("text"), str):
                    chars += len(part["text"])
    return messages, chars, images


class _Call:
    __slots__ = ("index", "model", "body", "key", "params", "input_hash", "tokens", "timeout", "retries",
                 "use_cache", "result")


@batch.batched("openai_chat_completions")
def chat_completions(items: list[tuple]) -> list:
    """items: (messages, model, temperature, max_tokens, response_format, params,
    image_max_side, concurrency, timeout, max_retries, use_cache)."""
    try:
        ep = endpoint()
    except Exception as e:
        return _fail_all(len(items), e)
    out: list = [None] * len(items)
    calls = []
    for i, (messages, model, temperature, max_tokens, response_format, params, max_side, _c,
            timeout, retries, use_cache) in enumerate(items):
        try:
            c = _Call()
            c.index, c.model = i, model
            c.timeout, c.retries = _options(timeout, retries)
            _num(_c, None, 1, MAX_CONCURRENCY, "concurrency")
            side = DEFAULT_IMAGE_MAX_SIDE if max_side is None else int(max_side)
            msgs, chars, images = _prepare_messages(messages, side)
            opts = json.loads(params) if params else {}
            if not isinstance(opts, dict):
                raise ValueError("params must be a JSON object of request fields")
            for name, v in (("temperature", temperature), ("max_tokens", max_tokens),
                            ("response_format", json.loads(response_format) if response_format else None)):
                if v is not None:
                    opts[name] = v
            for reserved in ("model", "messages", "stream"):
                if reserved in opts:
                    raise ValueError(f"params may not set {reserved!r}")
            c.body = (msgs, opts)
            c.params = _canon({"endpoint": ep.url, **opts})
            c.input_hash = _hash(_canon(msgs))
            c.key = _hash(_canon(["chat.completions", ep.url, model, opts, c.input_hash]))
            c.tokens = chars / 4 + images * IMAGE_TOKENS + (opts.get("max_tokens") or opts.get("max_completion_tokens") or 0)
            c.use_cache = use_cache is not False and ep.use_cache
            calls.append(c)
        except Exception as e:
            out[i] = e
    try:
        hits = cache_get([c.key for c in calls if c.use_cache])
    except plpy.SPIError as e:
        _reraise_cancel(e)
        return _fail_all(len(items), OpenAIError(f"reading the result cache failed: {e}"))
    todo, same = [], {}  # calls to send; calls identical to one being sent (same key)
    for c in calls:
        if c.key in hits and c.use_cache:
            out[c.index] = hits[c.key]
        elif c.key in same:
            same[c.key].append(c)
        else:
            same[c.key] = []
            todo.append(c)
    if todo:
        runner = Runner(ep, _concurrency([it[7] for it in items], ep.concurrency))
        limits = _rate_limits({c.model for c in todo})
        client, raw_response = _client(ep)

        def one(c: _Call):
            lim = ratelimit.limiter(ep.url, c.model)
            lim.configure(*limits[c.model])
            msgs, opts = c.body

            def send():
                return client.post("/chat/completions", cast_to=raw_response, options={"timeout": c.timeout},
                                   body={**opts, "model": c.model, "messages": msgs})

            async def go():
                r = await runner.request(lim, send, c.tokens, c.timeout, c.retries)
                if not isinstance(r, BaseException):
                    if not isinstance(r, dict) or not isinstance(r.get("choices"), list):
                        return OpenAIError("the response has no choices: " + _canon(r)[:300])
                    usage = r.get("usage") if isinstance(r.get("usage"), dict) else {}
                    lim.settle(c.tokens, usage.get("total_tokens"))
                return r
            return go()

        results = _scrubbed(ep, runner.run([one(c) for c in todo]))
        fresh = []
        for c, r in zip(todo, results):
            r = r if isinstance(r, BaseException) else _canon(r)
            for d in [c] + same[c.key]:
                out[d.index] = r
            if not isinstance(r, BaseException) and any(d.use_cache for d in [c] + same[c.key]):
                fresh.append((c.key, "chat.completions", c.model, c.params, c.input_hash, r))
        cache_put(fresh)
    return out


# --- embeddings ---------------------------------------------------------------------------------
def _vector_text(values) -> str:
    return "[" + ",".join(format(float(v), ".9g") for v in values) + "]"


def _decode_embedding(e) -> list:
    if isinstance(e, str):  # encoding_format=base64: little-endian float32
        raw = base64.b64decode(e)
        return list(struct.unpack(f"<{len(raw) // 4}f", raw))
    if not isinstance(e, list) or not e:
        raise OpenAIError("the response has an embedding that is not a list of numbers")
    return e


@batch.batched("openai_embeddings")
def embeddings(items: list[tuple]) -> list:
    """items: (input, model, dimensions, params, concurrency, timeout, max_retries, use_cache)."""
    try:
        ep = endpoint()
    except Exception as e:
        return _fail_all(len(items), e)
    out: list = [None] * len(items)
    groups: dict = {}  # request options -> list of (index, text, key, use_cache)
    for i, (text, model, dims, params, _c, timeout, retries, use_cache) in enumerate(items):
        try:
            if not text:
                raise ValueError("cannot embed an empty string")
            t, r = _options(timeout, retries)
            _num(_c, None, 1, MAX_CONCURRENCY, "concurrency")
            opts = json.loads(params) if params else {}
            if not isinstance(opts, dict):
                raise ValueError("params must be a JSON object of request fields")
            if dims is not None:
                if dims < 1:
                    raise ValueError(f"dimensions must be positive, not {dims}")
                opts["dimensions"] = dims
            for reserved in ("model", "input", "encoding_format"):
                if reserved in opts:
                    raise ValueError(f"params may not set {reserved!r}")
            key = _hash(_canon(["embeddings", ep.url, model, opts, _hash(text)]))
            g = groups.setdefault((model, _canon(opts), t, r), [])
            g.append((i, text, key, use_cache is not False and ep.use_cache))
        except Exception as e:
            out[i] = e
    try:
        hits = cache_get([k for g in groups.values() for (_i, _t, k, use) in g if use])
    except plpy.SPIError as e:
        _reraise_cancel(e)
        return _fail_all(len(items), OpenAIError(f"reading the result cache failed: {e}"))
    chunks = []  # (model, opts, timeout, retries, [(index, text, key, use_cache)])
    for (model, opts_json, t, r), members in groups.items():
        todo = []
        for i, text, key, use in members:
            if use and key in hits:
                out[i] = _vector_text(_decode_embedding(json.loads(hits[key])))
            else:
                todo.append((i, text, key, use))
        chunk, size = [], 0
        for m in todo:
            if chunk and (len(chunk) >= EMBED_CHUNK or size + len(m[1]) > EMBED_CHUNK_CHARS):
                chunks.append((model, opts_json, t, r, chunk))
                chunk, size = [], 0
            chunk.append(m)
            size += len(m[1])
        if chunk:
            chunks.append((model, opts_json, t, r, chunk))
    if not chunks:
        return out
    runner = Runner(ep, _concurrency([it[4] for it in items], ep.concurrency))
    limits = _rate_limits({c[0] for c in chunks})
    client, raw_response = _client(ep)

    async def embed(model, opts, t, r, members, lim) -> list:
        """Results for ``members``; a 400/413/422 on several inputs is bisected once per level
        so that one bad input fails its own row, not its whole chunk."""
        texts = [m[1] for m in members]

        def send():
            return client.post("/embeddings", cast_to=raw_response, options={"timeout": t},
                               body={**opts, "model": model, "input": texts, "encoding_format": "float"})

        res = await runner.request(lim, send, sum(len(x) for x in texts) / 4, t, r)
        if isinstance(res, OpenAIError):
            if len(members) > 1 and str(res).startswith(("HTTP 400", "HTTP 413", "HTTP 422")):
                half = len(members) // 2
                a, b = await asyncio.gather(embed(model, opts, t, r, members[:half], lim),
                                            embed(model, opts, t, r, members[half:], lim))
                return a + b
            return [res] * len(members)
        try:
            data = res.get("data") if isinstance(res, dict) else None
            if not isinstance(data, list) or len(data) != len(members):
                raise OpenAIError(f"the response has {len(data) if isinstance(data, list) else 'no'} "
                                  f"embeddings for {len(members)} inputs")
            data = sorted(data, key=lambda d: d.get("index", 0))
            vecs = [_decode_embedding(d.get("embedding")) for d in data]
        except OpenAIError as e:
            return [e] * len(members)
        usage = res.get("usage") if isinstance(res.get("usage"), dict) else {}
        lim.settle(sum(len(x) for x in texts) / 4, usage.get("total_tokens"))
        return vecs

    coros = []
    for model, opts_json, t, r, members in chunks:
        lim = ratelimit.limiter(ep.url, model)
        lim.configure(*limits[model])
        coros.append(embed(model, json.loads(opts_json), t, r, members, lim))
    results = runner.run(coros)
    fresh = []
    for (model, opts_json, _t, _r, members), res in zip(chunks, results):
        if isinstance(res, BaseException):
            res = [res] * len(members)
        for (i, text, key, use), v in zip(members, _scrubbed(ep, res)):
            if isinstance(v, BaseException):
                out[i] = v
                continue
            out[i] = _vector_text(v)
            if use:
                packed = base64.b64encode(struct.pack(f"<{len(v)}f", *v)).decode()
                fresh.append((key, "embeddings", model, _canon({"endpoint": ep.url, **json.loads(opts_json)}),
                              _hash(text), json.dumps(packed)))
    cache_put(fresh)
    return out

