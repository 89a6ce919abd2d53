"""Deferred computed columns: inserts return at once, pxt.process_pending / pixelgres worker fill them."""
import os
import subprocess
import sys

import psycopg


def test_deferred_cells_are_filled_by_process_pending(db):
    db.execute("SELECT pxt.create_table('d', '{\"s\": \"string\"}')")
    db.execute("SELECT pxt.add_computed_column('d', 'p', 'pxt_test.batch_probe(s)', mode => 'deferred', on_error => 'ignore')")
    db.execute("SELECT pxt.add_computed_column('d', 'up', 'upper(p)')")
    db.execute("INSERT INTO d (s) SELECT 'r' || g FROM generate_series(1, 10) g")
    db.execute("INSERT INTO d (s) VALUES ('fail-me')")
    assert db.execute("SELECT count(*) FROM d WHERE p IS NOT NULL OR up IS NOT NULL").fetchone()[0] == 0
    st = {r[1]: r[2:] for r in db.execute("SELECT * FROM pxt.status('d')")}
    assert st["p"] == ("deferred", 11, 0, 0) and st["up"] == ("eager", 11, 0, 0)
    db.execute("CALL pxt.process_pending('d', batch_size => 4)")
    rows = db.execute("SELECT s, p, up FROM pxt_data.\"public.d\" WHERE s <> 'fail-me' ORDER BY _pxt_rowid").fetchall()
    assert all(p.startswith(s + "|batch=") and up == p.upper() for s, p, up in rows)
    assert {p.split("=")[1] for _, p, _ in rows} <= {"4", "3"}  # batches of at most 4
    st = {r[1]: r[2:] for r in db.execute("SELECT * FROM pxt.status('d')")}
    assert st["p"] == ("deferred", 0, 10, 1)
    # filling is not a new data version
    assert db.execute("SELECT count(*) FROM pxt.history('d') WHERE change_type = 'data'").fetchone()[0] == 2


def test_process_pending_reports_progress_per_batch_with_errors(db):
    import json

    db.execute("SELECT pxt.create_table('pr', '{\"s\": \"string\"}')")
    db.execute("SELECT pxt.add_computed_column('pr', 'p', 'pxt_test.batch_probe(s)', mode => 'deferred', "
               "on_error => 'ignore')")
    db.execute("INSERT INTO pr (s) SELECT CASE WHEN g = 6 THEN 'fail-me' ELSE 'r' || g END FROM generate_series(1, 11) g")
    seen = []
    db.add_notice_handler(lambda d: seen.append((d.message_primary, d.message_detail)))
    db.execute("CALL pxt.process_pending('pr', batch_size => 4)")
    reports = [json.loads(detail)["pixelgres_progress"] for msg, detail in seen if msg.startswith("pixelgres: computing")]
    assert [(r["done"], r["total"], r["errors"]) for r in reports] == [(4, 11, 0), (8, 11, 1), (11, 11, 1)]
    assert reports[0]["columns"] == ["p"] and reports[0]["table"] == "public.pr"
    assert [m for m, _ in seen if "8 of 11 rows, 1 errors" in m]  # what psql shows


def test_worker_cli_fills_pending(dsn):
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("SELECT pxt.create_table('w', '{\"s\": \"string\"}')")
        c.execute("SELECT pxt.add_computed_column('w', 'p', 'pxt_test.batch_probe(s)', mode => 'deferred')")
        c.execute("INSERT INTO w (s) SELECT 'x' || g FROM generate_series(1, 25) g")
    r = subprocess.run([sys.executable, "-m", "pixelgres.cli", "worker", "--dsn", dsn, "--once", "--batch-size", "10"],
                       capture_output=True, text=True, timeout=120, env=dict(os.environ))
    assert r.returncode == 0, r.stderr
    assert "processed 25 pending cells" in r.stdout
    assert "computing" in r.stderr and "25/25" in r.stderr and "errors=0" in r.stderr  # the bar, fed by the server
    with psycopg.connect(dsn, autocommit=True) as c:
        assert c.execute("SELECT count(*) FROM w WHERE p IS NOT NULL").fetchone()[0] == 25


def test_two_sessions_share_work_without_overlap(dsn):
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("SELECT pxt.create_table('s', '{\"s\": \"string\"}')")
        c.execute("SELECT pxt.add_computed_column('s', 'p', 'pxt_test.batch_probe(s)', mode => 'deferred')")
        c.execute("INSERT INTO s (s) SELECT 'x' || g FROM generate_series(1, 40) g")
    procs = [subprocess.Popen([sys.executable, "-m", "pixelgres.cli", "worker", "--dsn", dsn, "--once",
                               "--batch-size", "5"], stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    done = sum(int(o.split()[1]) for o in outs if o.strip())
    with psycopg.connect(dsn, autocommit=True) as c:
        assert c.execute("SELECT count(*) FROM s WHERE p IS NOT NULL").fetchone()[0] == 40
    assert done == 40  # every cell processed exactly once across the two workers


def test_recompute_column_deferred_marks_cells_pending_for_workers(db):
    db.execute("SELECT pxt.create_table('rc', '{\"s\": \"string\"}')")
    db.execute("SELECT pxt.add_computed_column('rc', 'p', 'pxt_test.batch_probe(s)', mode => 'deferred', "
               "on_error => 'ignore')")  # batched
    db.execute("SELECT pxt.add_computed_column('rc', 'q', 'lower(s)', mode => 'deferred')")  # per row
    db.execute("SELECT pxt.add_computed_column('rc', 'up', 'upper(p)')")  # eager, downstream of p
    db.execute("INSERT INTO rc (s) VALUES ('A'), ('B'), ('fail-me'), ('D')")
    db.execute("CALL pxt.process_pending('rc')")
    st = {r[1]: r[3:] for r in db.execute("SELECT * FROM pxt.status('rc')")}
    assert st == {"p": (0, 3, 1), "q": (0, 4, 0), "up": (1, 3, 0)}  # up of the failed row stays NULL
    for col in ("p", "q"):
        assert db.execute("SELECT pxt.recompute_column('rc', %s, mode => 'deferred')", (col,)).fetchone()[0] == 4
    st = {r[1]: r[3:] for r in db.execute("SELECT * FROM pxt.status('rc')")}
    assert st["p"] == (4, 0, 0) and st["q"] == (4, 0, 0)  # pending again, the error cleared
    assert db.execute("SELECT count(*) FROM rc WHERE up IS NOT NULL").fetchone()[0] == 0  # follows p
    db.execute("CALL pxt.process_pending('rc')")
    rows = db.execute("SELECT s, p, q, up FROM rc ORDER BY s").fetchall()
    assert rows == [("A", "A|batch=4", "a", "A|BATCH=4"), ("B", "B|batch=4", "b", "B|BATCH=4"),
                    ("D", "D|batch=4", "d", "D|BATCH=4"), ("fail-me", None, "fail-me", None)]
    # eager mode computes now, in this statement
    assert db.execute("SELECT pxt.recompute_column('rc', 'q')").fetchone()[0] == 4
    assert db.execute("SELECT count(*) FROM rc WHERE q IS NULL").fetchone()[0] == 0
    import pytest
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="computed eagerly"):
        db.execute("SELECT pxt.recompute_column('rc', 'up', mode => 'deferred')")
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="mode must be 'eager' or 'deferred'"):
        db.execute("SELECT pxt.recompute_column('rc', 'p', mode => 'later')")
    with pytest.raises(psycopg.errors.WrongObjectType, match="not a computed column"):
        db.execute("SELECT pxt.recompute_column('rc', 's', mode => 'deferred')")
