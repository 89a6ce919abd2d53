"""The server's media settings (GUCs) and the store directory, read through prepared plans.

Several lookups happen per media value: parsing and planning each one cost as much as
running it, so each query is prepared once per session.
"""
import os

import plpy

from ..core import threads

_plans: dict = {}


def plan(query: str, types: list[str]):
    p = _plans.get(query)
    if p is None:
        p = _plans[query] = plpy.prepare(query, types)
    return p


def setting(name: str) -> str:
    return plpy.execute(plan("SELECT current_setting($1) AS v", ["text"]), [name])[0]["v"]


def media_threads() -> int:
    """Helper threads for a statement's media work: pixelgres.media_threads, 0 = one per core."""
    return int(setting("pixelgres.media_threads")) or threads.cores()


def setting_list(name: str) -> list[str]:
    """A comma-separated setting as its non-empty, stripped items."""
    return [x.strip() for x in setting(name).split(",") if x.strip()]


def media_dir() -> str:
    d = plpy.execute(plan("SELECT pxt._media_dir() AS d", []))[0]["d"]
    os.makedirs(d, exist_ok=True)
    return d
