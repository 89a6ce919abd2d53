"""The catalog API (README: SQL reference, Catalog): what pixelgres knows about its tables, in
SQL, and the Python client reading nothing else."""
import json
import re
from pathlib import Path

import psycopg
import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def shop(db):
    db.execute("CREATE SCHEMA ml")
    db.execute("""SELECT pxt.create_table('ml.docs', '{"body": "string", "n": "int"}')""")
    db.execute("INSERT INTO ml.docs (body, n) VALUES ('One. Two.', 1), ('Three.', 2)")
    db.execute("SELECT pxt.add_computed_column('ml.docs', 'twice', 'n * 2')")
    db.execute("SELECT pxt.create_view('ml.sentences', 'ml.docs', 'pxt.string_splitter(body)')")
    db.execute("SELECT pxt.create_snapshot('ml.docs_v2', 'ml.docs')")
    db.execute("CREATE TABLE plain (x int)")
    return db


def test_list_tables_names_what_users_query(shop):
    rows = shop.execute("SELECT name, kind, schema, relname, storage::text, base::text FROM pxt.list_tables()").fetchall()
    assert rows == [
        ("ml.docs", "table", "ml", "docs", 'pxt_data."ml.docs"', None),
        ("ml.docs_v2", "snapshot", "ml", "docs_v2", "ml.docs_v2", "ml.docs"),
        ("ml.sentences", "view", "ml", "sentences", "ml.sentences_rows", "ml.docs"),
    ]
    versions = dict(shop.execute("SELECT name, version FROM pxt.list_tables()").fetchall())
    assert versions["ml.docs"] == shop.execute("SELECT max(version) FROM pxt.history('ml.docs')").fetchone()[0]


@pytest.mark.parametrize("name, kind", [
    ("ml.docs", "table"), ('"ml"."docs"', "table"), ("ml.sentences", "view"), ("ml.sentences_rows", "view"),
    ("ml.docs_v2", "snapshot"), ("plain", "unmanaged"), ("public.plain", "unmanaged"), ("nothing", None),
    ("ml.nothing", None),
])
def test_table_kind(shop, name, kind):
    assert shop.execute("SELECT pxt.table_kind(%s)", (name,)).fetchone()[0] == kind


@pytest.mark.parametrize("name", ["a.b.c.d", "ml.", '"unterminated', "x; DROP TABLE ml.docs"])
def test_hostile_names_are_refused_cleanly(shop, name):
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="invalid"):
        shop.execute("SELECT pxt.table_kind(%s)", (name,))
    shop.rollback() if not shop.autocommit else None
    assert shop.execute("SELECT count(*) FROM ml.docs").fetchone()[0] == 2


def test_describe_tables_views_snapshots_and_versions(shop):
    cols = shop.execute("SELECT name, type, is_computed, expr, is_system FROM pxt.describe('ml.docs')").fetchall()
    user = [c[:4] for c in cols if not c[4]]
    assert user == [("body", "text", False, None), ("n", "bigint", False, None), ("twice", "bigint", True, "n * 2")]
    assert {c[0] for c in cols if c[4]} == {"_pxt_rowid", "_pxt_errors", "_pxt_v"}
    snap = [r[0] for r in shop.execute("SELECT name FROM pxt.describe('ml.docs_v2') WHERE NOT is_system")]
    assert snap == ["body", "n", "twice"]
    view = [r[0] for r in shop.execute("SELECT name FROM pxt.describe('ml.sentences') WHERE NOT is_system")]
    assert {"pos", "text", "body", "n"} <= set(view)
    shop.execute("SELECT pxt.add_column('ml.docs', 'extra', 'int')")
    past = shop.execute("SELECT pxt.at_version('ml.docs', 1)::text").fetchone()[0]
    then = [r[0] for r in shop.execute("SELECT name FROM pxt.describe(%s) WHERE NOT is_system", (f"pg_temp.{past}",))]
    assert then == ["body", "n"]  # version 1: before the computed column and the new one
    assert shop.execute("SELECT count(*) FROM pxt.describe('nothing')").fetchone()[0] == 0


def test_describe_names_types_as_the_caller_sees_them(shop):
    shop.execute("SELECT pxt.create_table('vecs', '{\"v\": \"vector(3)\", \"img\": \"image\"}')")
    types = dict(shop.execute("SELECT name, type FROM pxt.describe('vecs') WHERE NOT is_system").fetchall())
    media = dict(shop.execute("SELECT name, media_type FROM pxt.describe('vecs') WHERE NOT is_system").fetchall())
    assert types == {"v": "vector(3)", "img": "pxt.image"} and media == {"v": None, "img": "image"}


def test_list_dirs_and_media_readable(shop, files):
    dirs = [r[0] for r in shop.execute("SELECT pxt.list_dirs()")]
    assert "ml" in dirs and "public" in dirs and not {"pxt", "pxt_internal", "pg_catalog"} & set(dirs)
    ok = files / "ok.txt"
    ok.write_text("hello")
    got = shop.execute("SELECT pxt.media_readable(%s)", ([str(ok), "/etc/passwd", "media://nope", str(files / "gone")],))
    assert got.fetchone()[0] == [True, False, False, False]


def test_a_reader_uses_the_catalog_api(shop, dsn):
    shop.execute("CREATE ROLE pxt_cat_reader LOGIN IN ROLE pxt_reader")
    shop.execute("GRANT USAGE ON SCHEMA ml TO pxt_cat_reader")
    try:
        with psycopg.connect(psycopg.conninfo.make_conninfo(dsn, user="pxt_cat_reader")) as c:
            assert [r[0] for r in c.execute("SELECT name FROM pxt.list_tables()")] == \
                ["ml.docs", "ml.docs_v2", "ml.sentences"]
            assert c.execute("SELECT pxt.table_kind('ml.docs')").fetchone()[0] == "table"
            assert c.execute("SELECT count(*) FROM pxt.describe('ml.docs')").fetchone()[0] == 6
    finally:
        shop.execute("DROP OWNED BY pxt_cat_reader CASCADE")
        shop.execute("DROP ROLE pxt_cat_reader")


def test_progress_notices_carry_json(db):
    db.execute("""SELECT pxt.create_table('prog', '{"x": "int"}')""")
    db.execute("INSERT INTO prog (x) SELECT g FROM generate_series(1, 6000) g")
    seen = []
    db.add_notice_handler(lambda d: seen.append((d.message_primary, d.message_detail)))
    db.execute("SELECT pxt.add_computed_column('prog', 'sq', 'x * x')")
    reports = [json.loads(detail)["pixelgres_progress"] for msg, detail in seen
               if msg.startswith("pixelgres: computing")]
    assert reports and reports[-1] == {"op": "recompute", "table": "public.prog", "columns": ["sq"], "done": 6000,
                                       "total": 6000, "errors": 0}
    assert [r["done"] for r in reports] == sorted(r["done"] for r in reports)
    seen.clear()  # errors so far: x % 1000 = 0 fails for 6 of the 6000 rows
    db.execute("SELECT pxt.add_computed_column('prog', 'inv', '100 / (x % 1000)', on_error => 'ignore')")
    reports = [json.loads(detail)["pixelgres_progress"] for msg, detail in seen if msg.startswith("pixelgres: computing")]
    assert reports[-1]["errors"] == 6 and [r["errors"] for r in reports] == sorted(r["errors"] for r in reports)
    assert any(msg.endswith("6000 of 6000 rows, 6 errors") for msg, _ in seen)


def test_the_client_reads_no_system_catalog():
    """The client speaks the documented SQL API; PostgreSQL's catalogs are the server's business."""
    hits = []
    for p in sorted((ROOT / "python" / "pixelgres" / "client").glob("*.py")):
        for n, line in enumerate(p.read_text().splitlines(), 1):
            if re.search(r"\bpg_(attribute|class|namespace|index|type|opclass|am|depend)\b", line) or \
                    re.search(r"CREATE\s+(OR\s+REPLACE\s+)?FUNCTION\s+pg_temp", line, re.I):
                hits.append(f"{p.name}:{n}: {line.strip()}")
    assert hits == []
