"""No SQL pasted together from strings in the server (issue #15): an AST lint with a ratchet.

A finding is SQL text built at run time by string formatting:

* the SQL argument of a call that runs or prepares SQL (``plpy.execute``, ``plpy.prepare``,
  ``plpy.cursor``, ``spi.one`` and the modules' own ``_plan``/``_run`` helpers) that is an
  f-string, a ``%``-format, a ``str.format()`` call or a ``+`` with non-constant parts — or a
  name assigned such a value in the same function;
* anywhere else, such a formatted string whose constant text reads like SQL (a statement
  keyword in capitals: SELECT, INSERT, ... COMMENT ON).

Server SQL is composed with ``pixelgres.server.sqlgen`` instead (``SQL``, ``Identifier``,
``Literal``; docs/architecture.md). The code not converted yet is counted per file in
tests/sql_fstring_baseline.json, a ratchet: a file with more findings than its count fails
(new SQL built by formatting), and so does one with fewer (lower its count, so that the
conversion cannot be undone unnoticed): ``python tests/test_sql_lint.py --write-baseline``
rewrites it from the tree. Files not listed have none, and server/sqlgen/ must have none.
"""
from __future__ import annotations

import ast
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVER = ROOT / "python" / "pixelgres" / "server"
BASELINE = Path(__file__).with_name("sql_fstring_baseline.json")

# calls whose first argument is SQL text
SINKS = {"execute", "prepare", "cursor", "one", "_plan", "_run"}
# text that reads like SQL: a statement keyword, or a clause or plpgsql word that fragments of
# statements carry, in capitals (messages are in lower case)
SQL_WORDS = re.compile(r"\b(?:SELECT|INSERT|UPDATE|DELETE|CREATE|ALTER|DROP|GRANT|REVOKE|TRUNCATE|COMMENT ON"
                       r"|FROM|WHERE|JOIN|VALUES|RETURNING|DECLARE|BEGIN|PERFORM|RAISE|EXECUTE|IS (?:NOT )?NULL|IS DISTINCT)\b")


def _str_const(node) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


def _add_parts(node) -> list:
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _add_parts(node.left) + _add_parts(node.right)
    return [node]


def _formatted(node) -> bool:
    """Is ``node`` a string built at run time by formatting (f-string, %, .format, +)?"""
    if isinstance(node, ast.JoinedStr):
        return any(isinstance(v, ast.FormattedValue) for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
        return _str_const(node.left) or isinstance(node.left, ast.JoinedStr)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format":
        return _str_const(node.func.value) or isinstance(node.func.value, ast.JoinedStr)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return not all(isinstance(p, ast.Constant) for p in _add_parts(node))
    if isinstance(node, ast.IfExp):
        return _formatted(node.body) or _formatted(node.orelse)
    return False


def _text(node) -> str:
    """The constant text written in a formatted string."""
    return " ".join(n.value for n in ast.walk(node) if _str_const(n))


def _sink(func) -> str | None:
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
    return name if name in SINKS else None


def _scope_assignments(scope) -> dict[str, list]:
    """name -> values assigned to it in ``scope``'s own body (nested functions excluded)."""
    out: dict[str, list] = {}
    todo = list(ast.iter_child_nodes(scope))
    while todo:
        n = todo.pop()
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            continue
        if isinstance(n, ast.Assign):
            for t in n.targets:
                if isinstance(t, ast.Name):
                    out.setdefault(t.id, []).append(n.value)
        elif isinstance(n, (ast.AugAssign, ast.AnnAssign)) and isinstance(n.target, ast.Name) and n.value:
            out.setdefault(n.target.id, []).append(n.value)
        todo.extend(ast.iter_child_nodes(n))
    return out


def findings(source: str, filename: str = "<string>") -> list[tuple[int, str]]:
    """(line, why) for each piece of SQL built by formatting in ``source``, in line order."""
    tree = ast.parse(source, filename)
    found: dict[int, tuple[ast.AST, str]] = {}
    covered: set[int] = set()

    def flag(node, why):
        if id(node) not in covered:
            found[id(node)] = (node, why)
            covered.update(id(n) for n in ast.walk(node))

    scopes = [tree] + [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    for scope in scopes:
        assigned = _scope_assignments(scope)
        todo = list(ast.iter_child_nodes(scope))
        while todo:
            n = todo.pop()
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue  # its own scope
            todo.extend(ast.iter_child_nodes(n))
            if not (isinstance(n, ast.Call) and _sink(n.func) and n.args):
                continue
            arg, name = n.args[0], _sink(n.func)
            if _formatted(arg):
                flag(arg, f"{name}() is given SQL built by formatting")
            elif isinstance(arg, ast.Name):
                for value in assigned.get(arg.id, []):
                    if _formatted(value):
                        flag(value, f"SQL built by formatting, run by {name}() on line {n.lineno}")
    for n in ast.walk(tree):  # parents before children: a + chain counts once
        if id(n) not in covered and _formatted(n) and not isinstance(n, ast.IfExp) and SQL_WORDS.search(_text(n)):
            flag(n, "SQL built by formatting")
    return sorted((node.lineno, why) for node, why in found.values())


def _server_files() -> list[Path]:
    return sorted(p for p in SERVER.rglob("*.py") if "__pycache__" not in p.parts)


def _key(p: Path) -> str:
    return p.relative_to(ROOT).as_posix()


def counts() -> dict[str, list[tuple[int, str]]]:
    out = {}
    for p in _server_files():
        f = findings(p.read_text(), str(p))
        if f:
            out[_key(p)] = f
    return out


# --- the lint itself ---------------------------------------------------------------------------
SAMPLE = '''
import plpy
def f(t, x, cond):
    plpy.execute(f"DROP TABLE {t}")
    plpy.execute("SELECT %s" % x)
    plpy.execute("SELECT {}".format(x))
    plpy.execute("SELECT * FROM " + t)
    q = f"DELETE FROM {t}"
    plpy.execute(q)
    body = f"UPDATE {t} SET a = 1"
    one(f"{x}")
    spi.one("SELECT 1 FROM " + t + " WHERE " + x)
    plpy.execute(f"SELECT {x}" if cond else "SELECT 1")
    plpy.execute("SELECT 1")
    plpy.execute("SELECT 1 " "FROM t")
    plpy.execute(plpy.prepare("SELECT $1", ["text"]), [x])
    msg = f"cannot drop {t}: it has no rows"
    plpy.execute(SQL("SELECT {}").format(Identifier(t)).as_string())
    plpy.execute(stmt.as_string())
    def inner():
        return f"plain text {x}"
'''


def test_lint_finds_sql_built_by_formatting():
    lines = [line for line, _ in findings(SAMPLE)]
    assert lines == [4, 5, 6, 7, 8, 10, 11, 12, 13]
    assert "line 9" in dict(findings(SAMPLE))[8]


def test_constant_and_composed_sql_pass():
    ok = '''
plpy.execute("SELECT 1")
plpy.execute(plpy.prepare("SELECT $1", ["int"]), [n])
plpy.execute(gen.revert_data(t, h, cols, v).as_string())
s = SQL("DROP VIEW {}").format(Identifier(a, b))
_fail(f"cannot revert {table}; drop it with pxt.drop_table")
'''
    assert findings(ok) == []


def test_sql_fragments_are_literals():
    """sqlgen.compose.SQL only wraps text written in the source (it checks this at run time
    too); its private constructor is for compose itself."""
    bad = []
    for p in _server_files():
        for n in ast.walk(ast.parse(p.read_text(), str(p))):
            if not isinstance(n, ast.Call):
                continue
            f = n.func
            name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else None
            if name == "SQL" and not (len(n.args) == 1 and not n.keywords and _str_const(n.args[0])):
                bad.append(f"{_key(p)}:{n.lineno}: SQL() takes one str literal")
            if name == "_trusted" and p.name != "compose.py":
                bad.append(f"{_key(p)}:{n.lineno}: SQL._trusted is compose's own")
    assert bad == []


def test_sqlgen_builds_no_sql_by_formatting():
    bad = {k: v for k, v in counts().items() if "/server/sqlgen/" in k}
    assert bad == {}


def test_ratchet():
    baseline = json.loads(BASELINE.read_text())
    now = counts()
    above, below = [], []
    for key in sorted(set(baseline) | set(now)):
        n, allowed = len(now.get(key, [])), baseline.get(key, 0)
        if n > allowed:
            lines = ", ".join(f"{line} ({why})" for line, why in now[key])
            above.append(f"{key}: {n} pieces of SQL built by formatting, {allowed} allowed; lines {lines}")
        elif n < allowed:
            below.append(f"{key}: {n}, baseline {allowed}")
    assert not above, ("new SQL built by formatting in the server: compose it with pixelgres.server.sqlgen "
                       "(SQL, Identifier, Literal) instead\n  " + "\n  ".join(above))
    assert not below, ("fewer pieces of SQL built by formatting than tests/sql_fstring_baseline.json allows: "
                       "lower it (python tests/test_sql_lint.py --write-baseline)\n  " + "\n  ".join(below))


if __name__ == "__main__":
    if sys.argv[1:] == ["--write-baseline"]:
        BASELINE.write_text(json.dumps({k: len(v) for k, v in counts().items()}, indent=2) + "\n")
        print(f"wrote {BASELINE}")
    else:
        for key, found in counts().items():
            for line, why in found:
                print(f"{key}:{line}: {why}")
