"""The extension script passes pgspot (the linter for PostgreSQL extension scripts) with no
error and no warning, and the pinned search path it runs with works in a real install.

pgspot cannot analyse PL/Python bodies, hence ``--ignore-lang plpython3u``: those bodies build
their SQL at run time (pixelgres.server), where pgspot cannot follow it anyway. Every SQL and
PL/pgSQL function pins ``search_path`` in its CREATE FUNCTION, except the ones in UNPINNED,
whose reasons are given there (see also sql/functions/20_tables.sql); pgspot still checks
that their bodies qualify every function and operator.
"""
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from pixelgres._version import __version__

ROOT = Path(__file__).resolve().parent.parent

# pgspot's spelling of each function -> why it runs with the caller's search_path
UNPINNED = {
    "pxt.describe(tbl text,name name,type text,media_type text,is_computed boolean,expr text,is_system boolean)":
        "names column types as the caller's search_path sees them (format_type), like psql's \\d",
    "pxt.add_computed_column(tbl text,name text,expr text,on_error text,if_exists text,mode text,destination text)":
        "resolves the caller's table name and backfills through triggers that run users' own functions",
    "pxt.alter_computed_column(tbl text,name text,expr text,on_error text)":
        "resolves the caller's table name and recomputes through triggers that run users' own functions",
    "pxt.recompute_columns(tbl text,columns text[],errors_only boolean)":
        "its UPDATEs fire the triggers that run users' own functions, which must see the caller's path",
    "pxt.recompute_column(tbl text,col text,mode text,errors_only boolean)":
        "calls recompute_columns, whose UPDATEs run users' own functions on the caller's path",
    "pxt.process_pending(tbl text,batch_size integer,max_batches integer)":
        "a procedure with a SET clause cannot COMMIT (it commits each batch); its UPDATEs run users' functions",
}


@pytest.fixture(scope="module")
def script(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pgspot") / f"pixelgres--{__version__}.sql"
    subprocess.run([sys.executable, str(ROOT / "extension" / "build_sql.py"), "--version", __version__,
                    "--out", str(out)], check=True, cwd=ROOT / "extension")
    return out


def pgspot(*args: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("pgspot")  # the venv's (test extras of pyproject.toml)
    assert exe.exists(), f"{exe} missing: pip install -e '.[test]'"
    return subprocess.run([str(exe), *args], check=False, capture_output=True, text=True)


def test_extension_script_is_clean(script):
    flags = ["--ignore-lang", "plpython3u"]
    for proc in UNPINNED:
        flags += ["--proc-without-search-path", proc]
    r = pgspot(*flags, str(script))
    report = r.stdout + r.stderr
    findings = [line for line in report.splitlines() if line.strip() and "Errors:" not in line]
    assert "Errors: 0 Warnings: 0 Unknown: 0" in report, report
    assert findings == [], report
    assert r.returncode == 0, report


def test_unpinned_list_is_current(script):
    """Each exemption is still needed: without the flags pgspot reports exactly these."""
    r = pgspot("--ignore-lang", "plpython3u", str(script))
    unpinned = {line.split(": ", 2)[2].rsplit(" at line ", 1)[0]
                for line in r.stdout.splitlines() if line.startswith("PS005:")}
    assert unpinned == set(UNPINNED), r.stdout


def test_installed_functions_pin_search_path(db):
    """What pgspot reads is what gets installed: the placeholders the migrations create are
    replaced, and every SQL / PL/pgSQL function but the exempt ones runs with the pinned path."""
    rows = db.execute("""
        SELECT p.proname, p.proconfig FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
        WHERE p.pronamespace = 'pxt'::regnamespace AND l.lanname IN ('sql', 'plpgsql')""").fetchall()
    unpinned = {name for name, config in rows if not config}
    assert unpinned == {k.split("(")[0].removeprefix("pxt.") for k in UNPINNED}
    for name, config in rows:
        assert config in (None, ["search_path=pg_catalog, pg_temp"]), (name, config)


def test_install_keeps_callers_search_path_and_finds_pgvector_anywhere(db):
    """The script pins its path with SET LOCAL, which CREATE EXTENSION undoes at its end, and
    finds pgvector in whatever schema it was installed into."""
    schema = "vec_" + uuid.uuid4().hex[:8]
    db.execute("DROP EXTENSION pixelgres")
    db.execute("DROP EXTENSION vector")
    db.execute(f"CREATE SCHEMA {schema}")
    db.execute(f"CREATE EXTENSION vector SCHEMA {schema}")
    db.execute("SET search_path = public")
    db.execute("CREATE EXTENSION pixelgres")
    assert db.execute("SHOW search_path").fetchone()[0] == "public"
    returns = dict(db.execute("""
        SELECT p.proname, p.prorettype::regtype::text FROM pg_proc p
        WHERE p.pronamespace = 'pxt'::regnamespace AND p.prorettype = %s::regtype""",
        (f"{schema}.vector",)).fetchall())
    assert {"openai_embeddings", "sentence_transformer", "e5_small", "image_features", "test_embedding",
            "embed"} <= set(returns)
    assert db.execute("SELECT pxt.test_embedding('hello world', 4) IS NOT NULL").fetchone()[0]


def test_upgrade_scripts_are_clean(tmp_path):
    """The upgrade from each frozen release, with one more exemption: PS002 (CREATE OR REPLACE of
    a function in a schema the script did not create) is safe here because the schema is pxt,
    which the extension owns and in which no other role may create anything."""
    flags = ["--ignore-lang", "plpython3u", "--ignore", "PS002"]
    for proc in UNPINNED:
        flags += ["--proc-without-search-path", proc]
    releases = sorted((ROOT / "sql" / "releases").glob("pixelgres--*.sql"))
    assert releases
    for rel in releases:
        out = tmp_path / f"{rel.stem}--{__version__}.sql"
        subprocess.run([sys.executable, str(ROOT / "extension" / "build_sql.py"), "--version", __version__,
                        "--upgrade-from", str(rel), "--out", str(out)], check=True, cwd=ROOT / "extension")
        r = pgspot(*flags, str(out))
        assert "Errors: 0 Warnings: 0 Unknown: 0" in r.stdout + r.stderr, r.stdout + r.stderr


def test_no_role_but_the_owner_may_create_in_pxt(db):
    assert db.execute("SELECT count(*) FROM aclexplode((SELECT nspacl FROM pg_namespace WHERE nspname = 'pxt')) a "
                      "WHERE a.privilege_type = 'CREATE' AND a.grantee <> "
                      "(SELECT nspowner FROM pg_namespace WHERE nspname = 'pxt')").fetchone()[0] == 0
