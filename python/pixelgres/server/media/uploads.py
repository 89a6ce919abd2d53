"""Uploads to destinations, concurrent within one statement, finished before it ends.

A computed media column with a destination uploads what it produces row by row; one PUT at
a time would make an INSERT of many rows wait on the network once per row. A table with such
a column has two statement triggers around every INSERT and UPDATE: ``begin`` opens a scope
for the statement, in which ``buckets.upload`` only starts each upload on a bounded thread
pool (``pixelgres.object_concurrency``) and returns the object's URI at once; ``end`` waits for
all of them and fails the statement if one failed, naming the object and the column. So a
statement never completes with a row pointing at an object that is not there; an upload
failure (retried first: throttling, dropped connections) fails the whole statement rather
than one row. Outside a scope (a direct call, a nested statement after its inner ``end``)
uploads are synchronous. Threads do object I/O only, never plpy.
"""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

import plpy

from ..core.errors import MediaError
from .gucs import plan

_state: dict = {"stamp": None, "pending": []}
_pool: ThreadPoolExecutor | None = None


def _stamp() -> str:
    return plpy.execute(plan("SELECT statement_timestamp()::text AS s", []))[0]["s"]


def _executor(workers: int) -> ThreadPoolExecutor:
    global _pool
    if _pool is None or _pool._max_workers != workers:
        if _pool is not None:
            _pool.shutdown(wait=True)
        _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pxt-uploads")
    return _pool


def _drain() -> list[tuple[str, BaseException]]:
    pending, _state["pending"] = _state["pending"], []
    failed = []
    for label, fut in pending:
        try:
            fut.result()
        except BaseException as e:  # noqa: BLE001 -- reported below, with its object
            failed.append((label, e))
    return failed


def begin() -> None:
    _drain()  # a failed statement's uploads: its rows are gone, its objects are orphans
    _state["stamp"] = _stamp()


def end() -> None:
    _state["stamp"] = None
    failed = _drain()
    if failed:
        label, e = failed[0]
        more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        raise MediaError(f"uploading {label} failed: {e}{more}")


def trigger(td) -> None:
    """pxt._media_uploads: BEFORE and AFTER each statement on a table with destinations."""
    if td["when"] == "BEFORE":
        begin()
    else:
        end()


def submit(fn, label: str, workers: int) -> Future | None:
    """Run ``fn()`` in this statement's scope (None: no scope, the caller runs it now)."""
    if _state["stamp"] is None or _state["stamp"] != _stamp():
        return None
    fut = _executor(workers).submit(fn)
    _state["pending"].append((label, fut))
    return fut
