"""Helper threads inside a backend, for work that releases the GIL (Pillow, PyAV, numpy).

A backend is one process and PostgreSQL's API (plpy) may only be called from its main thread,
so helpers compute and the main thread does everything else: it reads settings before,
and stores each result as it arrives, in between checking for a cancel.
"""
import os
import signal
import threading
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

import plpy

_POOLS: dict = {}  # (prefix, size) -> pool, kept for the backend's life
POLL_S = 0.1  # longest stretch without a cancel check while helpers work


def quiet_pool(threads: int, prefix: str) -> ThreadPoolExecutor:
    """A thread pool whose threads all start now with every signal blocked: a process-directed
    signal (cancel, statement_timeout, die) must reach the backend's main thread, never a
    helper, and no thread may be spawned later from one with signals unblocked."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
    try:
        pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=prefix)
        barrier = threading.Barrier(threads + 1)
        started = [pool.submit(barrier.wait) for _ in range(threads)]
        barrier.wait()
        for f in started:
            f.result()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
    return pool


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def pool(prefix: str, size: int) -> ThreadPoolExecutor:
    p = _POOLS.get((prefix, size))
    if p is None:
        p = _POOLS[(prefix, size)] = quiet_pool(size, prefix)
    return p


def check_interrupts() -> None:
    """A cancel or statement_timeout that arrived meanwhile takes effect here (SPI checks for
    interrupts and raises QueryCanceled)."""
    plpy.execute("SELECT 1")


def each(fn, items: list, threads: int, done, prefix: str = "pixelgres-media") -> None:
    """``done(i, result or exception)`` in the main thread for every ``fn(items[i])``, computed
    on up to ``threads`` helpers (inline when one thread or one item is enough). At most
    2 x threads items are in flight, so results are stored as fast as they are made and a
    cancel leaves little behind: on any exception from ``done`` or a cancel, items not
    started are dropped and the exception propagates (running ones finish unseen)."""
    if threads <= 1 or len(items) <= 1:
        for i, item in enumerate(items):
            try:
                r = fn(item)
            except Exception as e:
                r = e
            done(i, r)
        return
    helpers = pool(prefix, threads)
    todo = iter(enumerate(items))
    running: dict = {}

    def submit(k: int) -> None:
        for i, item in todo:
            running[helpers.submit(fn, item)] = i
            if len(running) >= k:
                return

    submit(2 * threads)
    try:
        while running:
            finished, _ = wait(running, timeout=POLL_S, return_when=FIRST_COMPLETED)
            if not finished:
                check_interrupts()
                continue
            for f in finished:
                i = running.pop(f)
                e = f.exception()
                done(i, e if e is not None else f.result())
            submit(2 * threads)
    finally:
        for f in running:
            f.cancel()
