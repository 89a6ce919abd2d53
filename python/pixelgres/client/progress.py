"""Progress bars (tqdm) for inserts and backfills that take more than a moment.

Backfills run in the server (one ``pxt.recompute_columns`` call); it reports progress as
NOTICEs whose message is for people (``pixelgres: computing c of t: 5000 of 20000 rows``) and
whose DETAIL is for programs: ``{"pixelgres_progress": {"op": ..., "done": N, "total": M,
"errors": E, ...}}`` (recompute: per chunk of 5000 rows; process_pending: per batch).
``parse`` reads that; the session's notice handler feeds it to the bar of the running call. A
bar appears only once there is something to show.
``PIXELGRES_PROGRESS=0`` (or ``show_progress=False``) turns bars off.
"""
from __future__ import annotations

import contextlib
import json
import os


def parse(diag) -> dict | None:
    """The progress report in a server NOTICE (psycopg Diagnostic), or None if it is not one."""
    detail = diag.message_detail or ""
    if not detail.startswith('{"pixelgres_progress"'):
        return None
    try:
        report = json.loads(detail)["pixelgres_progress"]
        return report if isinstance(report.get("done"), int) and isinstance(report.get("total"), int) else None
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def enabled(flag: bool | None = None) -> bool:
    if flag is not None:
        return flag
    return os.environ.get("PIXELGRES_PROGRESS", "1") not in ("0", "false", "no")


class LazyBar:
    def __init__(self, desc: str, total: int | None = None, unit: str = "rows", show: bool | None = None):
        self.desc, self.total, self.unit, self.show = desc, total, unit, enabled(show)
        self._bar = None

    def _get(self):
        if self._bar is None and self.show:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=self.total, desc=self.desc, unit=f" {self.unit}", leave=False)
        return self._bar

    def update(self, n: int) -> None:
        bar = self._get()
        if bar is not None:
            bar.update(n)

    def update_to(self, done: int, total: int, errors: int | None = None) -> None:
        """Where the server says it is; tqdm adds the rate (rows/s) and the time left."""
        bar = self._get()
        if bar is not None:
            bar.total = total
            bar.n = done
            if errors is not None:
                bar.set_postfix(errors=errors, refresh=False)
            bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


@contextlib.contextmanager
def backfill(session, desc: str):
    bar = LazyBar(desc)
    session.progress = bar
    try:
        yield bar
    finally:
        session.progress = None
        bar.close()
