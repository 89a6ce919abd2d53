"""``pxt.process_pending``: fill deferred computed columns, in the backend or on Ray."""
from __future__ import annotations

import psycopg

from . import session as _session
from .status import UpdateStatus


class Bars:
    """A progress bar per column (rows/s, errors so far), fed by each write-back."""

    def __init__(self, dsn: str, show: bool | None = None):
        self.dsn, self.show, self.bars = dsn, show, {}  # "table.column" -> [bar, done, total, errors]

    def update(self, claim: dict, out: dict) -> None:
        from .progress import LazyBar
        what = f"{claim['table']}.{claim['column']}"
        if what not in self.bars:
            with psycopg.connect(self.dsn, autocommit=True) as c:
                left = c.execute("SELECT pending + running FROM pxt.pending_work WHERE \"table\" = %s "
                                 "AND \"column\" = %s", (claim["table"], claim["column"])).fetchone()
            total = (left[0] if left else 0) + out["written"]
            self.bars[what] = [LazyBar(f"computing {what} on Ray", total, unit="cells", show=self.show), 0, total, 0]
        b = self.bars[what]
        b[1] += out["written"]
        b[2] = max(b[2], b[1])
        b[3] += out["errors"]
        b[0].update_to(b[1], b[2], b[3])

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for b in self.bars.values():
            b[0].close()


def process_pending(table=None, *, engine: str = "backend", column: str | None = None, batch_size: int = 100,
                    concurrency: int = 2, address: str | None = None) -> UpdateStatus:
    """Compute the pending cells of deferred columns (of ``table``, a Table or its path; all
    tables if None). ``engine='backend'``: CALL pxt.process_pending in this session.
    ``engine='ray'``: ``concurrency`` Ray actors (on the cluster at ``address``, or a local one)
    compute them, as ``pixelgres worker --ray --once`` would."""
    s = _session.get()
    path = getattr(table, "_path", table)
    if engine == "backend":
        if column is not None:
            raise ValueError("column= needs engine='ray'; the backend sweeps every deferred column of the table")
        from .progress import backfill

        def pending() -> tuple[int, int]:
            row = s.fetchone("SELECT coalesce(sum(pending), 0), coalesce(sum(errors), 0) FROM pxt.status(%s) "
                             "WHERE mode = 'deferred'", (path,))
            return int(row[0]), int(row[1])
        before = pending()
        with backfill(s, "computing pending cells"):
            s.execute("CALL pxt.process_pending(%s, %s)", (path, batch_size))
        after = pending()
        return UpdateStatus(num_rows=before[0] - after[0], num_excs=after[1] - before[1], verb="Computed")
    if engine != "ray":
        raise ValueError(f"engine must be 'backend' or 'ray', not {engine!r}")
    s.require_function("_work_claim", "computing on Ray")
    from ..workers.ray_engine import RayWorker
    with RayWorker(s.conninfo, path, column, batch_size, concurrency, address=address) as w, Bars(s.conninfo) as bars:
        t = w.run(once=True, on_batch=bars.update)
    return UpdateStatus(num_rows=t.written, num_excs=t.errors, updated_cols=sorted(t.by_column), verb="Computed")
