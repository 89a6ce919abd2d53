"""The backend's clock and jitter for retry policies, which tests replace.

Every wait of a retry policy -- remote model APIs (ai/), object stores (media/objects) -- reads
and sleeps on ``CLOCK`` and draws its jitter from ``RNG``. Tests swap in a ``VirtualClock`` and
a seeded ``random.Random`` (``use_virtual_clock``): waits then take no real time, and what
waited, and for how long, is a deterministic log instead of a wall-clock measurement.

Both are read as module attributes at the moment of use (``clock.CLOCK``), never imported by
name, so a swap reaches every caller. No plpy: this sits at the bottom of the server.
"""
from __future__ import annotations

import asyncio
import random
import threading
import time


class Clock:
    """Real time: monotonic seconds, asyncio sleeps and blocking sleeps."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def sleep_sync(self, seconds: float) -> None:
        """A blocking wait, for retries outside an event loop (object store threads)."""
        time.sleep(max(0.0, float(seconds)))

    def mark(self, what: str, **detail) -> None:
        """A point in the retry policy worth a test's look (no-op in real time)."""


class VirtualClock(Clock):
    """Time that moves only when someone sleeps: ``sleep(s)`` advances it by ``s`` at once.

    ``events`` logs every sleep and mark with the virtual time it happened at, so a test can
    check "nothing was admitted before the pause ended" without reading a wall clock. Blocking
    sleeps may come from several threads at once (a bounded download pool): a lock keeps the
    log and the time consistent.
    """

    def __init__(self):
        self.t = 0.0
        self.events: list[dict] = []
        self._lock = threading.Lock()

    def now(self) -> float:
        return self.t

    def _advance(self, seconds: float, **detail) -> None:
        seconds = max(0.0, float(seconds))
        with self._lock:
            self.events.append({"what": "sleep", "t": self.t, "seconds": seconds, **detail})
            self.t += seconds

    async def sleep(self, seconds: float) -> None:
        self._advance(seconds)
        await asyncio.sleep(0)

    def sleep_sync(self, seconds: float) -> None:
        self._advance(seconds, blocking=True)

    def mark(self, what: str, **detail) -> None:
        with self._lock:
            self.events.append({"what": what, "t": self.t, **detail})


CLOCK: Clock = Clock()
RNG = random.Random()


def use_virtual_clock(seed: int = 0) -> VirtualClock:
    """Tests: a fresh virtual clock and seeded jitter for this process."""
    global CLOCK, RNG
    CLOCK, RNG = VirtualClock(), random.Random(seed)
    return CLOCK


def use_real_clock() -> None:
    global CLOCK, RNG
    CLOCK, RNG = Clock(), random.Random()


def backoff(attempt: int, base: float = 0.5, cap: float = 30.0) -> float:
    """Exponential backoff with jitter: uniform in [d/2, d], d = min(cap, base * 2**attempt)."""
    d = min(cap, base * (2 ** attempt))
    return RNG.uniform(d / 2, d)
