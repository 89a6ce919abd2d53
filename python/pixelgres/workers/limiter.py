"""One set of rate limits for every Ray worker: a token bucket per (endpoint, model) in a Ray actor.

Why an actor and not a row in PostgreSQL: every request of every worker asks the bucket. In
an actor that is an in-memory call (well under a millisecond); as a row it would be a locked
UPDATE and a commit per request, all workers queueing on one row and writing WAL for each.
The actor lives as long as the driver (``pixelgres worker --ray``) that made it; backends that
compute inline keep their own limiters (or the model server's), so a limit in
pxt.ai_rate_limits holds per pool, not across pools.

Reservations, not polling: ``reserve`` takes the tokens at once (the bucket may go into
debt) and answers how long the caller must wait before sending, so concurrent requests get
consecutive slots and no two workers read the same free token. Pauses from a 429's
retry-after reach every worker. The buckets are ratelimit.RateLimiter's own, on the
actor's clock, which tests swap for a virtual one: admissions are then a deterministic
schedule (``admissions``), not a wall-clock measurement.
"""
from __future__ import annotations

NAME = "pixelgres-rate-limiter"


class Limiter:
    """The actor's state (decorated with ray.remote by ray_engine)."""

    def __init__(self, virtual_clock_seed: int | None = None):
        from ..server.core import outside
        outside.install()
        from ..server.ai import ratelimit
        self.ratelimit = ratelimit
        if virtual_clock_seed is not None:
            ratelimit.use_virtual_clock(virtual_clock_seed)
        self.limiters: dict = {}
        self.log: list = []  # (endpoint, model, who, admitted at)

    def _lim(self, endpoint: str, model: str, rpm, tpm):
        lim = self.limiters.get((endpoint, model))
        if lim is None:
            lim = self.limiters[(endpoint, model)] = self.ratelimit.RateLimiter()
        if rpm is not None or tpm is not None:
            lim.configure(rpm, tpm)
        return lim

    def reserve(self, endpoint: str, model: str, rpm, tpm, tokens: float, who: str = "") -> float:
        """Seconds the caller waits before sending one request of ``tokens`` tokens."""
        lim = self._lim(endpoint, model, rpm, tpm)
        clock = self.ratelimit.CLOCK
        now = clock.now()
        d = max(0.0, lim.delay(tokens))
        if lim.requests:
            lim.requests.take(1, now)
        if lim.tokens:
            lim.tokens.take(tokens, now)
        self.log.append((endpoint, model, who, now + d))
        return d

    def pause(self, endpoint: str, model: str, seconds: float) -> None:
        self._lim(endpoint, model, None, None).pause(seconds)

    def settle(self, endpoint: str, model: str, estimated: float, actual) -> None:
        self._lim(endpoint, model, None, None).settle(estimated, actual)

    def admissions(self) -> list:
        return list(self.log)


def shared(handle, who: str):
    """A factory for ratelimit.share_limits: limiters whose buckets are the actor's."""
    from ..server.ai import ratelimit

    def make(endpoint: str, model: str):
        return _shared_class(ratelimit)(handle, endpoint, model, who)
    return make


_CLASS: list = []


def _shared_class(ratelimit):
    if _CLASS:
        return _CLASS[0]

    class Shared(ratelimit.RateLimiter):
        def __init__(self, handle, endpoint, model, who):
            super().__init__()
            self.handle, self.endpoint, self.model, self.who = handle, endpoint, model, who

        async def acquire(self, tokens: float) -> None:
            rpm, tpm = self.configured
            d = await self.handle.reserve.remote(self.endpoint, self.model, rpm, tpm, tokens, self.who)
            local = self.paused_until - ratelimit.CLOCK.now()  # a pause this worker saw itself
            if max(d, local) > 0:
                await ratelimit.CLOCK.sleep(max(d, local))
            ratelimit.CLOCK.mark("admit")

        def pause(self, seconds: float) -> None:
            super().pause(seconds)
            self.handle.pause.remote(self.endpoint, self.model, seconds)

        def settle(self, estimated: float, actual) -> None:
            self.handle.settle.remote(self.endpoint, self.model, estimated, actual)
    _CLASS.append(Shared)
    return Shared
