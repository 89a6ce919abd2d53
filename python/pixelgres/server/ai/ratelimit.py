"""Client-side rate limiting and retry timing for remote model APIs.

One ``RateLimiter`` per (endpoint, model) lives for the whole backend, so what it learned
(limits announced in ``x-ratelimit-*`` headers, a ``retry-after`` pause) carries over from
one statement's batch to the next. Limits are smooth: a bucket refills at limit/60 per
second and holds at most one second's worth, so a batch never bursts a minute's quota at
once (which is what makes servers answer 429). A request may take more tokens than the
bucket holds; the bucket then goes into debt and later requests wait it out, so the
average stays at the limit. Single-threaded asyncio: no locks, no loop-bound objects.

Every wait of the retry policy (pauses, bucket refills, backoff) reads and sleeps on
``CLOCK`` and draws its jitter from ``RNG``, which live in core/clock.py (object-store retries
in media/ use them too) and read here as ``ratelimit.CLOCK``/``RNG``. Tests swap in a
``VirtualClock`` and a seeded ``random.Random`` (``use_virtual_clock``): waits then take no
real time, and what waited, and for how long, is a deterministic log instead of a wall-clock
measurement.
"""
from __future__ import annotations

import re
import time

from ..core import clock as _clock
# re-exported: openai_client and the tests use them from here
from ..core.clock import Clock, VirtualClock, backoff  # noqa: F401

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
MAX_PAUSE = 120.0  # never trust a header to park the backend longer than this


def use_virtual_clock(seed: int = 0) -> VirtualClock:
    """Tests: a fresh virtual clock and seeded jitter for this backend; forget learned limits."""
    c = _clock.use_virtual_clock(seed)
    _LIMITERS.clear()
    return c


def use_real_clock() -> None:
    _clock.use_real_clock()
    _LIMITERS.clear()


def __getattr__(name: str):
    """``ratelimit.CLOCK`` and ``ratelimit.RNG``: the backend's one clock and jitter (core.clock),
    read at the moment of use so that a swap by either module reaches both."""
    if name in ("CLOCK", "RNG"):
        return getattr(_clock, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def parse_duration(text) -> float | None:
    """'1s', '6m0s', '20ms', '1h2m3.5s' or a plain number of seconds -> seconds."""
    if text is None:
        return None
    text = str(text).strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(n) * _UNIT[u] for n, u in parts)


def retry_after(headers) -> float | None:
    """Seconds the server asked us to wait (``retry-after-ms`` or ``retry-after``), if any."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            return min(MAX_PAUSE, max(0.0, float(ms) / 1000.0))
        except ValueError:
            pass
    ra = headers.get("retry-after")
    if ra is None:
        return None
    s = parse_duration(ra)
    if s is None:  # an HTTP date
        from email.utils import parsedate_to_datetime

        try:
            s = parsedate_to_datetime(ra).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return min(MAX_PAUSE, max(0.0, s))


class Bucket:
    """Refills continuously at ``per_minute``/60 per second up to one second's worth (>= 1)."""

    def __init__(self, per_minute: float):
        self.level = None
        self.set_limit(per_minute)

    def set_limit(self, per_minute: float) -> None:
        self.per_minute = float(per_minute)
        self.rate = self.per_minute / 60.0
        self.capacity = max(1.0, self.rate)
        now = _clock.CLOCK.now()
        self.level = self.capacity if self.level is None else min(self.level, self.capacity)
        self.stamp = now

    def _refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    def wait(self, amount: float, now: float) -> float:
        """Seconds until ``amount`` (capped at the capacity) is available."""
        self._refill(now)
        need = min(amount, self.capacity) - self.level
        return 0.0 if need <= 0 else need / self.rate

    def take(self, amount: float, now: float) -> None:
        self._refill(now)
        self.level -= amount  # may go negative: debt that later requests wait out

    def give_back(self, amount: float) -> None:
        self.level = min(self.capacity, self.level + amount)


class RateLimiter:
    """Requests- and tokens-per-minute limits for one model, plus server-requested pauses."""

    def __init__(self):
        self.requests: Bucket | None = None
        self.tokens: Bucket | None = None
        self.configured = (None, None)  # limits given by the user: headers do not override them
        self.paused_until = 0.0

    def configure(self, rpm: int | None, tpm: int | None) -> None:
        if (rpm, tpm) == self.configured:
            return
        self.configured = (rpm, tpm)
        self.requests = self._bucket(self.requests, rpm)
        self.tokens = self._bucket(self.tokens, tpm)

    @staticmethod
    def _bucket(b: Bucket | None, limit) -> Bucket | None:
        if not limit or limit <= 0:
            return None
        if b is None:
            return Bucket(limit)
        b.set_limit(limit)
        return b

    def pause(self, seconds: float) -> None:
        """Hold every request of this model for ``seconds`` (a 429's retry-after, a spent quota)."""
        seconds = min(MAX_PAUSE, seconds)
        self.paused_until = max(self.paused_until, _clock.CLOCK.now() + seconds)
        _clock.CLOCK.mark("pause", seconds=seconds, until=self.paused_until)

    def delay(self, tokens: float) -> float:
        now = _clock.CLOCK.now()
        d = self.paused_until - now
        if self.requests:
            d = max(d, self.requests.wait(1, now))
        if self.tokens:
            d = max(d, self.tokens.wait(tokens, now))
        return d

    async def acquire(self, tokens: float) -> None:
        while True:
            d = self.delay(tokens)
            if d <= 0:
                break
            await _clock.CLOCK.sleep(d)
        now = _clock.CLOCK.now()
        _clock.CLOCK.mark("admit")
        if self.requests:
            self.requests.take(1, now)
        if self.tokens:
            self.tokens.take(tokens, now)

    def settle(self, estimated: float, actual: float | None) -> None:
        """Correct the token bucket once the response says how many tokens were used."""
        if self.tokens and actual is not None:
            if actual > estimated:
                self.tokens.take(actual - estimated, _clock.CLOCK.now())
            else:
                self.tokens.give_back(estimated - actual)

    def observe(self, headers) -> None:
        """Adapt to ``x-ratelimit-*`` headers: learn limits not configured, pause when spent."""
        if headers is None:
            return
        for kind in ("requests", "tokens"):
            limit = _int(headers.get(f"x-ratelimit-limit-{kind}"))
            user_limit = self.configured[0 if kind == "requests" else 1]
            if limit and not user_limit:
                b = getattr(self, kind)
                if b is None or b.per_minute != limit:
                    setattr(self, kind, self._bucket(b, limit))
            remaining = _int(headers.get(f"x-ratelimit-remaining-{kind}"))
            if remaining is not None and remaining <= 0:
                reset = parse_duration(headers.get(f"x-ratelimit-reset-{kind}"))
                if reset:
                    self.pause(reset)


def _int(v):
    if v is None:
        return None
    try:
        return int(float(v))
    except ValueError:
        return None


_LIMITERS: dict = {}
_FACTORY: list = []  # a process whose limits live elsewhere (a Ray worker's shared bucket)


def share_limits(factory) -> None:
    """Make new limiters with ``factory(endpoint, model)`` (pixelgres.workers.limiter)."""
    _FACTORY[:] = [factory]
    _LIMITERS.clear()


def limiter(endpoint: str, model: str) -> RateLimiter:
    """The backend-wide limiter of ``model`` at ``endpoint``."""
    key = (endpoint, model)
    lim = _LIMITERS.get(key)
    if lim is None:
        lim = _LIMITERS[key] = _FACTORY[0](endpoint, model) if _FACTORY else RateLimiter()
    return lim
