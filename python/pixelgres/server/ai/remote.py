"""Remote model APIs, whatever the provider: where requests go, the result cache, the runner.

Every provider module (openai_client, providers/*) states what differs — settings, client,
wire format, how its client reports a failure — and gets the rest from here: bounded
concurrency on one asyncio loop per backend, shared per-model rate limits (ratelimit.py),
retries with backoff and jitter, hard per-request timeouts, cancellation (pg_cancel_backend,
statement_timeout) seen while waiting, and the per-role result cache ``pxt.ai_cache``.
"""
from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import importlib
import json
import os
import urllib.parse
from dataclasses import dataclass
from typing import NamedTuple

import plpy

from ..core.errors import MediaError
from ..core.spi import on_replica
from ..core.threads import quiet_pool
from ..media.store import host_allowed
from . import ratelimit

DEFAULT_CONCURRENCY = 32
MAX_CONCURRENCY = 1024
DEFAULT_TIMEOUT = 120.0      # seconds, per request attempt
DEFAULT_MAX_RETRIES = 6
INTERRUPT_CHECK = 0.1        # seconds between checks for a cancel / statement_timeout
RETRY_STATUS = {408, 409, 429}
# where a pixelgres.<provider>_base_url value comes from that only an administrator controls
TRUSTED_SOURCES = {"default", "configuration file", "command line", "environment variable", "override"}


class RemoteError(Exception):
    """A remote call that failed; str() is what a row records. ``status``: the HTTP status."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class QueryCanceled(BaseException):
    """The statement was canceled while requests were in flight. A BaseException so that the
    batch executor does not turn it into per-row errors: the statement must end."""


# PL/Python names exceptions of other modules "module.Class: msg"; users read the provider's
# error class ("AnthropicError: HTTP 529: ...", and pxt.errors() type AnthropicError).
RemoteError.__module__ = "builtins"
QueryCanceled.__module__ = "builtins"


def error_class(name: str) -> type:
    cls = type(name, (RemoteError,), {"__module__": "builtins"})
    return cls


_PLANS: dict = {}


def plan(name: str, query: str, types=()):
    p = _PLANS.get(name)
    if p is None:
        p = _PLANS[name] = plpy.prepare(query, list(types))
    return p


# --- configuration ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Provider:
    """One API's settings: ``pixelgres.<name>_base_url`` / ``_api_key``, then the server's
    environment, then the public endpoint."""
    name: str                  # settings prefix and cache namespace: 'openai', 'anthropic', ...
    default_url: str
    env_url: tuple = ()        # server environment variables for the URL, first set wins
    env_key: tuple = ()
    key_required: bool = True  # False: local servers (Ollama) need none
    error: type = RemoteError

    @property
    def url_setting(self) -> str:
        return f"pixelgres.{self.name}_base_url"

    @property
    def key_setting(self) -> str:
        return f"pixelgres.{self.name}_api_key"


class Endpoint:
    """Where requests go and with which key; ``repr`` never shows the key."""

    def __init__(self, provider: Provider, url: str, key: str, use_cache: bool,
                 concurrency: int = DEFAULT_CONCURRENCY):
        self.provider, self.url, self.key, self.use_cache, self.concurrency = provider, url, key, use_cache, concurrency
        self.key_id = hashlib.sha256(key.encode()).hexdigest()[:16]

    def __repr__(self):
        return f"Endpoint({self.provider.name}, {self.url!r})"

    def scrub(self, text: str) -> str:
        if self.key and len(self.key) >= 4:
            text = text.replace(self.key, "[api key]")
        return text

    def wire(self) -> dict:
        """What the model server needs to call this endpoint (model_client -> model_server)."""
        p = self.provider
        return {"cls": (type(self).__module__, type(self).__qualname__),
                "provider": {f.name: getattr(p, f.name) for f in dataclasses.fields(p) if f.name != "error"},
                "error": p.error.__name__, "attrs": {k: v for k, v in vars(self).items() if k != "provider"}}


def endpoint_from_wire(w: dict) -> Endpoint:
    """The model server's copy of an endpoint a backend resolved (Endpoint.wire)."""
    module, name = w["cls"]
    if not (module == __name__ or module.startswith(__package__ + ".")):
        raise ValueError(f"not an endpoint class: {module}.{name}")
    cls = getattr(importlib.import_module(module), name)
    if not (isinstance(cls, type) and issubclass(cls, Endpoint)):
        raise ValueError(f"not an endpoint class: {module}.{name}")
    ep = cls.__new__(cls)
    ep.__dict__.update(w["attrs"])
    ep.provider = Provider(**w["provider"], error=error_class(w["error"]))
    return ep


def result_wire(r):
    """A result or error as plain data: exception classes made at run time do not pickle."""
    if isinstance(r, BaseException):
        return ("error", type(r).__name__, str(r), getattr(r, "status", None))
    if isinstance(r, list) and any(isinstance(x, BaseException) for x in r):
        return ("list", [result_wire(x) for x in r])
    return ("ok", r)


def result_from_wire(ep: Endpoint, w):
    """``result_wire``'s value back, errors in the endpoint's own class where it is theirs."""
    if w[0] == "ok":
        return w[1]
    if w[0] == "list":
        return [result_from_wire(ep, x) for x in w[1]]
    _, name, message, status = w
    if name == "ValueError":
        return ValueError(message)
    if name == ep.provider.error.__name__:
        return ep.provider.error(message, status)
    return error_class(name)(message, status)


def check_url(p: Provider, url: str, what: str) -> urllib.parse.ParseResult:
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise p.error(f"{what} {url!r} is not an http(s) URL")
    return parsed


def endpoint(p: Provider, base_url: str | None = None) -> Endpoint:
    """The endpoint of ``p`` for this session. A URL a user chose (a session setting, or
    ``base_url`` in a call, which a table's owner wrote for everyone who inserts) must pass
    the media host rules, and the server's own key is never sent to it; a call's ``base_url``
    gets no key at all unless it is the configured URL (a local server needs none)."""
    r = plpy.execute(plan("endpoint", """
        SELECT current_setting($1, true) AS url,
               (SELECT source FROM pg_catalog.pg_settings WHERE name = $1) AS source,
               current_setting($2, true) AS key,
               coalesce((SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user), false) AS su,
               current_setting('pixelgres.ai_cache', true) AS cache,
               current_setting('pixelgres.ai_concurrency', true) AS concurrency""", ["text", "text"]),
        [p.url_setting, p.key_setting])[0]
    url = (r["url"] or "").strip()
    trusted = not url or r["source"] in TRUSTED_SOURCES
    env_url = next((os.environ[v] for v in p.env_url if os.environ.get(v)), "")
    url = (url or env_url or p.default_url).rstrip("/")
    parsed = check_url(p, url, p.url_setting)
    key = r["key"] or ""
    if not key:
        key = next((os.environ[v] for v in p.env_key if os.environ.get(v)), "")
        if key and not trusted and not r["su"]:
            raise p.error(
                f"{p.url_setting} is set by this session ({r['source']}); the server's "
                f"{' or '.join(p.env_key)} is only sent to the endpoint the server is configured with: "
                f"set {p.key_setting} as well")
    if base_url is not None and base_url.strip().rstrip("/") != url:
        url = base_url.strip().rstrip("/")
        parsed = check_url(p, url, "base_url")
        key, trusted = "", False
    if not key:
        if p.key_required and url == p.default_url:
            raise p.error(f"no API key: set {p.key_setting} or the server's {' or '.join(p.env_key)}")
        key = "EMPTY"  # local servers (vLLM, Ollama, llama.cpp...) often need none
    if not trusted:
        try:
            host_allowed(parsed.hostname)
        except MediaError as e:
            raise p.error(f"{p.url_setting if base_url is None else 'base_url'}: {e}")
    cache = (r["cache"] or "on").lower() not in ("off", "false", "0", "no")
    try:
        concurrency = int(r["concurrency"]) if r["concurrency"] else DEFAULT_CONCURRENCY
    except ValueError:
        concurrency = DEFAULT_CONCURRENCY
    return Endpoint(p, url, key, cache, max(1, min(MAX_CONCURRENCY, concurrency)))


def rate_limits(models: set) -> dict:
    rows = plpy.execute(plan("limits", """
        SELECT model, requests_per_minute AS rpm, tokens_per_minute AS tpm
        FROM pxt.ai_rate_limits WHERE model = ANY($1) OR model = '*'""", ["text[]"]), [sorted(models)])
    by = {r["model"]: (r["rpm"], r["tpm"]) for r in rows}
    return {m: by.get(m, by.get("*", (None, None))) for m in models}


def limiter(ep: Endpoint, model: str, limits: dict) -> ratelimit.RateLimiter:
    lim = ratelimit.limiter(ep.url, model)
    lim.configure(*limits[model])
    return lim


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
    rows = plpy.execute(plan("cache_get", """
        SELECT key, result::text AS result FROM pxt.ai_cache
        WHERE owner = current_user AND key = ANY($1)""", ["text[]"]), [keys])
    found = {r["key"]: r["result"] for r in rows}
    if found and not on_replica():  # hit counters (a replica reads the cache, never writes it): skip rows another session is updating rather than wait for it
        plpy.execute(plan("cache_hit", """
            UPDATE pxt.ai_cache c SET hits = c.hits + 1, last_hit_at = now()
            WHERE (c.owner, c.key) IN (SELECT owner, key FROM pxt.ai_cache
                                       WHERE owner = current_user AND key = ANY($1) FOR UPDATE SKIP LOCKED)""",
                          ["text[]"]), [list(found)])
    return found


def cache_put(entries: list[tuple]) -> None:
    """entries: (key, func, model, params_json, input_hash, result_json); replaces older results.
    A failure to write the cache is a warning, not the rows' error (they have their results)."""
    entries = list({e[0]: e for e in entries}.values())  # one row per key and statement
    if not entries or on_replica():  # a replica computes, and leaves caching to its primary
        return
    cols = list(zip(*entries))
    try:
        plpy.execute(plan("cache_put", """
            INSERT INTO pxt.ai_cache AS c (key, func, model, params, input_hash, result)
            SELECT k, f, m, p::jsonb, i, r::jsonb FROM unnest($1::text[], $2::text[], $3::text[], $4::text[],
                                                             $5::text[], $6::text[]) AS u(k, f, m, p, i, r)
            ON CONFLICT (owner, key) DO UPDATE SET result = excluded.result, created_at = now()""",
                          ["text[]"] * 6), [list(c) for c in cols])
    except plpy.SPIError as e:
        reraise_cancel(e)
        plpy.warning(f"pixelgres: could not store AI results in pxt.ai_cache: {e}")


# --- the loop and its clients -------------------------------------------------------------------
_LOOP = None
_CLIENTS: dict = {}  # (provider, url, key id) -> a client bound to _LOOP (keeps connections alive)
RESOLVER_THREADS = 4


def loop():
    """One event loop per backend, reused by every batch, so clients keep their connections.
    Its default executor runs getaddrinfo."""
    global _LOOP
    if _LOOP is None or _LOOP.is_closed():
        _LOOP = asyncio.new_event_loop()
        _LOOP.set_default_executor(quiet_pool(RESOLVER_THREADS, "pixelgres-resolver"))
        _CLIENTS.clear()
    return _LOOP


def reset_loop() -> None:
    global _LOOP
    old, _LOOP = _LOOP, None
    _CLIENTS.clear()
    if old is not None and not old.is_closed():
        try:
            pool = old._default_executor
            old.close()
            if pool is not None:
                pool.shutdown(wait=False)
        except Exception as e:  # a loop that cannot close is dropped all the same
            plpy.debug(f"pixelgres: closing the AI loop: {e}")


def client(ep: Endpoint, make):
    """The client ``make(ep)`` built once per endpoint and key on the current loop."""
    loop()  # a new loop drops the clients bound to the old one: make sure it exists first
    k = (ep.provider.name, ep.url, ep.key_id)
    c = _CLIENTS.get(k)
    if c is None:
        if len(_CLIENTS) >= 16:  # rotated keys or many endpoints: forget the oldest
            _CLIENTS.pop(next(iter(_CLIENTS)))
        c = _CLIENTS[k] = make(ep)
    return c


# --- running requests ---------------------------------------------------------------------------
class Failure(NamedTuple):
    """How a provider's client reported a failed attempt (message None: it timed out)."""
    message: str | None
    status: int | None = None
    headers: object = None     # the response's headers, for retry-after and rate-limit hints
    retry: bool = False


def http_failure(status: int, message: str, headers=None) -> Failure:
    """The usual rule: retry 408/409/429 and 5xx unless the server says otherwise."""
    should = headers.get("x-should-retry") if headers is not None else None
    retry = should == "true" or (should != "false" and (status in RETRY_STATUS or status >= 500))
    return Failure(f"HTTP {status}: {' '.join(str(message).split())[:1000]}", status, headers, retry)


TIMED_OUT = Failure(None, retry=True)


def connection_failure(e: BaseException) -> Failure:
    cause = e.__cause__ or e.__context__
    detail = f"{type(cause).__name__}: {cause}" if cause else f"{type(e).__name__}: {e}"
    return Failure(f"connection error: {' '.join(detail.split())[:500]}", retry=True)


def transport_failure(e: BaseException) -> Failure | None:
    """A timeout or connection error of httpx / httpx2, which several clients let through."""
    import sys

    for name in ("httpx", "httpx2"):
        http = sys.modules.get(name)
        if http is None:
            continue
        if isinstance(e, http.TimeoutException):
            return TIMED_OUT
        if isinstance(e, http.TransportError):
            return connection_failure(e) if (e.__cause__ or e.__context__) else Failure(
                f"connection error: {type(e).__name__}: {' '.join(str(e).split())[:500]}", retry=True)
    return None


class Runner:
    """One batch's requests to one endpoint: a semaphore, retry policy, interrupt checks.

    ``classify(exception) -> Failure | None`` is the provider's reading of its client's
    errors (None: not a failure it knows, reported as is and not retried)."""

    def __init__(self, ep: Endpoint, concurrency: int, classify):
        self.ep, self.classify = ep, classify
        self.concurrency = max(1, min(MAX_CONCURRENCY, concurrency))
        self.sem = None
        self.in_flight = 0
        self.max_in_flight = 0

    def run(self, coros: list) -> list:
        """Run coroutines (each returns its result or an exception) to completion, in a backend."""
        if not coros:
            return []
        lp = loop()
        try:
            return lp.run_until_complete(self.gather(coros, self._watch()))
        except QueryCanceled:
            raise
        except BaseException:
            reset_loop()
            raise

    async def gather(self, coros: list, watch=None) -> list:
        """The coroutines' results; ``watch`` (a coroutine) ends them all early by raising.
        The model server runs this on its own loop, without a watch: a canceled backend
        drops its connection, and the server cancels the task."""
        self.sem = asyncio.Semaphore(self.concurrency)
        tasks = [asyncio.ensure_future(c) for c in coros]
        everything = asyncio.gather(*tasks, return_exceptions=True)
        watch = asyncio.ensure_future(watch if watch is not None else asyncio.Event().wait())
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
        p = plan("interrupts", "SELECT pg_catalog.pg_sleep(0)")
        while True:
            await asyncio.sleep(INTERRUPT_CHECK)
            try:
                plpy.execute(p)
            except plpy.SPIError as e:  # 57014, or the backend is being terminated: stop either way
                raise QueryCanceled(str(e.args[0] if e.args else e))

    async def request(self, limiter, send, tokens: float, timeout: float, max_retries: int):
        """``send()`` -> awaitable (data, headers or None); returns data or the provider's error."""
        err_cls = self.ep.provider.error
        attempt = 0
        while True:
            delay = None
            async with self.sem:
                await limiter.acquire(tokens)
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
                try:
                    data, headers = await asyncio.wait_for(send(), timeout + 1.0)  # hard bound over the client's
                    limiter.observe(headers)
                    return data
                except asyncio.CancelledError:
                    raise
                except asyncio.TimeoutError:
                    f = TIMED_OUT
                except ValueError as e:  # JSON
                    f = Failure(f"invalid JSON in the response: {e}")
                except Exception as e:
                    f = self.classify(e) or Failure(f"{type(e).__name__}: {e}")
                finally:
                    self.in_flight -= 1
                limiter.observe(f.headers)
                delay = ratelimit.retry_after(f.headers)
                if f.status == 429:
                    limiter.pause(delay if delay is not None else ratelimit.backoff(attempt))
            if not f.retry or attempt >= max_retries:
                msg = f"request timed out after {timeout:g} s" if f.message is None else f.message
                msg += (f" (after {attempt + 1} attempts)" if attempt else "")
                return err_cls(msg, f.status)
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
                if isinstance(r, RemoteError):
                    r = type(r)(clean, r.status)
                elif isinstance(r, ValueError):
                    r = ValueError(clean)
                else:
                    r = ep.provider.error(clean)
        out.append(r)
    return out


def fail_all(n: int, e: Exception, ep: Endpoint | None = None) -> list:
    if ep is not None:
        e = scrubbed(ep, [e])[0]
    return [e] * n
