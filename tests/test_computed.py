"""Computed columns from SQL, as any SQL client would use them (psycopg, autocommit)."""
import psycopg
import pytest


def cols(db, table):
    return {r[0]: r for r in db.execute("SELECT * FROM pxt.columns(%s)", (table,))}


@pytest.fixture
def flaky(db):
    """A UDF that fails for the inputs listed in table fail_set (so a test can 'fix' it)."""
    db.execute("CREATE TABLE fail_set (x int PRIMARY KEY)")
    db.execute("""CREATE FUNCTION flaky(x bigint) RETURNS bigint LANGUAGE plpgsql AS $$
        BEGIN
            IF EXISTS (SELECT 1 FROM fail_set f WHERE f.x = flaky.x) THEN
                RAISE EXCEPTION 'flaky refuses %', x USING ERRCODE = '22000';
            END IF;
            RETURN x * 2;
        END $$""")
    db.execute("SELECT pxt.create_table('t', '{\"x\": \"int\", \"note\": \"string\"}')")
    return db


def test_dependency_chain_with_json_path(db):
    db.execute("SELECT pxt.create_table('ml.docs', '{\"body\": \"json\", \"n\": \"int\"}')")
    db.execute("SELECT pxt.add_computed_column('ml.docs', 'response', $$jsonb_build_object('choices', "
               "jsonb_build_array(jsonb_build_object('message', jsonb_build_object('content', body->>'text'))))$$)")
    db.execute("SELECT pxt.add_computed_column('ml.docs', 'caption', "
               "$$response->'choices'->0->'message'->>'content'$$)")
    db.execute("SELECT pxt.add_computed_column('ml.docs', 'shout', 'upper(caption) || n')")
    db.execute("""INSERT INTO ml.docs (body, n) VALUES ('{"text": "a dog"}', 1), ('{"text": "a cat"}', 2)""")
    rows = db.execute("SELECT caption, shout FROM ml.docs ORDER BY n").fetchall()
    assert rows == [("a dog", "A DOG1"), ("a cat", "A CAT2")]
    c = cols(db, "ml.docs")
    assert c["caption"][3] and c["caption"][6] == ["response"] and c["caption"][1] == "text"
    assert c["response"][1] == "jsonb" and c["shout"][6] == ["n", "caption"] or c["shout"][6] == ["caption", "n"]
    assert not c["body"][3]
    # updating an input flows down the whole chain
    db.execute("""UPDATE ml.docs SET body = '{"text": "a bird"}' WHERE n = 1""")
    assert db.execute("SELECT shout FROM ml.docs WHERE n = 1").fetchone()[0] == "A BIRD1"


def test_abort_names_column_row_and_cause(flaky):
    db = flaky
    db.execute("INSERT INTO fail_set SELECT g FROM generate_series(10, 100, 10) g")
    db.execute("SELECT pxt.add_computed_column('t', 'y', 'flaky(x)')")
    with pytest.raises(psycopg.errors.DataException) as e:
        db.execute("INSERT INTO t (x) SELECT g FROM generate_series(1, 100) g")
    msg = str(e.value)
    assert "computed column y of public.t failed for row" in msg
    assert "x='10'" in msg and "flaky refuses 10" in msg
    assert db.execute("SELECT count(*) FROM t").fetchone()[0] == 0  # nothing half-written
    assert db.execute("SELECT 1").fetchone()[0] == 1


def test_ignore_records_errors_then_errors_only_recompute(flaky):
    db = flaky
    db.execute("INSERT INTO fail_set SELECT g FROM generate_series(10, 100, 10) g")
    db.execute("SELECT pxt.add_computed_column('t', 'y', 'flaky(x)', on_error => 'ignore')")
    db.execute("SELECT pxt.add_computed_column('t', 'z', 'y + 1')")
    db.execute("INSERT INTO t (x) SELECT g FROM generate_series(1, 100) g")
    assert db.execute("SELECT count(*) FROM t WHERE y IS NOT NULL").fetchone()[0] == 90
    errs = db.execute("SELECT rowid, \"column\", error_type, message, sqlstate FROM pxt.errors('t')").fetchall()
    assert len(errs) == 10 and {e[1] for e in errs} == {"y"}
    assert all("flaky refuses" in e[3] and e[4] == "22000" for e in errs)
    # the per-row companion: _pxt_errors is queryable like any jsonb column
    assert db.execute("SELECT count(*) FROM t WHERE _pxt_errors ? 'y'").fetchone()[0] == 10
    # fix the cause, then recompute only the failed cells (and their dependents)
    db.execute("DELETE FROM fail_set")
    db.execute("CREATE SEQUENCE calls")
    n = db.execute("SELECT pxt.recompute_columns('t', ARRAY['y'], errors_only => true)").fetchone()[0]
    assert n == 10
    assert db.execute("SELECT count(*) FROM t WHERE y = 2 * x AND z = y + 1").fetchone()[0] == 100
    assert db.execute("SELECT count(*) FROM pxt.errors('t')").fetchone()[0] == 0


def test_writing_computed_column_is_rejected(flaky):
    db = flaky
    db.execute("SELECT pxt.add_computed_column('t', 'y', 'x + 1')")
    with pytest.raises(psycopg.errors.lookup("428C9"), match="cannot write computed column y"):
        db.execute("INSERT INTO t (x, y) VALUES (1, 5)")
    db.execute("INSERT INTO t (x) VALUES (1)")
    with pytest.raises(psycopg.errors.lookup("428C9")):
        db.execute("UPDATE t SET y = 7")
    assert db.execute("SELECT x, y FROM t").fetchall() == [(1, 2)]


def test_drop_with_dependents_rejected(flaky):
    db = flaky
    db.execute("SELECT pxt.add_computed_column('t', 'y', 'x + 1')")
    db.execute("SELECT pxt.add_computed_column('t', 'z', 'y * 10')")
    with pytest.raises(psycopg.Error, match="z depend on it"):
        db.execute("SELECT pxt.drop_column('t', 'y')")
    with pytest.raises(psycopg.errors.DependentObjectsStillExist):
        db.execute("ALTER TABLE t DROP COLUMN x")  # plain DDL is protected too
    db.execute("SELECT pxt.drop_column('t', 'z')")
    db.execute("SELECT pxt.drop_column('t', 'y')")
    assert set(cols(db, "t")) == {"x", "note"}
    db.execute("INSERT INTO t (x) VALUES (3)")  # the regenerated trigger works


def test_backfill_existing_rows_and_progress(db):
    db.execute("SELECT pxt.create_table('big', '{\"x\": \"int\"}')")
    db.execute("INSERT INTO big (x) SELECT g FROM generate_series(1, 12000) g")
    notices = []
    db.add_notice_handler(lambda d: notices.append(d.message_primary))
    db.execute("SELECT pxt.add_computed_column('big', 'sq', 'x * x')")
    assert db.execute("SELECT count(*) FROM big WHERE sq = x * x").fetchone()[0] == 12000
    progress = [n for n in notices if "computing sq" in n]
    assert progress and progress[-1].endswith("12000 of 12000 rows")


def test_update_recomputes_only_dependents(db):
    db.execute("CREATE SEQUENCE calls_a")
    db.execute("CREATE SEQUENCE calls_b")
    db.execute("CREATE FUNCTION count_a(x bigint) RETURNS bigint LANGUAGE sql VOLATILE AS $$ SELECT x + 0 * nextval('calls_a') $$")
    db.execute("CREATE FUNCTION count_b(x text) RETURNS text LANGUAGE sql VOLATILE AS $$ SELECT x || (0 * nextval('calls_b'))::text $$")
    db.execute("SELECT pxt.create_table('u', '{\"a\": \"int\", \"b\": \"string\"}')")
    db.execute("SELECT pxt.add_computed_column('u', 'fa', 'count_a(a)')")
    db.execute("SELECT pxt.add_computed_column('u', 'fb', 'count_b(b)')")
    db.execute("INSERT INTO u (a, b) SELECT g, 's' || g FROM generate_series(1, 20) g")
    def calls():
        return db.execute("SELECT (SELECT last_value FROM calls_a), (SELECT last_value FROM calls_b)").fetchone()
    before = calls()
    db.execute("UPDATE u SET b = b || '!' WHERE a <= 5")
    after = calls()
    assert after[0] == before[0]          # fa not recomputed
    assert after[1] == before[1] + 5      # fb recomputed for the 5 updated rows
    assert db.execute("SELECT count(*) FROM u WHERE fb LIKE '%!0'").fetchone()[0] == 5


def test_alter_and_readd_recompute_only_that_column(db):
    db.execute("CREATE SEQUENCE calls_a")
    db.execute("CREATE FUNCTION count_a(x bigint) RETURNS bigint LANGUAGE sql VOLATILE AS $$ SELECT x + 0 * nextval('calls_a') $$")
    db.execute("SELECT pxt.create_table('u', '{\"a\": \"int\"}')")
    db.execute("SELECT pxt.add_computed_column('u', 'fa', 'count_a(a)')")
    db.execute("SELECT pxt.add_computed_column('u', 'dbl', 'a * 2')")
    db.execute("INSERT INTO u (a) SELECT g FROM generate_series(1, 10) g")
    n0 = db.execute("SELECT last_value FROM calls_a").fetchone()[0]
    db.execute("SELECT pxt.alter_computed_column('u', 'dbl', 'a * 3')")
    assert db.execute("SELECT last_value FROM calls_a").fetchone()[0] == n0
    assert db.execute("SELECT count(*) FROM u WHERE dbl = 3 * a").fetchone()[0] == 10
    db.execute("SELECT pxt.drop_column('u', 'dbl')")
    db.execute("SELECT pxt.add_computed_column('u', 'dbl', 'a * 4')")
    assert db.execute("SELECT last_value FROM calls_a").fetchone()[0] == n0
    assert db.execute("SELECT count(*) FROM u WHERE dbl = 4 * a").fetchone()[0] == 10
    with pytest.raises(psycopg.Error, match="has type text"):
        db.execute("SELECT pxt.alter_computed_column('u', 'dbl', $$'x'$$)")


def test_batch_arrives_whole(db):
    db.execute("SELECT pxt.create_table('b', '{\"s\": \"string\"}')")
    db.execute("SELECT pxt.add_computed_column('b', 'p', 'pxt.batch_probe(s)')")
    db.execute("SELECT pxt.add_computed_column('b', 'after', 'upper(p)')")  # downstream of batched
    db.execute("INSERT INTO b (s) SELECT 'r' || g FROM generate_series(1, 100) g")
    rows = db.execute("SELECT s, p, after FROM b ORDER BY _pxt_rowid").fetchall()
    assert len(rows) == 100
    assert all(p == f"{s}|batch=100" and after == p.upper() for s, p, after in rows)
    # a second statement is a second batch; an update re-evaluates only the changed rows
    db.execute("INSERT INTO b (s) VALUES ('x'), ('y')")
    assert db.execute("SELECT p FROM b WHERE s = 'x'").fetchone()[0] == "x|batch=2"
    db.execute("UPDATE b SET s = s || 'z' WHERE s IN ('r1', 'r2', 'r3')")
    assert db.execute("SELECT array_agg(p ORDER BY s) FROM b WHERE s LIKE '%z'").fetchone()[0] == [
        "r1z|batch=3", "r2z|batch=3", "r3z|batch=3"]
    assert db.execute("SELECT after FROM b WHERE s = 'r1z'").fetchone()[0] == "R1Z|BATCH=3"
    # identical inputs within a statement are one call
    db.execute("INSERT INTO b (s) VALUES ('same'), ('same'), ('same')")
    assert db.execute("SELECT array_agg(DISTINCT p) FROM b WHERE s = 'same'").fetchone()[0] == ["same|batch=1"]
    # calling the function directly, outside any table, is a batch of one
    assert db.execute("SELECT pxt.batch_probe('solo')").fetchone()[0] == "solo|batch=1"


def test_batched_errors_follow_on_error(db):
    db.execute("SELECT pxt.create_table('b', '{\"s\": \"string\"}')")
    db.execute("SELECT pxt.add_computed_column('b', 'p', 'pxt.batch_probe(s)', on_error => 'ignore')")
    db.execute("INSERT INTO b (s) VALUES ('ok1'), ('fail1'), ('ok2')")
    assert db.execute("SELECT s, p FROM b ORDER BY _pxt_rowid").fetchall() == [
        ("ok1", "ok1|batch=3"), ("fail1", None), ("ok2", "ok2|batch=3")]
    err = db.execute("SELECT \"column\", error_type, message FROM pxt.errors('b')").fetchall()
    assert err == [("p", "ValueError", "ValueError: batch_probe refuses 'fail1'")]
    db.execute("SELECT pxt.create_table('c', '{\"s\": \"string\"}')")
    db.execute("SELECT pxt.add_computed_column('c', 'p', 'pxt.batch_probe(s)')")
    with pytest.raises(psycopg.Error, match=r"computed column p of public.c failed for row \(_pxt_rowid=2\)"):
        db.execute("INSERT INTO c (s) VALUES ('ok1'), ('fail1')")
    assert db.execute("SELECT count(*) FROM c").fetchone()[0] == 0
    db.execute("INSERT INTO c (s) VALUES ('fine')")  # no stale batch state
    assert db.execute("SELECT p FROM c").fetchone()[0] == "fine|batch=1"


def test_manage_plain_ddl_table(db):
    db.execute("CREATE TABLE plain (id serial PRIMARY KEY, image pxt.image, label text)")
    db.execute("INSERT INTO plain (label) VALUES ('a'), ('b')")
    db.execute("SELECT pxt.manage('plain')")
    db.execute("SELECT pxt.add_computed_column('plain', 'shout', 'upper(label)')")
    db.execute("INSERT INTO plain (label) VALUES ('c')")
    assert db.execute("SELECT array_agg(shout ORDER BY id) FROM plain").fetchone()[0] == ["A", "B", "C"]
    c = cols(db, "plain")
    assert c["image"][2] == "image" and c["shout"][3]
    # columns added with plain DDL join the catalog as inputs
    db.execute("ALTER TABLE plain ADD COLUMN extra int")
    assert "extra" in cols(db, "plain")


def test_rename_column_keeps_computing(db):
    db.execute("SELECT pxt.create_table('r', '{\"a\": \"string\"}')")
    db.execute("SELECT pxt.add_computed_column('r', 'up', 'upper(a)')")
    db.execute("ALTER TABLE r RENAME COLUMN a TO b")
    db.execute("INSERT INTO r (b) VALUES ('x')")
    assert db.execute("SELECT up FROM r").fetchone()[0] == "X"
    assert cols(db, "r")["up"][6] == ["b"]


@pytest.mark.parametrize("expr, err", [
    ("1); DROP TABLE inj; SELECT (1", "';' is not allowed|unbalanced"),
    ("x; DROP TABLE inj", "';' is not allowed"),
    ("1) FROM inj --", "unbalanced parentheses|comments"),
    ("(SELECT count(*) FROM inj)", "subqueries"),
    ("x /* c */", "comments"),
    ("E'\\x'", "not allowed|not accepted"),
    ("$$a$$", "not allowed"),
    ("pg_class.oid", "missing FROM-clause"),
    ("nosuchcol + 1", "does not exist"),
    ("'unterminated", "unterminated"),
])
def test_hostile_expressions_are_refused(db, expr, err):
    db.execute("SELECT pxt.create_table('inj', '{\"x\": \"int\"}')")
    with pytest.raises(psycopg.Error, match=err):
        db.execute("SELECT pxt.add_computed_column('inj', 'c', %s)", (expr,))
    assert db.execute("SELECT count(*) FROM pxt.columns('inj')").fetchone()[0] == 1
    assert db.execute("SELECT to_regclass('inj') IS NOT NULL").fetchone()[0]


@pytest.mark.parametrize("name", ['bad"name', "x; DROP TABLE t", "a.b.c.d", ""])
def test_hostile_table_names(db, name):
    with pytest.raises(psycopg.Error):
        db.execute("SELECT pxt.create_table(%s, '{\"x\": \"int\"}')", (name,))
    assert db.execute("SELECT 1").fetchone()[0] == 1


def test_quoted_identifiers_work(db):
    tname = '"My Schema"."Odd ""Table"""'
    db.execute("SELECT pxt.create_table(%s, %s)", (tname, '{"Col; x": "string"}'))
    db.execute("SELECT pxt.add_computed_column(%s, 'len', 'length(\"Col; x\")')", (tname,))
    db.execute(f"INSERT INTO {tname} (\"Col; x\") VALUES ('abc')")
    assert db.execute(f"SELECT len FROM {tname}").fetchone()[0] == 3


def test_drop_table_cleans_catalog(db):
    db.execute("SELECT pxt.create_table('gone', '{\"x\": \"int\"}')")
    db.execute("SELECT pxt.add_computed_column('gone', 'y', 'x + 1')")
    db.execute("SELECT pxt.drop_table('gone')")
    assert db.execute("SELECT count(*) FROM pxt.tables").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
                      "WHERE n.nspname = 'pxt_internal'").fetchone()[0] == 0
    db.execute("SELECT pxt.create_table('gone2', '{\"x\": \"int\"}')")
    db.execute("DROP TABLE gone2")  # plain DDL too
    assert db.execute("SELECT count(*) FROM pxt.tables").fetchone()[0] == 0


def test_create_table_keeps_column_order(db):
    db.execute("""SELECT pxt.create_table('ord', '{"zeta": "int", "alpha": "string", "mid": "float"}')""")
    names = [r[0] for r in db.execute("SELECT name FROM pxt.columns('ord')")]
    assert names == ["zeta", "alpha", "mid"]
