"""Versioning: history, revert, snapshots, time travel, retention — checked against a model.

The scenarios that need no Python (history counts, reverts, snapshots, time travel,
vacuum_history, media retention, SQLSTATEs) are pg_regress tests: test/sql/versioning.sql.
"""

import psycopg
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule


def storage(db, table):
    """A managed table's storage (pxt_data."public.<table>"), which has its rows' _pxt_rowid:
    the table's name is a view of the user's columns only."""
    return db.execute("SELECT storage::text FROM pxt.list_tables() WHERE name = format('%%I.%%I', 'public', %s::text)",
                      (table,)).fetchone()[0]


def live(db, rel, columns):
    """Rows by _pxt_rowid of ``rel`` (SQL text: a managed table's storage, or a snapshot)."""
    cols = ", ".join(f'"{c}"' for c in columns)
    return {r[0]: dict(zip(columns, r[1:])) for r in
            db.execute(f'SELECT _pxt_rowid{", " + cols if cols else ""} FROM {rel}')}


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
        self.storage = storage(self.db, self.t)  # where _pxt_rowid is: writes go through the name otherwise
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
            self.db.execute(f'INSERT INTO "{self.t}" ({names}) VALUES ({", ".join(["%s"] * len(record))})',
                            list(record.values()))
            rid = self.db.execute("SELECT currval(pg_get_serial_sequence(%s, '_pxt_rowid'))",
                                  (self.storage,)).fetchone()[0]
            new[rid] = self.compute(exprs, {c: None for c in cols} | record)
            self.push(cols, exprs, dict(new))

    @precondition(lambda self: self.cur[2])
    @rule(data=st.data(), delta=st.integers(-5, 5))
    def update(self, data, delta):
        cols, exprs, rows = self.cur
        ids = data.draw(st.lists(st.sampled_from(sorted(rows)), min_size=1, unique=True))
        self.db.execute(f"UPDATE {self.storage} SET a = coalesce(a, 0) + %s WHERE _pxt_rowid = ANY(%s)", (delta, ids))
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
        self.db.execute(f"DELETE FROM {self.storage} WHERE _pxt_rowid = ANY(%s)", (ids,))
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
                                 "AND pins >= %s", (self.storage, v)).fetchone()[0]
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
        assert live(self.db, self.storage, cols) == rows
        assert self.db.execute("SELECT version FROM pxt.tables WHERE relid = %s::regclass",
                               (self.storage,)).fetchone()[0] == len(self.versions) - 1
        for n, (vcols, _, vrows) in enumerate(self.versions):
            got = at(self.db, self.t, n)
            assert got == {k: {c: r[c] for c in vcols} for k, r in vrows.items()}, f"version {n}"
        for name, (vcols, vrows) in self.snapshots.items():
            assert live(self.db, f'"{name}"', vcols) == vrows, f"snapshot {name}"


def test_versioning_matches_model(db):
    VersionedTable.db = db
    VersionedTable.TestCase.settings = settings(
        max_examples=200, stateful_step_count=8, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    VersionedTable.TestCase().runTest()


# --- concurrent writers ------------------------------------------------------------------------------------
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




def test_insert_counts_need_track_counts(db):
    """A table that cannot record errors counts an insert's rows with the transaction's insert
    counter: without track_counts the insert is refused, not logged as empty."""
    db.execute("""SELECT pxt.create_table('tc', '{"a": "int"}')""")
    db.execute("INSERT INTO tc (a) SELECT generate_series(1, 7)")
    assert db.execute("SELECT inserts FROM pxt.history('tc') WHERE change_type = 'data'").fetchall() == [(7,)]
    db.execute("SET track_counts = off")
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="track_counts = on"):
        db.execute("INSERT INTO tc (a) VALUES (8)")
    db.execute("RESET track_counts")
    db.execute("INSERT INTO tc (a) VALUES (8)")
    assert db.execute("SELECT inserts FROM pxt.history('tc') WHERE change_type = 'data' ORDER BY version"
                      ).fetchall() == [(7,), (1,)]


def test_revert_finds_inserted_rows_whatever_their_rowids(db):
    """Revert finds a version's inserted rows among the highest rowids (the version log says how
    many); rows whose rowids were given by hand sit elsewhere, and revert scans for them instead."""
    db.execute("""SELECT pxt.create_table('rr', '{"a": "int"}')""")
    st = storage(db, "rr")
    db.execute("INSERT INTO rr (a) SELECT generate_series(1, 5)")                        # v1: rowids 1-5
    db.execute(f"INSERT INTO {st} (_pxt_rowid, a) OVERRIDING SYSTEM VALUE VALUES (1000, 6), (500, 7)")  # v2
    db.execute("INSERT INTO rr (a) SELECT generate_series(8, 10)")                       # v3: rowids 6-8, below 500
    assert sorted(r["a"] for r in live(db, st, ["a"]).values()) == list(range(1, 11))
    db.execute("SELECT pxt.revert('rr')")  # v3: its 3 rows are not the 3 highest rowids
    assert sorted(r["a"] for r in live(db, st, ["a"]).values()) == [1, 2, 3, 4, 5, 6, 7]
    db.execute("SELECT pxt.revert('rr')")  # v2: the 2 highest rowids
    assert sorted(live(db, st, ["a"])) == [1, 2, 3, 4, 5]
    db.execute("UPDATE rr SET a = a * 10 WHERE a <= 2")                                 # v2 again: nothing inserted
    db.execute("SELECT pxt.revert('rr')")
    assert sorted(r["a"] for r in live(db, st, ["a"]).values()) == [1, 2, 3, 4, 5]
    db.execute("SELECT pxt.revert('rr')")  # v1
    assert live(db, st, ["a"]) == {}
