"""Upgrades: ``ALTER EXTENSION pixelgres UPDATE`` from the previous release leaves the same
objects as a fresh install, and what the previous release wrote keeps working.

The previous release's SQL is frozen in sql/releases/ (installed next to the current script).
Its functions need that release's server Python (``pxt._boot`` refuses a mismatch), so the old
database runs with ``pixelgres.python_dir`` pointing at a directory holding release
``PREVIOUS``'s package (``git archive v<PREVIOUS>``) and links to the installed dependencies.
"""
from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

PREVIOUS = "0.1.0"
PREVIOUS_COMMIT = "3ec9fa796b2629f22c3f615202813f75267e048d"   # tagged v0.1.0; used when a clone has no tags
ROOT = Path(__file__).resolve().parent.parent

# Everything the extension defines, as text that must be equal after upgrade and fresh install.
# Objects of managed tables (pxt_internal.hist_*, generated functions) are not extension members.
CATALOG = {
    "members": """
        SELECT pg_describe_object(classid, objid, objsubid) FROM pg_depend
        WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
          AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pixelgres')""",
    "functions": """
        SELECT p.oid::regprocedure::text, pg_get_functiondef(p.oid),
               (SELECT array_agg(a::text ORDER BY a::text) FROM unnest(p.proacl) a),
               obj_description(p.oid, 'pg_proc')
        FROM pg_proc p JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
        WHERE p.prokind <> 'a'""",
    "columns": """
        SELECT c.oid::regclass::text, c.relkind, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
               pg_get_expr(ad.adbin, ad.adrelid), col_description(c.oid, a.attnum)
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
        LEFT JOIN pg_attrdef ad ON ad.adrelid = c.oid AND ad.adnum = a.attnum
        WHERE c.oid IN (SELECT objid FROM pg_depend WHERE classid = 'pg_class'::regclass AND deptype = 'e')""",
    "column_order": """
        SELECT c.oid::regclass::text, array_agg(a.attname ORDER BY a.attnum)
        FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
        WHERE c.oid IN (SELECT objid FROM pg_depend WHERE classid = 'pg_class'::regclass AND deptype = 'e')
        GROUP BY 1""",
    "relations": """
        SELECT c.oid::regclass::text, c.relkind, c.relrowsecurity, c.relforcerowsecurity,
               (SELECT array_agg(a::text ORDER BY a::text) FROM unnest(c.relacl) a),
               obj_description(c.oid, 'pg_class'),
               CASE WHEN c.relkind = 'v' THEN pg_get_viewdef(c.oid) END
        FROM pg_class c
        WHERE c.oid IN (SELECT objid FROM pg_depend WHERE classid = 'pg_class'::regclass AND deptype = 'e')""",
    "constraints": """
        SELECT conrelid::regclass::text, contypid::regtype::text, conname, pg_get_constraintdef(oid)
        FROM pg_constraint WHERE connamespace IN ('pxt'::regnamespace, 'pxt_internal'::regnamespace)""",
    "indexes": """
        SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index
        WHERE indrelid IN (SELECT objid FROM pg_depend WHERE classid = 'pg_class'::regclass AND deptype = 'e')""",
    "policies": "SELECT tablename, policyname, cmd, roles::text, qual, with_check FROM pg_policies "
                "WHERE schemaname = 'pxt'",
    "triggers": """
        SELECT pg_get_triggerdef(t.oid) FROM pg_trigger t
        WHERE NOT t.tgisinternal AND t.tgrelid IN
              (SELECT objid FROM pg_depend WHERE classid = 'pg_class'::regclass AND deptype = 'e')""",
    "event_triggers": "SELECT evtname, evtevent, evtfoid::regproc::text, evttags::text, evtenabled "
                      "FROM pg_event_trigger",
    "types": """
        SELECT t.oid::regtype::text, t.typtype, format_type(t.typbasetype, t.typtypmod), t.typnotnull,
               obj_description(t.oid, 'pg_type')
        FROM pg_type t WHERE t.typnamespace = 'pxt'::regnamespace AND t.typtype IN ('d', 'e', 'c')
          AND t.typrelid = 0""",
    "schemas": """
        SELECT nspname, (SELECT array_agg(a::text ORDER BY a::text) FROM unnest(nspacl) a)
        FROM pg_namespace WHERE nspname IN ('pxt', 'pxt_internal')""",
    "sequences": "SELECT seqrelid::regclass::text, seqtypid::regtype::text, seqstart, seqincrement "
                 "FROM pg_sequence WHERE seqrelid IN "
                 "(SELECT objid FROM pg_depend WHERE classid = 'pg_class'::regclass AND deptype = 'e')",
    "config_dump": """
        SELECT (SELECT array_agg(c::regclass::text ORDER BY c::regclass::text) FROM unnest(extconfig) c),
               extversion FROM pg_extension WHERE extname = 'pixelgres'""",
}


def catalog(conn) -> dict[str, list]:
    return {k: sorted(tuple(map(str, r)) for r in conn.execute(q)) for k, q in CATALOG.items()}


@pytest.fixture(scope="module")
def old_python_dir(server):
    """Release PREVIOUS's server package next to links to the installed dependencies."""
    with server.admin() as c:
        installed = Path(c.execute("SELECT current_setting('pixelgres.python_dir')").fetchone()[0])
    for ref in (f"v{PREVIOUS}", PREVIOUS_COMMIT):
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "python/pixelgres"], capture_output=True)
        if archive.returncode == 0:
            break
    assert archive.returncode == 0, (f"release {PREVIOUS} (tag v{PREVIOUS}, commit {PREVIOUS_COMMIT}) must be in "
                                     f"this git checkout to test the upgrade from it: {archive.stderr.decode()}")
    d = Path(tempfile.mkdtemp(prefix=f"pixelgres-{PREVIOUS}-"))
    os.chmod(d, 0o755)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as t:
        t.extractall(d / "src", filter="data")
    shutil.move(d / "src" / "python" / "pixelgres", d / "pixelgres")
    shutil.rmtree(d / "src")
    for entry in installed.iterdir():
        if entry.name != "pixelgres":
            (d / entry.name).symlink_to(entry)
    for p, dirs, fs in os.walk(d / "pixelgres"):
        for x in dirs + fs:
            os.chmod(os.path.join(p, x), 0o755 if x in dirs else 0o644)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def old_db(server, old_python_dir):
    """A database with release PREVIOUS installed, run by that release's Python."""
    name = "upg_" + os.urandom(4).hex()
    with server.admin() as c:
        c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        c.execute(sql.SQL("ALTER DATABASE {} SET pixelgres.python_dir = {}").format(
            sql.Identifier(name), sql.Literal(str(old_python_dir))))
    yield name
    server.drop_database(name)


def test_previous_release_script_is_installed(server):
    with server.admin() as c:
        versions = {r[0] for r in c.execute("SELECT version FROM pg_available_extension_versions "
                                            "WHERE name = 'pixelgres'")}
        path = c.execute("SELECT * FROM pg_extension_update_paths('pixelgres') WHERE source = %s "
                         "AND target = (SELECT default_version FROM pg_available_extensions "
                         "WHERE name = 'pixelgres')", (PREVIOUS,)).fetchone()
    assert PREVIOUS in versions
    assert path is not None and path[2] is not None, "no update path from the previous release"


def test_upgrade_leaves_the_objects_of_a_fresh_install_and_old_data_works(server, old_db, files):
    from PIL import Image

    for i, colour in enumerate([(200, 0, 0), (0, 200, 0), (0, 0, 200), (90, 90, 90)]):
        Image.new("RGB", (40, 30), colour).save(files / f"{i}.png")
    # --- written by the previous release ---------------------------------------------------------
    with psycopg.connect(server.dsn(old_db), autocommit=True) as c:
        c.execute("CREATE EXTENSION pixelgres VERSION %s CASCADE" % sql.Literal(PREVIOUS).as_string(c))
        assert c.execute("SELECT pxt.version()").fetchone()[0] == PREVIOUS
        c.execute("SELECT pxt.create_table('ml.imgs', '{\"image\": \"image\", \"label\": \"string\"}')")
        c.execute("SELECT pxt.add_computed_column('ml.imgs', 'small', 'pxt.resize(image, 8, 8)')")
        c.execute("SELECT pxt.add_computed_column('ml.imgs', 'n', 'length(label)')")
        c.execute("SELECT pxt.add_embedding_index('ml.imgs', 'label', embedding => 'pxt.test_embedding(dims => 16)')")
        c.cursor().executemany("INSERT INTO ml.imgs (image, label) VALUES (%s, %s)",
                      [(str(files / f"{i}.png"), w) for i, w in enumerate(["red", "green", "blue"])])
        c.execute("UPDATE ml.imgs SET label = label || ' square' WHERE label = 'red'")
        c.execute("SELECT pxt.create_snapshot('ml.imgs_s', 'ml.imgs')")
        c.execute("SELECT pxt.create_view('ml.words', 'ml.imgs', 'pxt.string_splitter(label)')")
        snap = c.execute("SELECT _pxt_rowid, label, n, small FROM ml.imgs_s ORDER BY 1").fetchall()
        old_version = c.execute("SELECT version FROM pxt.tables WHERE relid = 'ml.imgs'::regclass").fetchone()[0]
    # --- the upgrade, by the current release ------------------------------------------------------
    with server.admin() as c:
        c.execute(sql.SQL("ALTER DATABASE {} RESET pixelgres.python_dir").format(sql.Identifier(old_db)))
    with psycopg.connect(server.dsn(old_db), autocommit=True) as c:
        with pytest.raises(psycopg.Error, match="ALTER EXTENSION pixelgres UPDATE"):
            c.execute("SELECT pxt.history('ml.imgs')")   # old SQL, new Python: told what to do
    with psycopg.connect(server.dsn(old_db), autocommit=True) as c:
        c.execute("ALTER EXTENSION pixelgres UPDATE")
        upgraded = catalog(c)
    fresh_name = server.create_database()
    try:
        with psycopg.connect(server.dsn(fresh_name), autocommit=True) as c:
            fresh = catalog(c)
    finally:
        server.drop_database(fresh_name)
    for key in CATALOG:
        missing = [r for r in fresh[key] if r not in upgraded[key]]
        extra = [r for r in upgraded[key] if r not in fresh[key]]
        assert not missing and not extra, f"{key}: missing after upgrade {missing}, left over {extra}"
    # --- what the previous release wrote keeps working ------------------------------------------
    with psycopg.connect(server.dsn(old_db), autocommit=True) as c:
        # the old table got its face: its name shows the user's columns, its rows moved to its storage
        assert [d.name for d in c.execute("SELECT * FROM ml.imgs LIMIT 0").description] == \
            ["image", "label", "small", "n", "label_embedding"]
        assert c.execute("SELECT storage::text FROM pxt.list_tables() WHERE name = 'ml.imgs'").fetchone()[0] == \
            'pxt_data."ml.imgs"'
        # and the iterator view over it: its name shows its and its base's columns, and it follows
        assert not [d.name for d in c.execute("SELECT * FROM ml.words LIMIT 0").description if d.name.startswith("_pxt")]
        rows = c.execute("SELECT pxt.internal_relation('ml.words')::text").fetchone()[0]
        assert c.execute(f"SELECT count(*) FROM {rows} WHERE _pxt_base_rowid IS NOT NULL").fetchone()[0] == 3
        assert c.execute("SELECT count(*) FROM pg_depend WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e' "
                         "AND objid IN ('ml.imgs'::regclass, 'pxt_data.\"ml.imgs\"'::regclass)").fetchone()[0] == 0
        assert c.execute("SELECT pins FROM pxt.tables WHERE relid = 'ml.imgs_s'::regclass").fetchone()[0] == old_version
        with pytest.raises(psycopg.errors.GeneratedAlways):   # the upgrade guarded the old table
            c.execute('UPDATE pxt_data."ml.imgs" SET _pxt_v = 0')
        c.execute("INSERT INTO ml.imgs (image, label) VALUES (%s, 'grey')", (str(files / "3.png"),))
        assert c.execute("SELECT n, pxt.width(small) FROM ml.imgs WHERE label = 'grey'").fetchone() == (4, 8)
        assert c.execute("SELECT count(*) FROM ml.words WHERE label = 'grey'").fetchone()[0] == 1
        top = c.execute("SELECT row->>'label' FROM pxt.search('ml.imgs', 'label', 'grey', k => 1)").fetchone()[0]
        assert top == "grey"
        hist = c.execute("SELECT version, change_type, inserts FROM pxt.history('ml.imgs')").fetchall()
        assert hist[0] == (old_version + 1, "data", 1) and len(hist) == old_version + 2
        assert c.execute("SELECT pxt.revert('ml.imgs')").fetchone()[0] == old_version
        assert c.execute("SELECT pxt.revert('ml.imgs')").fetchone()[0] == old_version - 1   # the snapshot keeps it
        assert c.execute("SELECT _pxt_rowid, label, n, small FROM ml.imgs_s ORDER BY 1").fetchall() == snap
        assert c.execute("SELECT label FROM ml.imgs WHERE label LIKE 'red%'").fetchone()[0] == "red"
        at = [c.execute("SELECT count(*) FROM pxt.rows_at_version('ml.imgs', %s)", (n,)).fetchone()[0] for n in (3, 5)]
        assert at == [0, 2]   # time travel into versions the previous release wrote
