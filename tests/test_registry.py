"""Functions declared once (sql/functions/*.toml, extension/registry.py)."""
import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from conftest import extension_module

from pixelgres import __version__

ROOT = Path(__file__).resolve().parent.parent
build_sql = extension_module("build_sql")
registry = extension_module("registry")

TOMLS = sorted((ROOT / "sql" / "functions").glob("*.toml"))
ENTRIES = [(p.name, fn, spec) for p in TOMLS for fn, spec in tomllib.loads(p.read_text()).items()]


def _build(out: Path) -> bytes:
    subprocess.run([sys.executable, str(ROOT / "extension" / "build_sql.py"), "--version", __version__,
                    "--out", str(out)], check=True, cwd=ROOT / "extension")
    return out.read_bytes()


def test_rebuild_is_byte_identical(tmp_path):
    assert _build(tmp_path / "a.sql") == _build(tmp_path / "b.sql")


def test_every_function_file_with_a_registry_uses_it():
    for toml in TOMLS:
        sql = toml.with_suffix(".sql")
        assert sql.exists() and sql.read_text().count("\n-- @registry\n") == 1, sql.name


@pytest.mark.parametrize("file, fn, spec", ENTRIES, ids=[f"{f}:{fn}" for f, fn, _ in ENTRIES])
def test_declared_python_exists(file, fn, spec):
    """The entry point is a module-level function of a server module (read, not imported: the
    server's dependencies are not installed in the client's Python)."""
    module, _, func = spec["python"].partition(":")
    path = ROOT / "python" / Path(*module.split("."))
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    assert path.exists(), spec["python"]
    tree = ast.parse(path.read_text())
    if spec.get("batched"):
        assert any(isinstance(d, ast.Call) and "batched" in (getattr(d.func, "id", ""), getattr(d.func, "attr", "")) and
                   isinstance(d.args[0], ast.Constant) and d.args[0].value == spec["batched"]
                   for n in tree.body if isinstance(n, ast.FunctionDef) for d in n.decorator_list), \
            f"{module} registers no batch implementation {spec['batched']!r}"
    else:
        assert func in {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}, spec["python"]


def test_installed_functions_match_their_declarations(db):
    for _, fn, spec in ENTRIES:
        row = db.execute("""
            SELECT p.provolatile, p.proisstrict, p.proretset, l.lanname, obj_description(p.oid, 'pg_proc')
            FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
            WHERE p.pronamespace = 'pxt'::regnamespace AND p.proname = %s""", (fn,)).fetchall()
        assert len(row) == 1, fn
        vol, strict, retset, lang, comment = row[0]
        assert vol == {"immutable": "i", "stable": "s", "volatile": "v"}[spec.get("volatility", "volatile")], fn
        assert strict == spec.get("strict", False), fn
        assert retset == spec["returns"].lstrip().upper().startswith(("TABLE", "SETOF")), fn
        assert lang == "plpython3u"
        assert comment == (spec.get("comment", "").strip() or None), fn
        batched = db.execute("SELECT count(*) FROM pxt.batched_functions WHERE func::oid IN "
                             "(SELECT oid FROM pg_proc WHERE proname = %s AND pronamespace = 'pxt'::regnamespace)",
                             (fn,)).fetchone()[0]
        assert batched == (1 if spec.get("batched") else 0), fn


def test_a_new_function_is_one_declaration(db):
    """A declaration alone gives a working SQL function: here a second name for the sentence splitter."""
    sql = registry.generate("my_sentences", {
        "args": "s text, separators text DEFAULT 'sentence'", "returns": "TABLE (pos integer, text text)",
        "python": "pixelgres.server.media.documents:string_splitter", "null_if": ["s"], "rows": True,
        "comment": "for a test"})
    db.execute(sql.replace("#@pxt", build_sql.PREAMBLE))
    assert db.execute("SELECT text FROM pxt.my_sentences('One. Two.') ORDER BY pos").fetchall() == [("One.",), ("Two.",)]
    assert db.execute("SELECT count(*) FROM pxt.my_sentences(NULL)").fetchone()[0] == 0
    with pytest.raises(Exception, match="separator"):
        db.execute("SELECT * FROM pxt.my_sentences('x', 'nonsense')")


@pytest.mark.parametrize("spec, message", [
    ({"args": "x text", "returns": "text", "python": "os:system"}, "pixelgres.server"),
    ({"args": "x text", "returns": "text", "python": "pixelgres.server.media.image:resize; import os"}, "python must"),
    ({"args": "x text", "returns": "text", "python": "pixelgres.server.media.image"}, "must name a function"),
    ({"args": "X text", "returns": "text", "python": "pixelgres.server.media.image:resize"}, "lowercase"),
    ({"args": "x text", "returns": "text", "python": "pixelgres.server.media.image:resize", "stirct": True}, "unknown keys"),
    ({"args": "x text", "returns": "text", "python": "pixelgres.server.media.image:resize", "null_if": ["y"]}, "null_if"),
    ({"args": "x text", "returns": "text", "python": "pixelgres.server.ai.embeddings", "batched": "a'b"}, "letters"),
    ({"args": "x text", "python": "pixelgres.server.media.image:resize"}, "returns is required"),
    ({"args": "x text", "returns": "text $py$ import os", "python": "pixelgres.server.media.image:info"}, "plain SQL"),
    ({"args": "x text); DROP TABLE t; --", "returns": "text", "python": "pixelgres.server.media.image:info"}, "plain SQL"),
    ({"args": "x text", "returns": "text", "python": "pixelgres.server.media.image:resize", "volatility": "x"}, "volatility"),
])
def test_malformed_declarations_are_refused(spec, message):
    with pytest.raises(registry.RegistryError, match=message):
        registry.generate("f", spec)


def test_comments_are_quoted():
    sql = registry.generate("f", {"args": "x text", "returns": "text", "python": "pixelgres.server.media.image:info",
                                  "comment": "it's $py$; DROP TABLE t; --"})
    assert "IS\n  'it''s $py$; DROP TABLE t; --';" in sql
