"""A managed table's name is its face: a view of the user's columns over its storage
(server/faces.py), and the statements PostgreSQL refuses on a view act on the storage
(extension/faces.c)."""
import subprocess
import uuid

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from pixelgres.cluster import pg_bindir


def cols(db, rel: str) -> list[str]:
    return [d.name for d in db.execute(f"SELECT * FROM {rel} LIMIT 0").description]


def storage(db, name: str) -> str:
    return db.execute("SELECT storage::text FROM pxt.list_tables() WHERE name = %s", (name,)).fetchone()[0]


@pytest.fixture
def t(db):
    db.execute("""SELECT pxt.create_table('ml.t', '{"x": "int", "note": "string"}')""")
    db.execute("SELECT pxt.add_computed_column('ml.t', 'y', 'x * 2')")
    return "ml.t"


def test_select_star_shows_the_users_columns_in_their_order(db, t):
    assert cols(db, t) == ["x", "note", "y"]
    st = storage(db, t)
    assert st.startswith("pxt_data.")
    assert cols(db, st)[:2] == ["x", "note"] and {"_pxt_rowid", "_pxt_errors", "_pxt_v"} <= set(cols(db, st))
    assert db.execute("SELECT pxt.table_kind('ml.t')").fetchone()[0] == "table"
    assert [r[0] for r in db.execute("SELECT name FROM pxt.describe('ml.t') WHERE NOT is_system")] == ["x", "note", "y"]


def test_writes_through_the_face_compute_version_and_return(db, t):
    assert db.execute("INSERT INTO ml.t (x, note) VALUES (1, 'a'), (2, 'b') RETURNING *").fetchall() == \
        [(1, "a", 2), (2, "b", 4)]
    assert db.execute("UPDATE ml.t SET x = 10 WHERE note = 'a' RETURNING y").fetchall() == [(20,)]
    db.execute("DELETE FROM ml.t WHERE note = 'b'")
    assert db.execute("SELECT x, y FROM ml.t").fetchall() == [(10, 20)]
    assert [r[0] for r in db.execute("SELECT change_type FROM pxt.history('ml.t') ORDER BY version")] == \
        ["schema", "schema", "data", "data", "data"]
    db.execute("SELECT pxt.revert('ml.t')")
    assert sorted(db.execute("SELECT x FROM ml.t").fetchall()) == [(2,), (10,)]


def test_schema_changes_keep_the_face_in_step(db, t):
    db.execute("SELECT pxt.add_column('ml.t', 'z', 'float')")
    assert cols(db, t) == ["x", "note", "y", "z"]
    db.execute("SELECT pxt.rename_column('ml.t', 'note', 'label')")
    assert cols(db, t) == ["x", "label", "y", "z"]
    db.execute("INSERT INTO ml.t (x, label, z) VALUES (3, 'c', 0.5)")
    db.execute("SELECT pxt.drop_column('ml.t', 'z')")
    assert cols(db, t) == ["x", "label", "y"]
    db.execute("SELECT pxt.revert('ml.t')")  # the drop is undone: z is back, with its value
    assert cols(db, t) == ["x", "label", "y", "z"]
    assert db.execute("SELECT z FROM ml.t").fetchone()[0] == 0.5
    # plain DDL on the table's name acts on the storage, and the face follows
    db.execute("ALTER TABLE ml.t ADD COLUMN w text DEFAULT 'dflt'")
    db.execute("ALTER TABLE ml.t RENAME COLUMN label TO tag")
    assert cols(db, t) == ["x", "tag", "y", "z", "w"]
    db.execute("INSERT INTO ml.t (x) VALUES (4)")  # the storage's defaults apply through the face
    assert db.execute("SELECT w, y FROM ml.t WHERE x = 4").fetchone() == ("dflt", 8)
    db.execute("CREATE UNIQUE INDEX t_x ON ml.t (x)")
    db.execute("INSERT INTO ml.t (x, tag) VALUES (4, 'again') ON CONFLICT (x) DO UPDATE SET tag = excluded.tag")
    assert db.execute("SELECT tag, y FROM ml.t WHERE x = 4").fetchone() == ("again", 8)
    with pytest.raises(psycopg.errors.FeatureNotSupported, match="used by a view"):
        db.execute("ALTER TABLE ml.t ALTER COLUMN x TYPE bigint")  # drop and re-add it instead
    with pytest.raises(psycopg.errors.FeatureNotSupported, match="pxt.drop_column"):
        db.execute("ALTER TABLE ml.t DROP COLUMN w")
    db.execute("CREATE INDEX t_tag ON ml.t (tag)")  # an index lives beside its table: in pxt_data
    assert db.execute("SELECT indrelid::regclass::text FROM pg_index WHERE indexrelid = 'pxt_data.t_tag'::regclass"
                      ).fetchone()[0] == storage(db, t) == 'pxt_data."ml.t"'


def test_copy_truncate_and_grants_name_the_table(db, dsn, t):
    with db.cursor().copy("COPY ml.t FROM STDIN") as cp:  # the face's columns, y computed
        cp.write_row((5, "e", None))
    with db.cursor().copy("COPY ml.t (x) FROM STDIN") as cp:
        cp.write_row((6,))
    assert sorted(db.execute("SELECT x, y FROM ml.t").fetchall()) == [(5, 10), (6, 12)]
    with db.cursor().copy("COPY ml.t TO STDOUT") as cp:
        out = b"".join(bytes(b) for b in cp).decode()
    assert sorted(out.splitlines()) == ["5\te\t10", "6\t\\N\t12"]
    role = f"r_{uuid.uuid4().hex[:6]}"
    db.execute(f"CREATE ROLE {role} LOGIN")
    try:
        db.execute("GRANT USAGE ON SCHEMA ml TO " + role)
        db.execute(f"GRANT SELECT ON TABLE ml.t TO {role}")  # the face and its storage
        with psycopg.connect(make_conninfo(dsn, user=role), autocommit=True) as r:
            assert cols(r, t) == ["x", "note", "y"]
            with r.cursor().copy("COPY ml.t (x) TO STDOUT") as cp:
                assert sorted(bytes(b) for b in cp) == [b"5\n", b"6\n"]
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                r.execute("INSERT INTO ml.t (x) VALUES (7)")
        # row-level security on the table's name holds for readers of the face
        db.execute("ALTER TABLE ml.t ENABLE ROW LEVEL SECURITY")
        db.execute(f"CREATE POLICY only_five ON ml.t FOR SELECT TO {role} USING (x = 5)")
        with psycopg.connect(make_conninfo(dsn, user=role), autocommit=True) as r:
            assert r.execute("SELECT x FROM ml.t").fetchall() == [(5,)]
        db.execute("DROP POLICY only_five ON ml.t")
        db.execute("ALTER TABLE ml.t DISABLE ROW LEVEL SECURITY")
        db.execute(f"REVOKE SELECT ON TABLE ml.t FROM {role}")
        with psycopg.connect(make_conninfo(dsn, user=role), autocommit=True) as r:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                r.execute(f"SELECT * FROM {storage(db, t)}")
    finally:
        db.execute(f"DROP OWNED BY {role}")
        db.execute(f"DROP ROLE {role}")
    db.execute("TRUNCATE ml.t")
    assert db.execute("SELECT count(*) FROM ml.t").fetchone()[0] == 0


def test_drops_take_the_storage_along(db, t):
    st = storage(db, t)
    db.execute("CREATE VIEW ml.mine AS SELECT x FROM ml.t")
    with pytest.raises(psycopg.errors.DependentObjectsStillExist):
        db.execute("DROP TABLE ml.t")
    with pytest.raises(psycopg.errors.lookup("2BP01"), match="other objects read it"):
        db.execute("SELECT pxt.drop_column('ml.t', 'note')")
    assert cols(db, t) == ["x", "note", "y"]  # nothing half done
    db.execute("DROP VIEW ml.mine")
    db.execute("DROP TABLE ml.t")
    assert db.execute("SELECT to_regclass(%s), to_regclass('ml.t')", (st,)).fetchone() == (None, None)
    assert db.execute("SELECT count(*) FROM pxt.list_tables() WHERE name = 'ml.t'").fetchone()[0] == 0
    with pytest.raises(psycopg.errors.FeatureNotSupported, match="both pixelgres tables and other"):
        db.execute("""SELECT pxt.create_table('ml.a', '{"x": "int"}')""")
        db.execute("CREATE TABLE ml.plain (x int)")
        db.execute("DROP TABLE ml.a, ml.plain")
    for how in ("DROP VIEW ml.a", "SELECT pxt.drop_table('ml.a')"):
        db.execute("""SELECT pxt.create_table('ml.a', '{"x": "int"}', if_exists => 'replace')""")
        st = storage(db, "ml.a")
        db.execute(how)
        assert db.execute("SELECT to_regclass(%s)", (st,)).fetchone()[0] is None
    db.execute("""SELECT pxt.create_table('gone.b', '{"x": "int"}')""")
    st = storage(db, "gone.b")
    db.execute("DROP SCHEMA gone CASCADE")
    assert db.execute("SELECT to_regclass(%s)", (st,)).fetchone()[0] is None
    assert db.execute("SELECT count(*) FROM pxt.tables t WHERE NOT EXISTS "
                      "(SELECT 1 FROM pg_class c WHERE c.oid = t.relid)").fetchone()[0] == 0


def test_user_triggers_and_schema_moves_on_the_name(db, t):
    db.execute("CREATE TABLE ml.audit (x int)")
    db.execute("CREATE FUNCTION ml.audit() RETURNS trigger LANGUAGE plpgsql AS "
               "$$ BEGIN INSERT INTO ml.audit VALUES (NEW.x); RETURN NEW; END $$")
    db.execute("CREATE TRIGGER audit AFTER INSERT ON ml.t FOR EACH ROW EXECUTE FUNCTION ml.audit()")
    db.execute("INSERT INTO ml.t (x) VALUES (41), (42)")
    assert db.execute("SELECT array_agg(x ORDER BY x) FROM ml.audit").fetchone()[0] == [41, 42]
    db.execute("DROP TRIGGER audit ON ml.t")
    db.execute("INSERT INTO ml.t (x) VALUES (43)")
    assert db.execute("SELECT count(*) FROM ml.audit").fetchone()[0] == 2
    db.execute("CREATE SCHEMA other")
    db.execute("ALTER TABLE ml.t SET SCHEMA other")
    assert db.execute("SELECT name FROM pxt.list_tables() WHERE kind = 'table'").fetchall() == [("other.t",)]
    assert db.execute("SELECT sum(y) FROM other.t").fetchone()[0] == 2 * (41 + 42 + 43)


def test_adopted_table_and_renamed_face(db):
    db.execute("CREATE TABLE public.mine (id int, label text)")
    db.execute("INSERT INTO public.mine VALUES (1, 'one')")
    db.execute("CREATE VIEW public.mine_ids AS SELECT id FROM public.mine")  # follows the table to its storage
    db.execute("SELECT pxt.manage('mine')")
    assert cols(db, "public.mine") == ["id", "label"]
    assert db.execute("SELECT * FROM public.mine_ids").fetchall() == [(1,)]
    db.execute("ALTER TABLE public.mine RENAME TO yours")
    db.execute("INSERT INTO public.yours VALUES (2, 'two')")
    assert db.execute("SELECT name FROM pxt.list_tables() WHERE name LIKE 'public.%'").fetchall() == [("public.yours",)]
    assert db.execute("SELECT count(*) FROM pxt.history('yours') WHERE change_type = 'data'").fetchone()[0] == 1
    with pytest.raises(psycopg.errors.lookup("42703"), match=r"column 'nope' does not exist in public\.yours"):
        db.execute("SELECT pxt.drop_column('yours', 'nope')")


def test_psql_describes_the_table_legibly(dsn, db, t):
    out = subprocess.run([str(pg_bindir() / "psql"), "-X", "-d", dsn, "-c", r"\d ml.t"],
                         capture_output=True, text=True, check=True).stdout
    lines = [line.split("|")[0].strip() for line in out.splitlines() if "|" in line][1:]
    assert lines == ["x", "note", "y"]
    assert "_pxt" not in out


def test_readme_reaches_the_bookkeeping_columns(db):
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme[readme.index("**What a table's name shows.**"):]
    block = re.search(r"```sql\n(.*?)```", section, flags=re.S).group(1)
    db.execute("""SELECT pxt.create_table('ml.images', '{"label": "string"}')""")
    db.execute("INSERT INTO ml.images (label) VALUES ('cat')")
    first, second = [s for s in block.split(";") if re.sub(r"--[^\n]*", "", s).strip()]
    assert db.execute(first).fetchall() == [(1, "cat", None)]
    assert db.execute(second).fetchone()[0] == 'pxt_data."ml.images"'
