"""Versioning: history, revert, snapshots, time travel, retention — checked against a model."""

import psycopg
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule


def live(db, table, columns):
    cols = ", ".join(f'"{c}"' for c in columns)
    return {r[0]: dict(zip(columns, r[1:])) for r in
            db.execute(f'SELECT _pxt_rowid{", " + cols if cols else ""} FROM "{table}"')}


def at(db, table, n):
    return {r["_pxt_rowid"]: {k: v for k, v in r.items() if k != "_pxt_rowid"}
            for (r,) in db.execute("SELECT * FROM pxt.rows_at_version(%s, %s)", (table, n))}


# --- the model-based property test ----------------------------------------------------------------
class VersionedTable(RuleBasedStateMachine):
    """Random insert/update/delete/add column/add computed column/drop column/revert/snapshot
    sequences; after every step the live table, every snapshot and every earlier version must
    equal the model (a list of (schema, rows) per version)."""

    db: psycopg.Connection = None
    counter = 0

    @initialize()
    def setup(self):
        VersionedTable.counter += 1
        self.t = f"m{VersionedTable.counter}"
        self.db.execute("SELECT pxt.create_table(%s, '{\"a\": \"int\"}')", (self.t,))
        # each version: (columns in order, {column: expression or None}, rows {rowid: {col: val}})
        self.versions = [(["a"], {"a": None}, {})]
        self.snapshots = {}  # name -> (columns, rows) it must show forever
        self.ncol = 0

    def teardown(self):
        if getattr(self, "t", None):
            self.db.execute("SELECT pxt.drop_table(%s, force => true)", (self.t,))

    @property
    def cur(self):
        return self.versions[-1]

    def push(self, cols, exprs, rows):
        self.versions.append((cols, exprs, rows))

    def compute(self, exprs, row):
        for c, e in exprs.items():
            if e is not None:  # computed columns are "<src> * 10 + 1"
                src = e
                row[c] = None if row.get(src) is None else row[src] * 10 + 1
        return row

    @rule(vals=st.lists(st.one_of(st.none(), st.integers(-50, 50)), min_size=1, max_size=4))
    def insert(self, vals):
        cols, exprs, rows = self.cur
        new = dict(rows)
        inputs = [c for c in cols if exprs[c] is None]
        for v in vals:
            record = {c: (v if c == "a" else (None if v is None else v + 1)) for c in inputs}
            names = ", ".join(f'"{c}"' for c in record)
            rid = self.db.execute(f'INSERT INTO "{self.t}" ({names}) VALUES ({", ".join(["%s"] * len(record))}) '
                                  f"RETURNING _pxt_rowid", list(record.values())).fetchone()[0]
            new[rid] = self.compute(exprs, {c: None for c in cols} | record)
            self.push(cols, exprs, dict(new))

    @precondition(lambda self: self.cur[2])
    @rule(data=st.data(), delta=st.integers(-5, 5))
    def update(self, data, delta):
        cols, exprs, rows = self.cur
        ids = data.draw(st.lists(st.sampled_from(sorted(rows)), min_size=1, unique=True))
        self.db.execute(f'UPDATE "{self.t}" SET a = coalesce(a, 0) + %s WHERE _pxt_rowid = ANY(%s)', (delta, ids))
        new = {k: dict(v) for k, v in rows.items()}
        for i in ids:
            new[i]["a"] = (new[i]["a"] or 0) + delta
            self.compute(exprs, new[i])
        self.push(cols, exprs, new)

    @precondition(lambda self: self.cur[2])
    @rule(data=st.data())
    def delete(self, data):
        cols, exprs, rows = self.cur
        ids = data.draw(st.lists(st.sampled_from(sorted(rows)), min_size=1, unique=True))
        self.db.execute(f'DELETE FROM "{self.t}" WHERE _pxt_rowid = ANY(%s)', (ids,))
        self.push(cols, exprs, {k: dict(v) for k, v in rows.items() if k not in ids})

    @rule()
    def add_column(self):
        cols, exprs, rows = self.cur
        self.ncol += 1
        name = f"i{self.ncol}"
        self.db.execute("SELECT pxt.add_column(%s, %s, 'int')", (self.t, name))
        self.push(cols + [name], exprs | {name: None}, {k: v | {name: None} for k, v in rows.items()})

    @rule(data=st.data())
    def add_computed_column(self, data):
        cols, exprs, rows = self.cur
        src = data.draw(st.sampled_from([c for c in cols if exprs[c] is None]))
        self.ncol += 1
        name = f"c{self.ncol}"
        self.db.execute("SELECT pxt.add_computed_column(%s, %s, %s)", (self.t, name, f'"{src}" * 10 + 1'))
        new_exprs = exprs | {name: src}
        self.push(cols + [name], new_exprs,
                  {k: self.compute({name: src}, dict(v) | {name: None}) for k, v in rows.items()})

    @precondition(lambda self: len(self.cur[0]) > 1)
    @rule(data=st.data())
    def drop_column(self, data):
        cols, exprs, rows = self.cur
        used = {e for e in exprs.values() if e}
        droppable = [c for c in cols if c != "a" and c not in used]
        if not droppable:
            return
        name = data.draw(st.sampled_from(droppable))
        self.db.execute("SELECT pxt.drop_column(%s, %s)", (self.t, name))
        self.push([c for c in cols if c != name], {k: v for k, v in exprs.items() if k != name},
                  {k: {c: x for c, x in v.items() if c != name} for k, v in rows.items()})

    @rule(strict=st.booleans())
    def revert(self, strict):
        v = len(self.versions) - 1
        pinned = self.db.execute("SELECT count(*) FROM pxt.tables WHERE kind = 'snapshot' AND base = %s::regclass "
                                 "AND pins >= %s", (self.t, v)).fetchone()[0]
        if v == 0 or (pinned and strict):
            with pytest.raises(psycopg.Error, match="version 0|pins version"):
                self.db.execute("SELECT pxt.revert(%s, if_pinned => 'error')", (self.t,))
            return
        mode = "error" if strict else "materialize"
        assert self.db.execute("SELECT pxt.revert(%s, if_pinned => %s)", (self.t, mode)).fetchone()[0] == v - 1
        self.versions.pop()

    @rule()
    def snapshot(self):
        self.ncol += 1
        name = f"{self.t}_s{self.ncol}"
        self.db.execute("SELECT pxt.create_snapshot(%s, %s)", (name, self.t))
        cols, _, rows = self.cur
        self.snapshots[name] = (cols, {k: {c: r[c] for c in cols} for k, r in rows.items()})

    @precondition(lambda self: self.snapshots)
    @rule(data=st.data())
    def drop_snapshot(self, data):
        name = data.draw(st.sampled_from(sorted(self.snapshots)))
        self.db.execute("SELECT pxt.drop_snapshot(%s)", (name,))
        del self.snapshots[name]

    @invariant()
    def matches_model(self):
        if not getattr(self, "t", None):
            return
        cols, exprs, rows = self.cur
        assert live(self.db, self.t, cols) == rows
        assert self.db.execute("SELECT version FROM pxt.tables WHERE relid = %s::regclass",
                               (self.t,)).fetchone()[0] == len(self.versions) - 1
        for n, (vcols, _, vrows) in enumerate(self.versions):
            got = at(self.db, self.t, n)
            assert got == {k: {c: r[c] for c in vcols} for k, r in vrows.items()}, f"version {n}"
        for name, (vcols, vrows) in self.snapshots.items():
            assert live(self.db, name, vcols) == vrows, f"snapshot {name}"


def test_versioning_matches_model(db):
    VersionedTable.db = db
    VersionedTable.TestCase.settings = settings(
        max_examples=200, stateful_step_count=8, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    VersionedTable.TestCase().runTest()


# --- scenarios ------------------------------------------------------------------------------------
def test_revert_to_zero_then_fails(db):
    db.execute("SELECT pxt.create_table('r', '{\"x\": \"int\"}')")
    db.execute("INSERT INTO r (x) VALUES (1)")
    db.execute("INSERT INTO r (x) VALUES (2), (3)")
    assert db.execute("SELECT pxt.revert('r')").fetchone()[0] == 1
    assert db.execute("SELECT pxt.revert('r')").fetchone()[0] == 0
    with pytest.raises(psycopg.Error, match="at version 0, there is nothing to undo"):
        db.execute("SELECT pxt.revert('r')")
    assert db.execute("SELECT count(*) FROM r").fetchone()[0] == 0


def test_history_counts(db):
    db.execute("SELECT pxt.create_table('h', '{\"x\": \"int\"}')")
    db.execute("SELECT pxt.add_computed_column('h', 'y', 'pxt.batch_probe(x::text)', on_error => 'ignore')")
    db.execute("INSERT INTO h (x) SELECT g FROM generate_series(1, 5) g")
    db.execute("UPDATE h SET x = x + 10 WHERE x <= 2")
    db.execute("DELETE FROM h WHERE x = 3")
    db.execute("UPDATE h SET x = x WHERE false")  # changes nothing: no version
    db.execute("SELECT pxt.rename_column('h', 'x', 'xx')")
    db.execute("INSERT INTO h (xx) VALUES (NULL)")
    hist = db.execute("SELECT version, change_type, inserts, updates, deletes, schema_change->>'op' "
                      "FROM pxt.history('h') ORDER BY version").fetchall()
    assert hist == [
        (0, "schema", 0, 0, 0, "create"),
        (1, "schema", 0, 0, 0, "add_column"),
        (2, "data", 5, 0, 0, None),
        (3, "data", 0, 2, 0, None),
        (4, "data", 0, 0, 1, None),
        (5, "schema", 0, 0, 0, "rename_column"),
        (6, "data", 1, 0, 0, None),
    ]
    # the batched write-back belongs to the inserting statement's version
    assert db.execute("SELECT count(DISTINCT _pxt_v) FROM h WHERE xx > 3 AND xx < 10").fetchone()[0] == 1
    cols = db.execute("SELECT column_name FROM information_schema.columns WHERE table_name = 'h'").fetchall()
    assert ("xx",) in cols
    db.execute("SELECT pxt.revert('h')")
    db.execute("SELECT pxt.revert('h')")  # the rename
    assert ("x",) in db.execute("SELECT column_name FROM information_schema.columns WHERE table_name = 'h'").fetchall()


def test_errors_are_counted_in_history(db):
    db.execute("SELECT pxt.create_table('e', '{\"s\": \"string\"}')")
    db.execute("SELECT pxt.add_computed_column('e', 'p', 'pxt.batch_probe(s)', on_error => 'ignore')")
    db.execute("INSERT INTO e (s) VALUES ('ok'), ('fail1'), ('fail2')")
    assert db.execute("SELECT inserts, errors FROM pxt.history('e') WHERE version = 2").fetchone() == (3, 2)


def test_snapshot_is_unchanged_by_later_changes_and_reverts(db):
    db.execute("SELECT pxt.create_table('ml.images', '{\"label\": \"string\"}')")
    db.execute("INSERT INTO ml.images (label) VALUES ('cat'), ('dog')")
    db.execute("SELECT pxt.create_snapshot('ml.images_before_relabeling', 'ml.images')")
    before = db.execute("SELECT _pxt_rowid, label FROM ml.images_before_relabeling ORDER BY 1").fetchall()
    db.execute("UPDATE ml.images SET label = 'animal'")
    db.execute("INSERT INTO ml.images (label) VALUES ('bird')")
    db.execute("DELETE FROM ml.images WHERE _pxt_rowid = 1")
    db.execute("SELECT pxt.add_computed_column('ml.images', 'n', 'length(label)')")
    assert db.execute("SELECT _pxt_rowid, label FROM ml.images_before_relabeling ORDER BY 1").fetchall() == before
    with pytest.raises(psycopg.Error):  # read-only
        db.execute("UPDATE ml.images_before_relabeling SET label = 'x'")
    for _ in range(4):
        db.execute("SELECT pxt.revert('ml.images')")
    # the strict mode refuses to undo the version a snapshot shows, as Pixeltable does
    with pytest.raises(psycopg.Error, match="snapshot ml.images_before_relabeling pins version 1"):
        db.execute("SELECT pxt.revert('ml.images', if_pinned => 'error')")
    with pytest.raises(psycopg.Error, match="if_pinned must be"):
        db.execute("SELECT pxt.revert('ml.images', if_pinned => 'x')")
    # the default keeps the snapshot: it takes over the rows version 1 inserted
    assert db.execute("SELECT pxt.revert('ml.images')").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM ml.images").fetchone()[0] == 0
    assert db.execute("SELECT _pxt_rowid, label FROM ml.images_before_relabeling ORDER BY 1").fetchall() == before
    assert db.execute("SELECT version, pins FROM pxt.tables WHERE relid = 'ml.images_before_relabeling'::regclass"
                      ).fetchone() == (1, 0)
    db.execute("INSERT INTO ml.images (label) VALUES ('fish')")   # version 1 again, a different one
    assert db.execute("SELECT _pxt_rowid, label FROM ml.images_before_relabeling ORDER BY 1").fetchall() == before
    with pytest.raises(psycopg.Error, match="snapshots ml.images_before_relabeling read it"):
        db.execute("SELECT pxt.drop_table('ml.images')")
    overlay = db.execute("SELECT 'pxt_internal.' || quote_ident('snap_' || vkey) FROM pxt.tables "
                         "WHERE relid = 'ml.images_before_relabeling'::regclass").fetchone()[0]
    db.execute("SELECT pxt.drop_snapshot('ml.images_before_relabeling')")
    assert db.execute("SELECT to_regclass(%s)", (overlay,)).fetchone()[0] is None
    db.execute("SELECT pxt.drop_table('ml.images')")


def test_snapshot_survives_reverts_of_schema_and_data_versions(db):
    """A chain of reverts under a snapshot: data versions move only their rows into the overlay
    (the snapshot then pins the previous version), a schema version copies the snapshot whole."""
    db.execute("SELECT pxt.create_table('sv', '{\"a\": \"int\"}')")
    db.execute("INSERT INTO sv (a) SELECT g FROM generate_series(1, 50) g")            # v1
    db.execute("SELECT pxt.add_computed_column('sv', 'b', 'a * 2')")                   # v2
    db.execute("UPDATE sv SET a = a + 100 WHERE a <= 10")                              # v3
    db.execute("DELETE FROM sv WHERE a BETWEEN 20 AND 24")                             # v4
    db.execute("SELECT pxt.create_snapshot('sv_s', 'sv')")
    want = db.execute("SELECT _pxt_rowid, a, b FROM sv ORDER BY 1").fetchall()
    assert len(want) == 45
    overlay_rows = []
    for v in (4, 3):
        assert db.execute("SELECT pxt.revert('sv')").fetchone()[0] == v - 1
        assert db.execute("SELECT _pxt_rowid, a, b FROM sv_s ORDER BY 1").fetchall() == want
        overlay_rows.append(db.execute("SELECT count(*) FROM pxt_internal.{} ".format(
            db.execute("SELECT quote_ident('snap_' || vkey) FROM pxt.tables WHERE relid = 'sv_s'::regclass"
                       ).fetchone()[0])).fetchone()[0])
    assert overlay_rows == [5, 15]   # 5 tombstones, then the 10 updated rows: what each version changed
    assert db.execute("SELECT pins FROM pxt.tables WHERE relid = 'sv_s'::regclass").fetchone()[0] == 2
    db.execute("SELECT pxt.revert('sv')")                                               # schema: copy all
    assert db.execute("SELECT pins FROM pxt.tables WHERE relid = 'sv_s'::regclass").fetchone()[0] is None
    db.execute("SELECT pxt.revert('sv')")
    db.execute("INSERT INTO sv (a) VALUES (7)")
    assert db.execute("SELECT _pxt_rowid, a, b FROM sv_s ORDER BY 1").fetchall() == want
    assert db.execute("SELECT pxt.vacuum_history('sv', keep => 1)").fetchone()[0]["retained_from"] == 1
    assert db.execute("SELECT _pxt_rowid, a, b FROM sv_s ORDER BY 1").fetchall() == want
    db.execute("SELECT pxt.drop_table('sv', force => true)")


def test_revert_add_computed_column_and_readd_recomputes_only_it(db):
    db.execute("CREATE SEQUENCE calls")
    db.execute("CREATE FUNCTION counted(x bigint) RETURNS bigint LANGUAGE sql VOLATILE AS "
               "$$ SELECT x + 0 * nextval('calls') $$")
    db.execute("SELECT pxt.create_table('c', '{\"x\": \"int\"}')")
    db.execute("SELECT pxt.add_computed_column('c', 'k', 'counted(x)')")
    db.execute("INSERT INTO c (x) SELECT g FROM generate_series(1, 10) g")
    db.execute("SELECT pxt.add_computed_column('c', 'sq', 'x * x')")
    n = db.execute("SELECT last_value FROM calls").fetchone()[0]
    db.execute("SELECT pxt.revert('c')")
    assert "sq" not in {r[0] for r in db.execute("SELECT name FROM pxt.columns('c')")}
    assert "sq" not in {r[0] for r in db.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'c'")}
    db.execute("SELECT pxt.add_computed_column('c', 'sq', 'x * x')")
    assert db.execute("SELECT last_value FROM calls").fetchone()[0] == n  # k not recomputed
    assert db.execute("SELECT count(*) FROM c WHERE sq = x * x").fetchone()[0] == 10


def test_revert_drop_column_restores_values(db):
    db.execute("SELECT pxt.create_table('d', '{\"x\": \"int\", \"note\": \"string\"}')")
    db.execute("SELECT pxt.add_computed_column('d', 'up', 'upper(note)')")
    db.execute("INSERT INTO d (x, note) VALUES (1, 'a'), (2, 'b')")
    db.execute("SELECT pxt.drop_column('d', 'up')")
    db.execute("SELECT pxt.drop_column('d', 'note')")
    assert [r[0] for r in db.execute("SELECT name FROM pxt.columns('d')")] == ["x"]
    with pytest.raises(psycopg.Error, match="dropped with pxt.drop_column"):
        db.execute("ALTER TABLE d DROP COLUMN x")
    db.execute("SELECT pxt.revert('d')")
    db.execute("SELECT pxt.revert('d')")
    assert db.execute("SELECT x, note, up FROM d ORDER BY x").fetchall() == [(1, "a", "A"), (2, "b", "B")]
    db.execute("INSERT INTO d (x, note) VALUES (3, 'c')")  # and it computes again
    assert db.execute("SELECT up FROM d WHERE x = 3").fetchone()[0] == "C"


def test_time_travel_view_and_schema_as_of_version(db):
    db.execute("SELECT pxt.create_table('tt', '{\"x\": \"int\", \"old\": \"string\"}')")
    db.execute("INSERT INTO tt (x, old) VALUES (1, 'one')")
    db.execute("SELECT pxt.rename_column('tt', 'old', 'renamed')")
    db.execute("SELECT pxt.drop_column('tt', 'renamed')")
    db.execute("INSERT INTO tt (x) VALUES (2)")
    view = db.execute("SELECT pxt.at_version('tt', 1)").fetchone()[0]
    cur = db.execute(f"SELECT * FROM {view}")
    assert [d.name for d in cur.description] == ["_pxt_rowid", "x", "old"] and cur.fetchall() == [(1, 1, "one")]
    view = db.execute("SELECT pxt.at_version('tt', 2)").fetchone()[0]
    cur = db.execute(f"SELECT * FROM {view}")
    assert [d.name for d in cur.description] == ["_pxt_rowid", "x", "renamed"]
    view = db.execute("SELECT pxt.at_version('tt', 4)").fetchone()[0]
    cur = db.execute(f"SELECT x FROM {view} ORDER BY x")
    assert [d.name for d in cur.description] == ["x"] and cur.fetchall() == [(1,), (2,)]
    with pytest.raises(psycopg.Error, match="has no version 9"):
        db.execute("SELECT pxt.at_version('tt', 9)")


def test_vacuum_history(db):
    db.execute("SELECT pxt.create_table('vh', '{\"x\": \"int\", \"gone\": \"string\"}')")
    db.execute("INSERT INTO vh (x, gone) VALUES (1, 'a')")
    for i in range(5):
        db.execute("UPDATE vh SET x = x + 1")
    db.execute("SELECT pxt.drop_column('vh', 'gone')")  # version 7
    db.execute("SELECT pxt.create_snapshot('vh_s', 'vh', 3)")
    with pytest.raises(psycopg.Error, match="snapshot pins version 3"):
        db.execute("SELECT pxt.vacuum_history('vh', keep => 2)")
    db.execute("SELECT pxt.drop_snapshot('vh_s')")
    r = db.execute("SELECT pxt.vacuum_history('vh', keep => 2)").fetchone()[0]
    assert r["retained_from"] == 6 and r["rows_removed"] == 5
    with pytest.raises(psycopg.Error, match="was vacuumed"):
        db.execute("SELECT pxt.at_version('vh', 2)")
    assert at(db, "vh", 6) == {1: {"x": 6, "gone": "a"}}
    db.execute("SELECT pxt.vacuum_history('vh', keep => 1)")  # now the dropped column can go
    assert "_pxt_dropped_2" not in {r[0] for r in db.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'vh'")}


def test_two_writers_linear_history(server, dsn):
    with psycopg.connect(dsn, autocommit=True) as a:
        a.execute("SELECT pxt.create_table('cw', '{\"x\": \"int\"}')")
    import threading
    errors = []

    def writer(k):
        try:
            with psycopg.connect(dsn, autocommit=True) as c:
                for i in range(20):
                    c.execute("INSERT INTO cw (x) VALUES (%s)", (k * 100 + i,))
                    if i % 5 == 0:
                        c.execute("UPDATE cw SET x = x + 1000 WHERE x = %s", (k * 100 + i,))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)
    ts = [threading.Thread(target=writer, args=(k,)) for k in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors
    with psycopg.connect(dsn, autocommit=True) as c:
        vs = [r[0] for r in c.execute("SELECT version FROM pxt.history('cw') ORDER BY version")]
        assert vs == list(range(len(vs))) and len(vs) == 1 + 40 + 8
        assert c.execute("SELECT count(*) FROM cw").fetchone()[0] == 40
        assert len(at(c, "cw", len(vs) - 1)) == 40


def test_media_vacuum_keeps_what_versions_reference(db, files):
    from PIL import Image
    for i, colour in enumerate([(255, 0, 0), (0, 255, 0), (0, 0, 255)]):
        Image.new("RGB", (64, 48), colour).save(files / f"{i}.png")
    db.execute("SELECT pxt.create_table('mv', '{\"image\": \"image\"}')")
    db.execute("SELECT pxt.add_computed_column('mv', 'small', 'pxt.resize(image, 8, 8)')")
    db.execute("INSERT INTO mv (image) VALUES (%s), (%s)", (str(files / "0.png"), str(files / "1.png")))
    db.execute("SELECT pxt.create_snapshot('mv_snap', 'mv')")
    db.execute("DELETE FROM mv WHERE image = %s", (str(files / "0.png"),))   # still in history + snapshot
    db.execute("INSERT INTO mv (image) VALUES (%s)", (str(files / "2.png"),))
    db.execute("SELECT pxt.revert('mv')")                                    # its thumbnail is now garbage
    orphan = db.execute("SELECT pxt.store_media('\\x00ff'::bytea, 'bin')").fetchone()[0]
    refs = [r[0] for r in db.execute("SELECT small FROM mv_snap")]
    r = db.execute("SELECT pxt.vacuum_media(min_age => '0 seconds')").fetchone()[0]
    assert r["deleted"] == 2  # the reverted thumbnail and the orphan
    for ref in refs:  # every version's media still resolves
        assert db.execute("SELECT pxt.width(%s)", (ref,)).fetchone()[0] == 8
    with pytest.raises(psycopg.Error, match="not found"):
        db.execute("SELECT pxt.media_path(%s)", (orphan,))
    assert db.execute("SELECT pxt.vacuum_media(min_age => '0 seconds')").fetchone()[0]["deleted"] == 0
    # reverting everything the snapshot shows moves its rows into its overlay: still referenced
    while db.execute("SELECT version FROM pxt.tables WHERE relid = 'mv'::regclass").fetchone()[0] > 0:
        db.execute("SELECT pxt.revert('mv')")
    assert db.execute("SELECT pins FROM pxt.tables WHERE relid = 'mv_snap'::regclass").fetchone()[0] is None
    assert db.execute("SELECT pxt.vacuum_media(min_age => '0 seconds')").fetchone()[0]["deleted"] == 0
    assert sorted(r[0] for r in db.execute("SELECT small FROM mv_snap")) == sorted(refs)
    for ref in refs:
        assert db.execute("SELECT pxt.width(%s)", (ref,)).fetchone()[0] == 8


def test_system_columns_are_not_writable(db):
    """_pxt_v and _pxt_rowid are what history, time travel and revert trust: a direct UPDATE of
    either is refused, naming the row, and leaves the table and its history as they were."""
    db.execute("SELECT pxt.create_table('sc', '{\"a\": \"int\"}')")   # no computed columns: no row trigger
    db.execute("INSERT INTO sc (a) VALUES (1), (2)")
    with pytest.raises(psycopg.errors.GeneratedAlways, match=r"column _pxt_v of public.sc \(row 1\)"):
        db.execute("UPDATE sc SET _pxt_v = 0 WHERE a = 1")
    with pytest.raises(psycopg.errors.GeneratedAlways):
        db.execute("UPDATE sc SET _pxt_rowid = 9 WHERE a = 1")
    db.execute("UPDATE sc SET a = a + 1, _pxt_v = _pxt_v")   # unchanged: allowed
    assert db.execute("SELECT _pxt_rowid, _pxt_v, a FROM sc ORDER BY 1").fetchall() == [(1, 1, 2), (2, 1, 3)]
    assert [r[0] for r in db.execute("SELECT version FROM pxt.history('sc')")] == [2, 1, 0]
    assert at(db, "sc", 1) == {1: {"a": 1}, 2: {"a": 2}}


def test_errors_carry_specific_sqlstates(db):
    """SQL clients can branch on the SQLSTATE, not on the message text."""
    db.execute("SELECT pxt.create_table('st', '{\"a\": \"int\"}')")
    db.execute("CREATE TABLE plain_t (a int)")
    cases = [
        ("SELECT pxt.revert('st')", psycopg.errors.ObjectNotInPrerequisiteState),    # at version 0
        ("SELECT pxt.revert('nope')", psycopg.errors.UndefinedTable),
        ("SELECT pxt.revert('plain_t')", psycopg.errors.WrongObjectType),             # not managed
        ("SELECT pxt.drop_column('st', 'zz')", psycopg.errors.UndefinedColumn),
        ("SELECT pxt.add_column('st', 'a', 'int')", psycopg.errors.DuplicateColumn),
        ("SELECT pxt.create_table('st', '{\"b\": \"int\"}')", psycopg.errors.DuplicateTable),
    ]
    for query, error in cases:
        with pytest.raises(error):
            db.execute(query)
    db.execute("INSERT INTO st (a) VALUES (1)")
    db.execute("SELECT pxt.create_snapshot('st_s', 'st')")
    with pytest.raises(psycopg.errors.DependentObjectsStillExist):
        db.execute("SELECT pxt.drop_table('st')")
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="pins version 1"):
        db.execute("SELECT pxt.revert('st', if_pinned => 'error')")
