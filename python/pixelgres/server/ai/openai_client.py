"""The OpenAI-compatible endpoint: configuration, the result cache, and the request runner.

Requests go through the official ``openai`` client on an asyncio loop run inside the backend,
with bounded concurrency, shared per-model rate limits (ratelimit.py), retries with backoff
and jitter, hard per-request timeouts, and cancellation (pg_cancel_backend, statement_timeout)
checked while waiting. openai_fns.py builds the requests; this module sends them.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import os
import urllib.parse

import plpy

from ..core import deps
from ..core.errors import MediaError
from ..media.store import host_allowed
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


def rate_limits(models: set) -> dict:
    rows = plpy.execute(_plan("limits", """
        SELECT model, requests_per_minute AS rpm, tokens_per_minute AS tpm
        FROM pxt.ai_rate_limits WHERE model = ANY($1) OR model = '*'""", ["text[]"]), [sorted(models)])
    by = {r["model"]: (r["rpm"], r["tpm"]) for r in rows}
    return {m: by.get(m, by.get("*", (None, None))) for m in models}


# --- result cache (pxt.ai_cache) ----------------------------------------------------------------
def canon(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def reraise_cancel(e) -> None:
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
        reraise_cancel(e)
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


def client_for(ep: Endpoint):
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


def check_number(v, default, lo, hi, name):
    if v is None:
        return default
    if not (lo <= v <= hi):
        raise ValueError(f"{name} must be between {lo} and {hi}, not {v}")
    return v


def request_options(args_timeout, args_retries):
    timeout = float(check_number(args_timeout, DEFAULT_TIMEOUT, 0.001, 3600, "timeout"))
    retries = int(check_number(args_retries, DEFAULT_MAX_RETRIES, 0, 100, "max_retries"))
    return timeout, retries


def pick_concurrency(values, default: int) -> int:
    """The smallest concurrency any call of the batch asked for, else the default."""
    given = [v for v in values if v is not None and 1 <= v <= MAX_CONCURRENCY]
    return min(given) if given else default


def scrubbed(ep: Endpoint, results: list) -> list:
    out = []
    for r in results:
        if isinstance(r, BaseException):
            msg = str(r)
            clean = ep.scrub(msg)
            if clean != msg:
                r = type(r)(clean) if isinstance(r, (OpenAIError, ValueError)) else OpenAIError(clean)
        out.append(r)
    return out


def fail_all(n: int, e: Exception, ep: Endpoint | None = None) -> list:
    if ep is not None:
        e = scrubbed(ep, [e])[0]
    return [e] * n
