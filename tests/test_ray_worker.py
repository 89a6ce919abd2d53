"""Deferred columns computed on a local Ray cluster (pixelgres.workers, pxt._work_claim/_complete).

Ray runs here as a local cluster of 2 CPUs started once for the module. What is checked is
counted, never timed: values equal to inline computation, requests per input at the loopback
OpenAI-compatible server, writes per row (a trigger counts them), the shared limiter's
admission schedule on a virtual clock.
"""
import json
import os
import signal
import subprocess
import sys

import psycopg
import pytest

from openai_server import openai_server, openai_server_session  # noqa: F401  (fixtures)
from pixelgres.testing.waits import wait_until

ray = pytest.importorskip("ray", reason="Ray is not installable on this platform (pixelgres[ray] extra)")

from pixelgres.workers.ray_engine import RayWorker  # noqa: E402

CHAT = ("pxt.openai_chat_completions(jsonb_build_array(jsonb_build_object('role', 'user', 'content', s)), "
        "'gpt-4o-mini') -> 'choices' -> 0 -> 'message' ->> 'content'")


@pytest.fixture(scope="module")
def ray_cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture
def ai(db, dbname, openai_server):
    from conftest import set_for_database
    set_for_database(db, dbname, {"pixelgres.openai_base_url": openai_server.base_url,
                                  "pixelgres.allowed_url_hosts": "127.0.0.1"})
    return openai_server


def _table(db, name: str, expr: str, n: int, mode: str = "deferred", on_error: str = "abort", values=None):
    db.execute("SELECT pxt.create_table(%s, '{\"s\": \"string\"}')", (name,))
    db.execute("SELECT pxt.add_computed_column(%s, 'c', %s, mode => %s, on_error => %s)", (name, expr, mode, on_error))
    rows = values or [f"row {i}" for i in range(n)]
    db.execute(f"INSERT INTO {name} (s) SELECT unnest(%s::text[])", (rows,))  # one statement: one batch inline


def _count_writes(db, table: str) -> None:
    """A trigger on the storage that logs every write of a value into c."""
    db.execute("CREATE TABLE writes (rowid bigint)")
    db.execute("CREATE FUNCTION log_write() RETURNS trigger LANGUAGE plpgsql AS "
               "$$ BEGIN INSERT INTO writes VALUES (NEW._pxt_rowid); RETURN NULL; END $$")
    db.execute(f'CREATE TRIGGER log_write AFTER UPDATE ON pxt_data."public.{table}" FOR EACH ROW '
               "WHEN (OLD.c IS NULL AND NEW.c IS NOT NULL) EXECUTE FUNCTION log_write()")


def _answered(server) -> dict:
    """Answered requests per input text."""
    out: dict = {}
    for r in server.records("/chat/completions"):
        if r.status == 200:
            text = r.body["messages"][-1]["content"]
            out[text] = out.get(text, 0) + 1
    return out


def test_backfill_of_500_rows_on_two_ray_actors_equals_inline(db, dsn, ai, ray_cluster):
    _table(db, "inline_t", CHAT, 500, mode="eager")
    ai.reset()
    _table(db, "ray_t", CHAT.replace("'gpt-4o-mini'", "'gpt-4o'"), 500)  # another model: no cache hits
    assert db.execute("SELECT count(*) FROM ray_t WHERE c IS NULL").fetchone()[0] == 500
    assert ai.count() == 0  # deferred: the insert made no call
    versions = db.execute("SELECT count(*) FROM pxt.history('ray_t')").fetchone()[0]
    with RayWorker(dsn, "ray_t", batch_size=50, concurrency=2) as w:
        totals = w.run(once=True)
        per_actor = ray.get([a.run.remote([]) for a in w.actors]) and ray.get(
            [a.__ray_call__.remote(lambda self: self.calls) for a in w.actors])
    assert totals.written == 500 and totals.batches == 10 and totals.stale == 0 and totals.lost == 0
    assert totals.preloaded == 500 and totals.computed_here == 0  # every call ran on Ray, none in the backend
    assert sorted(per_actor) != [0, 500] and sum(per_actor) == 500 and min(per_actor) > 0  # both actors worked
    got = dict(db.execute("SELECT s, c FROM ray_t").fetchall())
    want = dict(db.execute("SELECT s, c FROM inline_t").fetchall())
    assert got == want and len(got) == 500 and got["row 7"] == "Echo: row 7"
    assert set(_answered(ai).values()) == {1} and len(_answered(ai)) == 500
    # as with inline pxt.process_pending, filling computed cells is no new data version
    assert db.execute("SELECT count(*) FROM pxt.history('ray_t')").fetchone()[0] == versions
    pw = db.execute("SELECT pending, running, done, failed, workers, rows_per_s > 0 FROM pxt.pending_work "
                    "WHERE \"table\" = 'public.ray_t'").fetchone()
    assert pw == (0, 0, 500, 0, 1, True)
    row = db.execute("SELECT engine, rows_done, stopped_at IS NOT NULL FROM pxt.workers").fetchone()
    assert row == ("ray", 500, True)


def test_killed_worker_batch_is_reclaimed_no_row_written_twice_none_lost(db, dsn, ai, ray_cluster):
    _table(db, "k", CHAT, 60)
    _count_writes(db, "k")
    ai.hang()  # every request hangs until its client goes away: the worker dies mid-batch
    env = {**os.environ, "RAY_ADDRESS": ""}
    proc = subprocess.Popen([sys.executable, "-m", "pixelgres.cli", "worker", "--ray", "--once", "--dsn", dsn,
                             "--table", "k", "--batch-size", "10", "--concurrency", "2", "--num-cpus", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True)
    try:
        ai.wait_for(20, timeout=180)  # two batches of 10 in flight, on two actors
        leased = db.execute("SELECT count(*) FROM pxt.work_leases").fetchone()[0]
        assert leased == 20
        backend = db.execute("SELECT backend_pid FROM pxt.workers WHERE stopped_at IS NULL").fetchone()[0]
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and its Ray processes
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    wait_until(lambda: not db.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s",
                                      (backend,)).fetchone()[0], "the killed worker's session to end")
    assert db.execute("SELECT count(*) FROM k WHERE c IS NOT NULL").fetchone()[0] == 0  # nothing half written
    pw = db.execute("SELECT pending, running FROM pxt.pending_work WHERE \"table\" = 'public.k'").fetchone()
    assert pw == (60, 0)  # the dead worker's leases no longer count
    ai.reset()
    with RayWorker(dsn, "k", batch_size=10, concurrency=2) as w:
        totals = w.run(once=True)
    assert totals.written == 60 and totals.stale == 0
    assert db.execute("SELECT count(*), count(DISTINCT rowid) FROM writes").fetchone() == (60, 60)
    got = dict(db.execute("SELECT s, c FROM k").fetchall())
    assert got == {f"row {i}": f"Echo: row {i}" for i in range(60)}
    assert _answered(ai) == {f"row {i}": 1 for i in range(60)}  # each input answered exactly once


def test_row_changed_while_in_flight_is_discarded_and_recomputed(db, dsn, ai, ray_cluster):
    _table(db, "st", CHAT, 5)
    _count_writes(db, "st")
    with RayWorker(dsn, "st", batch_size=5, concurrency=1) as w:
        claim = w.claim()
        assert [r[0] for r in claim["rows"]] == [1, 2, 3, 4, 5] and len(claim["calls"]) == 5
        results = ray.get(w.actors[0].run.remote(claim["calls"]))  # computed from the old input
        db.execute("UPDATE st SET s = 'changed' WHERE s = 'row 2'")
        out = w.complete(claim, results)
        assert (out["written"], out["stale"], out["lost"]) == (4, 1, 0)
        assert db.execute("SELECT c FROM st WHERE s = 'changed'").fetchone()[0] is None  # pending again
        totals = w.run(once=True)
    assert totals.written == 5  # 4 + the recomputed row
    assert db.execute("SELECT c FROM st WHERE s = 'changed'").fetchone()[0] == "Echo: changed"
    assert db.execute("SELECT count(*), count(DISTINCT rowid) FROM writes").fetchone() == (5, 5)
    assert _answered(ai) == {**{f"row {i}": 1 for i in range(5)}, "changed": 1}


def test_per_row_errors_land_in_the_error_columns_as_inline(db, dsn, ray_cluster):
    values = ["a", "fail-1", "b", "fail-2", "c"]
    _table(db, "e_inline", "pxt_test.batch_probe(s)", 0, mode="eager", on_error="ignore", values=values)
    _table(db, "e_ray", "pxt_test.batch_probe(s)", 0, on_error="ignore", values=values)
    with RayWorker(dsn, "e_ray", batch_size=10, concurrency=1) as w:
        totals = w.run(once=True)
    assert (totals.written, totals.errors) == (5, 2)
    inline = db.execute("SELECT rowid, \"column\", error_type, message FROM pxt.errors('e_inline') ORDER BY 1").fetchall()
    ray_errors = db.execute("SELECT rowid, \"column\", error_type, message FROM pxt.errors('e_ray') ORDER BY 1").fetchall()
    assert ray_errors == inline and len(inline) == 2
    assert inline[0][2:] == ("ValueError", "ValueError: batch_probe refuses 'fail-1'")
    # the values: the probe tags each with the size of the batch it ran in, both a batch of 5
    assert dict(db.execute("SELECT s, c FROM e_ray").fetchall()) == dict(db.execute("SELECT s, c FROM e_inline").fetchall())
    assert db.execute("SELECT rows_failed FROM pxt.workers").fetchone()[0] == 2


def test_rate_limit_is_shared_by_all_actors(db, dsn, ai, ray_cluster):
    db.execute("INSERT INTO pxt.ai_rate_limits (model, requests_per_minute) VALUES ('gpt-4o-mini', 60)")
    _table(db, "rl", CHAT, 40)
    with RayWorker(dsn, "rl", batch_size=10, concurrency=2, virtual_clock_seed=7) as w:
        totals = w.run(once=True)
        admitted = w.limiter_admissions()
    assert totals.written == 40 and ai.count() == 40
    assert len(admitted) == 40 and len({who for _, _, who, _ in admitted}) == 2  # both actors asked the one bucket
    times = sorted(t for _, _, _, t in admitted)
    # 60 per minute, a bucket of one: one admission per second, never two in the same second,
    # whichever actor asked; two buckets (one per actor) would have admitted pairs
    assert all(b - a >= 1.0 - 1e-9 for a, b in zip(times, times[1:]))
    assert times[-1] - times[0] == pytest.approx(39.0)


def test_worker_leases_and_heartbeats_are_visible_in_sql(db, dsn, ray_cluster):
    _table(db, "hb", "pxt_test.batch_probe(s)", 30)
    with RayWorker(dsn, "hb", batch_size=8, concurrency=1) as w:
        claim = w.claim()
        pw = db.execute("SELECT pending, running, done, workers FROM pxt.pending_work WHERE \"table\" = 'public.hb'").fetchone()
        assert pw == (22, 8, 0, 1)
        assert db.execute("SELECT pxt._work_heartbeat(%s, 60)", (w.id,)).fetchone()[0] == 8  # extends its 8 leases
        row = db.execute("SELECT engine, concurrency, heartbeat_at >= started_at, stopped_at FROM pxt.workers "
                         "WHERE id = %s", (w.id,)).fetchone()
        assert row == ("ray", 1, True, None)
        w.complete(claim, ray.get(w.actors[0].run.remote(claim["calls"])))
        w.run(once=True)
    pw = db.execute("SELECT pending, running, done, failed FROM pxt.pending_work WHERE \"table\" = 'public.hb'").fetchone()
    assert pw == (0, 0, 30, 0)


def test_claims_refuse_bad_requests_clearly(db, dsn, ray_cluster):
    _table(db, "bad", "pxt_test.batch_probe(s)", 3, mode="eager")
    with RayWorker(dsn, "bad", batch_size=8, concurrency=1) as w:
        with pytest.raises(psycopg.errors.UndefinedColumn, match="not a deferred computed column"):
            db.execute("SELECT pxt._work_claim('bad', 'c', %s, 10, 60)", (w.id,))
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="batch size must be 1 to 100000"):
            db.execute("SELECT pxt._work_claim(NULL, NULL, %s, 0, 60)", (w.id,))
    with pytest.raises(psycopg.errors.UndefinedObject, match="no worker 999999"):
        db.execute("SELECT pxt._work_claim(NULL, NULL, 999999, 10, 60)")
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="has stopped"):
        db.execute("SELECT pxt._work_claim(NULL, NULL, %s, 10, 60)", (w.id,))
    assert json.loads(json.dumps(db.execute("SELECT count(*) FROM pxt.work_leases").fetchone()[0])) == 0


def test_actor_killed_mid_batch_is_replaced_and_the_batch_retried(db, dsn, ai, ray_cluster):
    import threading

    _table(db, "ak", CHAT, 20)
    _count_writes(db, "ak")
    ai.hang(times=10)  # the first batch hangs on the first actor
    with RayWorker(dsn, "ak", batch_size=10, concurrency=1) as w:
        first = w.actors[0]
        result: dict = {}
        t = threading.Thread(target=lambda: result.update(totals=w.run(once=True)))
        t.start()
        ai.wait_for(10, timeout=120)
        ray.kill(first)  # the actor process dies with its requests in flight
        t.join(timeout=300)
        assert not t.is_alive() and w.actors[0] is not first
    assert result["totals"].written == 20
    assert db.execute("SELECT count(*), count(DISTINCT rowid) FROM writes").fetchone() == (20, 20)
    assert _answered(ai) == {f"row {i}": 1 for i in range(20)}


def test_a_role_that_cannot_write_the_table_cannot_claim(db, dsn, dbname, ray_cluster):
    _table(db, "ro", "pxt_test.batch_probe(s)", 3)
    db.execute("CREATE ROLE ro_worker LOGIN")
    db.execute("GRANT pxt_user TO ro_worker")
    db.execute("GRANT SELECT ON ro, pxt_data.\"public.ro\" TO ro_worker")
    with psycopg.connect(dsn.replace("user=postgres", "user=ro_worker"), autocommit=True) as c:
        wid = c.execute("SELECT pxt._work_register('ray', 'h', 1, 1)").fetchone()[0]
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="ro_worker|must be allowed to write"):
            c.execute("SELECT pxt._work_claim('ro', NULL, %s, 10, 60)", (wid,))
    assert db.execute("SELECT count(*) FROM pxt.work_leases").fetchone()[0] == 0
    db.execute("DELETE FROM pxt.workers WHERE owner = 'ro_worker'")
    db.execute("DROP OWNED BY ro_worker")
    db.execute("DROP ROLE ro_worker")


def test_pxt_process_pending_on_ray_and_in_the_backend(dsn, db, ray_cluster):
    import pixelgres as pxt

    _table(db, "py_ray", "pxt_test.batch_probe(s)", 12)
    _table(db, "py_backend", "pxt_test.batch_probe(s)", 0, values=["a", "fail-x", "b"], on_error="ignore")
    pxt.init(dsn)
    st = pxt.process_pending(pxt.get_table("py_ray"), engine="ray", batch_size=5)
    assert (st.num_rows, st.num_excs, st.updated_cols) == (12, 0, ["public.py_ray.c"])
    assert db.execute("SELECT count(*) FROM py_ray WHERE c LIKE 'row %|batch=_'").fetchone()[0] == 12
    st = pxt.process_pending("py_backend")
    assert (st.num_rows, st.num_excs) == (3, 1) and str(st) == "Computed 3 rows with 1 error."
    with pytest.raises(ValueError, match="engine must be 'backend' or 'ray'"):
        pxt.process_pending("py_ray", engine="spark")


def test_worker_cli_on_ray_fills_pending_with_a_progress_bar(db, dsn):
    _table(db, "cli_t", "pxt_test.batch_probe(s)", 0, on_error="ignore", values=["a", "b", "fail-c", "d", "e"])
    r = subprocess.run([sys.executable, "-m", "pixelgres.cli", "worker", "--ray", "--once", "--dsn", dsn,
                        "--batch-size", "2", "--concurrency", "1", "--num-cpus", "1"],
                       capture_output=True, text=True, timeout=300, env={**os.environ, "RAY_ADDRESS": ""})
    assert r.returncode == 0, r.stderr
    assert "processed 5 pending cells (1 errors, 0 discarded as stale) in 3 batches" in r.stdout
    assert "computing public.cli_t.c on Ray" in r.stderr and "5/5" in r.stderr and "errors=1" in r.stderr
    assert db.execute("SELECT count(c) FROM cli_t").fetchone()[0] == 4
