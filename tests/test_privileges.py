"""The privilege model: pxt_reader / pxt_user / pxt_admin, and what nobody else can do."""
import uuid

import psycopg
import pytest
from psycopg.conninfo import make_conninfo


@pytest.fixture
def roles(db, dsn):
    tag = uuid.uuid4().hex[:6]
    made = {}
    # CREATE EXTENSION grants this in the database it runs in; test databases are clones
    db.execute("DO $$ BEGIN EXECUTE format('GRANT CREATE ON DATABASE %I TO pxt_user', current_database()); END $$")
    for kind in ("reader", "user", "user2", "admin", "nobody"):
        name = f"{kind}_{tag}"
        db.execute(f"CREATE ROLE {name} LOGIN")
        if kind != "nobody":
            db.execute(f"GRANT pxt_{kind.rstrip('2')} TO {name}")
        made[kind] = name
    conns = {k: psycopg.connect(make_conninfo(dsn, user=v), autocommit=True) for k, v in made.items()}
    yield conns
    for c in conns.values():
        c.close()
    for name in made.values():
        db.execute(f"REASSIGN OWNED BY {name} TO CURRENT_USER")
        db.execute(f"DROP OWNED BY {name}")
        db.execute(f"DROP ROLE {name}")


def test_user_builds_and_versions_own_tables(roles):
    u = roles["user"]
    u.execute("SELECT pxt.create_table('u_space.t', '{\"x\": \"int\"}')")
    u.execute("SELECT pxt.add_computed_column('u_space.t', 'y', 'x * 2')")
    u.execute("INSERT INTO u_space.t (x) VALUES (1), (2)")
    u.execute("UPDATE u_space.t SET x = 5 WHERE x = 1")
    assert u.execute("SELECT pxt.revert('u_space.t')").fetchone()[0] == 2
    u.execute("SELECT pxt.create_snapshot('u_space.snap', 'u_space.t')")
    assert u.execute("SELECT count(*) FROM pxt.history('u_space.t')").fetchone()[0] == 3
    assert u.execute("SELECT sum(y) FROM u_space.t").fetchone()[0] == 6
    # the snapshot outlives a revert of its version (its overlay is the user's), and a plain
    # DROP VIEW takes the overlay along
    assert u.execute("SELECT pxt.revert('u_space.t')").fetchone()[0] == 1
    assert u.execute("SELECT sum(y) FROM u_space.snap").fetchone()[0] == 6
    assert u.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'pxt_internal' AND tablename LIKE 'snap_%' "
                     "AND tableowner = current_user").fetchone()[0] == 1
    u.execute("DROP VIEW u_space.snap")
    assert u.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'pxt_internal' "
                     "AND tablename LIKE 'snap_%'").fetchone()[0] == 0


def test_reader_reads_but_cannot_write(roles):
    roles["user"].execute("SELECT pxt.create_table('r_space.t', '{\"x\": \"int\"}')")
    roles["user"].execute("INSERT INTO r_space.t (x) VALUES (1)")
    roles["user"].execute("SELECT pxt.create_snapshot('r_space.snap', 'r_space.t')")
    roles["user"].execute("GRANT USAGE ON SCHEMA r_space TO pxt_reader")
    r = roles["reader"]
    assert r.execute("SELECT x FROM r_space.t").fetchall() == [(1,)]
    assert r.execute("SELECT x FROM r_space.snap").fetchall() == [(1,)]
    assert r.execute("SELECT count(*) FROM pxt.history('r_space.t')").fetchone()[0] == 2
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        r.execute("INSERT INTO r_space.t (x) VALUES (2)")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        r.execute("SELECT pxt.create_table('r2.t', '{\"x\": \"int\"}')")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        r.execute("SELECT pxt.revert('r_space.t')")


def test_other_users_tables_and_catalog_are_protected(roles):
    a, b = roles["user"], roles["user2"]
    a.execute("SELECT pxt.create_table('a_space.t', '{\"x\": \"int\"}')")
    a.execute("SELECT pxt.add_computed_column('a_space.t', 'y', 'x + 1')")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        b.execute("INSERT INTO a_space.t (x) VALUES (1)")
    # the catalog rows of a's table cannot be changed by b (row-level security)
    oid = a.execute("SELECT storage::oid FROM pxt.list_tables() WHERE name = 'a_space.t'").fetchone()[0]
    n = b.execute("UPDATE pxt.column_defs SET expr = 'x + 100' WHERE relid = %s::oid::regclass", (oid,)).rowcount
    assert n == 0
    assert b.execute("SELECT count(*) FROM pxt.column_defs WHERE relid = %s::oid::regclass", (oid,)).fetchone()[0] == 2
    with pytest.raises(psycopg.Error):
        b.execute("SELECT pxt.add_computed_column('a_space.t', 'z', 'x')")
    # granted writers get their versions recorded (as the owner)
    a.execute("GRANT USAGE ON SCHEMA a_space TO pxt_user")
    a.execute("GRANT INSERT, SELECT ON a_space.t TO pxt_user")
    b.execute("INSERT INTO a_space.t (x) VALUES (7)")
    assert a.execute("SELECT inserts FROM pxt.history('a_space.t') WHERE version = 2").fetchone()[0] == 1
    assert a.execute("SELECT y FROM a_space.t").fetchone()[0] == 8


def test_feature_catalogs_are_owner_written_and_drops_clean_up(roles):
    a, b = roles["user"], roles["user2"]
    a.execute("SELECT pxt.create_table('f_space.docs', '{\"body\": \"string\"}')")
    a.execute("SELECT pxt.add_embedding_index('f_space.docs', 'body', embedding => 'pxt.test_embedding(dims => 8)')")
    a.execute("SELECT pxt.create_table('f_space.videos', '{\"video\": \"video\"}')")
    a.execute("SELECT pxt.create_view('f_space.frames', 'f_space.videos', 'pxt.frame_iterator(video, fps => 1)')")
    a.execute("SELECT pxt.create_table('f_space.plain', '{\"x\": \"int\"}')")
    docs = a.execute("SELECT storage::oid FROM pxt.list_tables() WHERE name = 'f_space.docs'").fetchone()[0]
    # b reads a's rows in the feature catalogs (metadata, like pg_class) but cannot change them
    assert b.execute("SELECT count(*) FROM pxt.embedding_indexes WHERE relid::oid = %s", (docs,)).fetchone()[0] == 1
    assert b.execute("DELETE FROM pxt.embedding_indexes WHERE relid::oid = %s", (docs,)).rowcount == 0
    assert b.execute("UPDATE pxt.iterator_views SET call = 'pxt.frame_iterator(video, fps => 99)'").rowcount == 0
    assert a.execute("SELECT call FROM pxt.iterator_views").fetchone()[0] == "pxt.frame_iterator(video, fps => 1)"
    # a drops everything, with pxt.drop_table and with plain DROP TABLE: no catalog row survives
    # (row-level security must not hide the rows of objects that no longer exist from the cleanup)
    owned = "SELECT count(*) FROM pxt.tables WHERE created_by = current_user"
    assert a.execute(owned).fetchone()[0] >= 4
    a.execute("SELECT pxt.drop_table('f_space.frames')")
    a.execute("SELECT pxt.drop_table('f_space.videos')")
    a.execute("SELECT pxt.drop_table('f_space.docs')")
    a.execute("DROP TABLE f_space.plain")
    assert a.execute(owned).fetchone()[0] == 0
    assert a.execute("SELECT count(*) FROM pxt.embedding_indexes WHERE relid::oid = %s", (docs,)).fetchone()[0] == 0
    assert a.execute("SELECT count(*) FROM pxt.iterator_views").fetchone()[0] == 0


def test_nobody_and_admin_only(roles):
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        roles["nobody"].execute("SELECT pxt.create_table('n.t', '{\"x\": \"int\"}')")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        roles["user"].execute("SELECT pxt.vacuum_media()")
    roles["user"].execute("SELECT pxt._guc_init()")  # loaded (if not preloaded): SET is now checked
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        roles["user"].execute("SET pixelgres.allowed_roots = '/'")
    roles["admin"].execute("SELECT pxt.vacuum_media(dry_run => true)")
    roles["admin"].execute("SET pixelgres.allowed_roots = '/tmp'")
    # nobody but a superuser reaches plpython3u directly
    for who in ("user", "admin"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            roles[who].execute("CREATE FUNCTION evil() RETURNS int LANGUAGE plpython3u AS 'return 1'")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        roles["admin"].execute("SET pixelgres.python_dir = '/tmp'")


def test_security_definer_and_event_trigger_functions_pin_search_path(db):
    db.execute("SELECT pxt.create_table('sp', '{\"x\": \"int\"}')")  # generates a SECURITY DEFINER trigger fn
    rows = db.execute("""
        SELECT p.oid::regprocedure::text, p.proconfig FROM pg_proc p
        WHERE p.pronamespace IN ('pxt'::regnamespace, 'pxt_internal'::regnamespace)
          AND (p.prosecdef OR p.prorettype = 'event_trigger'::regtype)""").fetchall()
    assert rows
    unpinned = [name for name, cfg in rows if not any(c.startswith("search_path=") for c in (cfg or []))]
    assert unpinned == []
