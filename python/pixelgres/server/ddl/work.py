"""The work queue of deferred computed columns, for workers outside the backend.

``pixelgres worker --ray`` (pixelgres.workers) computes deferred columns on a Ray cluster
while PostgreSQL stays the catalog, the source of truth and the queue:

* ``register`` records the worker (pxt.workers) with this session's backend pid and start
  time: the worker is alive exactly as long as its session is, so a killed worker's leases
  are reclaimable at once, without waiting for a clock; ``expires_at`` covers workers that
  hang while their session lives.
* ``claim`` leases up to n pending rows (pxt.work_leases, with each row's xmin), evaluates
  the column's expression over them in collect mode (core/batch.py) and returns their calls
  of batched functions: function, module, key, arguments. Nothing is written to the table.
* The worker runs those calls through the same batched implementations the backend would
  (``batch.REGISTRY``), on Ray, and hands the results to ``complete``, which in one
  transaction deletes its leases, preloads the results and writes back with an ordinary
  UPDATE: the triggers compute the column from the preloaded results, record the version
  and the per-row errors exactly as inline computation does. Only rows still leased by this
  worker and unchanged since the claim (same xmin) are written; the others are *stale*: their
  result is discarded and they are pending again. A row's result is therefore written once,
  whatever the worker, Ray or the network did in between.
* ``pending_work`` is the pxt.pending_work view.
"""
import json

import plpy

from ..catalog import display_name, managed
from ..core import batch
from ..core.errors import fail as _fail
from ..core.spi import qualified
from ..sqlgen import ddl as gen
from ..sqlgen import work as sql
from . import triggers

def _plan(name: str, query: str, types: list):
    p = _PLANS.get(name)
    if p is None:
        p = _PLANS[name] = plpy.prepare(query, types)
    return p


_PLANS: dict = {}


def _execute(stmt, types=(), args=()):
    return plpy.execute(plpy.prepare(stmt.as_string(), list(types)), list(args))


def _own_worker(worker: int) -> None:
    rows = plpy.execute(_plan("own", "SELECT stopped_at IS NULL AS live FROM pxt.workers "
                                     "WHERE id = $1 AND owner = current_user", ["bigint"]), [worker])
    if not rows:
        role = plpy.execute("SELECT current_user AS u")[0]["u"]
        _fail("no worker %s of role %s" % (worker, role), sqlstate="42704")
    if not rows[0]["live"]:
        _fail(f"worker {worker} has stopped", sqlstate="55000")


def register(engine: str, host, pid, concurrency) -> int:
    if engine not in ("ray", "local"):
        _fail(f"engine must be 'ray' or 'local', not {engine!r}")
    prune_log()
    return plpy.execute(_plan("register", """
        INSERT INTO pxt.workers (engine, host, pid, concurrency, backend_pid, backend_start)
        SELECT $1, $2, $3, $4, a.pid, a.backend_start FROM pg_catalog.pg_stat_activity a
        WHERE a.pid = pg_catalog.pg_backend_pid() RETURNING id""", ["text", "text", "integer", "integer"]),
        [engine, host, pid, concurrency])[0]["id"]


def heartbeat(worker: int, lease_seconds: float) -> int:
    """Mark the worker alive and extend its leases; returns how many it holds."""
    _own_worker(worker)
    plpy.execute(_plan("beat", "UPDATE pxt.workers SET heartbeat_at = now() WHERE id = $1", ["bigint"]), [worker])
    return plpy.execute(_plan("extend", "UPDATE pxt.work_leases SET expires_at = now() + make_interval(secs => $2) "
                                        "WHERE worker = $1", ["bigint", "float8"]), [worker, lease_seconds]).nrows()


def stop(worker: int) -> None:
    plpy.execute(_plan("release", "DELETE FROM pxt.work_leases WHERE worker = $1", ["bigint"]), [worker])
    plpy.execute(_plan("stop", "UPDATE pxt.workers SET stopped_at = now() WHERE id = $1 AND owner = current_user",
                       ["bigint"]), [worker])


def _columns(tbl, col) -> list:
    """(storage oid, column) of the deferred columns to work on, in table and position order."""
    oid = managed(tbl) if tbl is not None else None
    rows = plpy.execute(_plan("deferred", """
        SELECT d.relid::oid::int AS relid, d.name::text AS name FROM pxt.column_defs d
        JOIN pxt.tables t ON t.relid = d.relid
        WHERE d.deferred AND d.dropped_at IS NULL AND t.kind <> 'snapshot'
          AND ($1::oid IS NULL OR d.relid = $1) AND ($2::text IS NULL OR d.name = $2)
        ORDER BY d.relid, d.position""", ["oid", "text"]), [oid, col])
    if col is not None and not rows:
        _fail(f"{col!r} is not a deferred computed column of {tbl}" if tbl else f"no deferred computed column {col!r}",
              hint="add it with mode => 'deferred'", sqlstate="42703")
    return [(r["relid"], r["name"]) for r in rows]


def _reclaim(relid: int, col: str) -> int:
    """Drop leases of workers that died, stopped or let them expire: their rows are pending again."""
    return plpy.execute(_plan("reclaim", """
        DELETE FROM pxt.work_leases l USING pxt.workers w
        WHERE l.worker = w.id AND l.relid = $1 AND l.col = $2 AND (l.expires_at < now() OR NOT
            (w.stopped_at IS NULL AND EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity a
              WHERE a.pid = w.backend_pid AND a.backend_start = w.backend_start)))""",
        ["oid", "name"]), [relid, col]).nrows()


def claim(tbl, col, worker: int, n: int, lease_seconds: float) -> str:
    """Lease up to ``n`` pending rows of one deferred column and return their calls (JSON)."""
    _own_worker(worker)
    if not isinstance(n, int) or not 1 <= n <= 100000:
        _fail(f"batch size must be 1 to 100000, not {n!r}")
    if lease_seconds is None or not 1 <= lease_seconds <= 86400:
        _fail(f"lease must be 1 to 86400 seconds, not {lease_seconds!r}")
    for relid, name in _columns(tbl, col):
        storage = gen.parse_name(qualified(relid))
        if not plpy.execute(_plan("may", "SELECT pg_catalog.has_table_privilege($1, 'UPDATE') AS ok",
                                  ["oid"]), [relid])[0]["ok"]:
            _fail("permission denied to compute %s of %s: a worker's role must be allowed to write the table"
                  % (name, display_name(relid)), sqlstate="42501")
        _reclaim(relid, name)
        cols = {c.name: c for c in triggers._load(relid)}
        column = cols[name]
        waits_for = [d for d in column.deps if d in cols and cols[d].deferred]
        cand = _execute(sql.claim_candidates(storage, name, waits_for), ["oid", "name", "integer"], [relid, name, n])
        if not cand:
            continue
        leased = plpy.execute(_plan("lease", """
            INSERT INTO pxt.work_leases (relid, col, rowid, worker, row_xmin, expires_at)
            SELECT $1, $2, u.r, $3, u.x, now() + make_interval(secs => $6)
            FROM ROWS FROM (pg_catalog.unnest($4::bigint[]), pg_catalog.unnest($5::text[])) AS u(r, x)
            ON CONFLICT DO NOTHING RETURNING rowid, row_xmin""",
            ["oid", "name", "bigint", "bigint[]", "text[]", "float8"]),
            [relid, name, worker, [r["rowid"] for r in cand], [r["xmin"] for r in cand], lease_seconds])
        if not leased:
            continue
        rows = sorted([r["rowid"], r["row_xmin"]] for r in leased)
        calls = _collect(storage, column, [r[0] for r in rows])
        return json.dumps({"relid": relid, "table": display_name(relid), "column": name,
                           "rows": rows, "calls": calls})
    return None


def _collect(storage, column, ids: list) -> list:
    """The batched calls of ``column`` over rows ``ids``. If evaluating the expression fails
    (a row's error outside any batched call), no calls are handed out: the write-back then
    computes those rows here, where the error lands on its row as it would inline."""
    batch.begin()
    try:
        with plpy.subtransaction():
            _execute(sql.collect_calls(storage, column.sql), ["bigint[]"], [ids])
        return batch.collected()
    except plpy.SPIError:
        return []
    finally:
        batch.end()


def complete(worker: int, relid: int, col: str, rows: str, calls: str) -> str:
    """Write back one claimed batch: rows [[rowid, xmin]], calls [[function, key, result]] (JSON)."""
    _own_worker(worker)
    rows, calls = json.loads(rows), json.loads(calls)
    ids = [int(r[0]) for r in rows]
    ours = plpy.execute(_plan("take", """
        DELETE FROM pxt.work_leases WHERE worker = $1 AND relid = $2 AND col = $3 AND rowid = ANY($4)
        RETURNING rowid, row_xmin, claimed_at""", ["bigint", "oid", "name", "bigint[]"]), [worker, relid, col, ids])
    storage = gen.parse_name(qualified(relid))
    written, failed = [], 0
    stats = {"used": 0, "computed": 0}
    if ours:
        batch.preload(calls)
        plpy.execute(_plan("ask", "SELECT pg_catalog.set_config('pixelgres.recompute', $1, true)", ["text"]), [col])
        try:
            written = [r["rowid"] for r in _execute(sql.write_back(storage, col), ["bigint[]", "text[]"],
                                                    [[r["rowid"] for r in ours], [r["row_xmin"] for r in ours]])]
            stats = batch.preload_stats()
        finally:
            plpy.execute(_plan("ask", "SELECT pg_catalog.set_config('pixelgres.recompute', $1, true)", ["text"]), [""])
            batch.preload([])
        if written:
            failed = _execute(sql.failed_rows(storage, col), ["bigint[]"], [written])[0]["n"]
    stale, lost = len(ours) - len(written), len(ids) - len(ours)
    plpy.execute(_plan("log", """
        INSERT INTO pxt.work_batches (worker, relid, col, rows, errors, stale, claimed_at)
        VALUES ($1, $2, $3, $4, $5, $6, coalesce($7::timestamptz, now()))""",
        ["bigint", "oid", "name", "integer", "integer", "integer", "text"]),
        [worker, relid, col, len(written), failed, stale + lost, min((r["claimed_at"] for r in ours), default=None)])
    plpy.execute(_plan("count", """
        UPDATE pxt.workers SET heartbeat_at = now(), rows_done = rows_done + $2, rows_failed = rows_failed + $3,
               rows_stale = rows_stale + $4 WHERE id = $1""", ["bigint", "bigint", "bigint", "bigint"]),
        [worker, len(written), failed, stale + lost])
    return json.dumps({"written": len(written), "errors": failed, "stale": stale, "lost": lost,
                       "preloaded": stats["used"], "computed_here": stats["computed"]})


def pending_work():
    """Per deferred column: pending (not claimed), running (leased by live workers), done, failed, rows/s over
    the last minute, live workers."""
    out = []
    for relid, col in _columns(None, None):
        storage = gen.parse_name(qualified(relid))
        counts = _execute(gen.status_query(storage, [col]))[0]["a"]
        live = plpy.execute(_plan("live", """
            SELECT count(*) AS running, count(DISTINCT l.worker) AS workers
            FROM pxt.work_leases l JOIN pxt.workers w ON w.id = l.worker
            WHERE l.relid = $1 AND l.col = $2 AND l.expires_at >= now() AND
              (w.stopped_at IS NULL AND EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity a
              WHERE a.pid = w.backend_pid AND a.backend_start = w.backend_start))""", ["oid", "name"]),
            [relid, col])[0]
        rate = plpy.execute(_plan("rate", """
            SELECT sum(rows)::float8 / greatest(extract(epoch FROM max(finished_at) - min(claimed_at))::float8, 0.001) AS r,
                   count(DISTINCT worker) AS workers
            FROM pxt.work_batches WHERE relid = $1 AND col = $2 AND finished_at > now() - interval '1 minute'""",
            ["oid", "name"]), [relid, col])[0]
        running = live["running"]
        out.append((display_name(relid), col, max(0, counts[0] - running), running, counts[1], counts[2],
                    round(rate["r"], 2) if rate["r"] is not None else None,
                    max(live["workers"], rate["workers"])))
    return out


def prune_log() -> None:
    """Forget written batches older than a day (pxt.pending_work reads the last minute)."""
    plpy.execute("DELETE FROM pxt.work_batches WHERE finished_at < now() - interval '1 day'")
