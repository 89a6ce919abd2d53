"""Computed-column expressions: validate, type, find dependencies, canonicalise.

A user's expression is SQL text. We never paste it into generated code as typed:
1. ``scan`` is a strict lexer for a *subset* of PostgreSQL's expression syntax: plain
   '...' strings and "..." identifiers only (no E'', U&'' or $$ quoting, no backslashes),
   no ';', no comments, parentheses that never close more than they open, and no
   SELECT/FROM/... keywords (no subqueries). Anything outside the subset is refused, so
   PostgreSQL's lexer and ours cannot disagree about where the expression ends.
2. PostgreSQL then parses and types it as a view over the table (aliased ``pxt_row``) in
   schema pxt_internal, kept for the column's life: pg_depend tells exactly which columns
   and functions it reads, refuses to drop a column another one reads, and follows renames.
3. The canonical text PostgreSQL deparses from that view (fully qualified, quoted) is what
   generated triggers contain; the plpgsql ``pxt_row ALIAS FOR NEW`` makes it evaluate
   against the row being written. Triggers are regenerated from the views after any change.
"""
import plpy

from ..core.errors import fail as _fail
from ..core.spi import one

FORBIDDEN_WORDS = {"select", "from", "with", "into", "insert", "update", "delete", "merge",
                   "returning", "union", "intersect", "except", "table", "values", "lateral",
                   "create", "drop", "alter", "grant", "revoke", "copy", "do", "call", "execute"}
ALIAS = "pxt_row"


def scan(expr: str) -> None:
    if not isinstance(expr, str) or not expr.strip():
        _fail("computed column expression must be non-empty SQL text")
    if len(expr) > 100_000:
        _fail("computed column expression is too long")
    depth, i, n = 0, 0, len(expr)
    while i < n:
        c = expr[i]
        if c in "'\"":
            j = i + 1
            while True:
                j = expr.find(c, j)
                if j < 0:
                    _fail(f"unterminated {'string' if c == chr(39) else 'identifier'} in expression")
                if j + 1 < n and expr[j + 1] == c:  # doubled quote
                    j += 2
                    continue
                break
            if i > 0 and expr[i - 1] in "eEuU&" and c == "'" and (i < 2 or not (expr[i - 2].isalnum() or expr[i - 2] == "_")):
                _fail("E'' and U&'' strings are not accepted in expressions; use plain '...' strings")
            i = j + 1
            continue
        if c == ";":
            _fail("';' is not allowed in an expression")
        if c == "\\" or c == "$":
            _fail(f"{c!r} is not allowed in an expression (use plain '...' strings)")
        if expr.startswith("--", i) or expr.startswith("/*", i):
            _fail("comments are not allowed in an expression")
        if c == "(" or c == "[":
            depth += 1
        elif c == ")" or c == "]":
            depth -= 1
            if depth < 0:
                _fail("unbalanced parentheses in expression")
        elif c.isalpha() or c == "_":
            j = i
            while j < n and (expr[j].isalnum() or expr[j] in "_$"):
                j += 1
            if expr[i:j].lower() in FORBIDDEN_WORDS:
                _fail(f"{expr[i:j]!r}: subqueries and statements are not allowed in a computed "
                           "column expression")
            i = j
            continue
        i += 1
    if depth != 0:
        _fail("unbalanced parentheses in expression")


def create_view(relid: int, table_sql: str, expr: str) -> str:
    """Validate ``expr`` and store it as a view over the table; returns the view's name."""
    scan(expr)
    name = "expr_" + str(one("SELECT nextval('pxt_internal.expr_seq') AS n")["n"])
    try:
        # prepare() refuses more than one statement: a second guard after scan()
        plan = plpy.prepare(f"CREATE VIEW pxt_internal.{name} AS SELECT ({expr}) AS pxt_value "
                            f"FROM ONLY {table_sql} {ALIAS}, (VALUES (1)) pxt_probe(pxt_probe_unused)")
        plpy.execute(plan)
    except plpy.SPIError as e:
        _fail(f"invalid expression {expr!r}: {e.args[0] if e.args else e}")
    return "pxt_internal." + name


def analyze(relid: int, view: str, expr: str = "") -> dict:
    """Type, column and function dependencies and canonical text of an expression view."""
    view_oid = one("SELECT $1::regclass::oid::int AS oid", view)["oid"]
    att = one("SELECT format_type(a.atttypid, a.atttypmod) AS t, n.nspname AS tns, t.typname AS tname "
              "FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
              "JOIN pg_namespace n ON n.oid = t.typnamespace "
              "WHERE a.attrelid = $1 AND a.attnum = 1", view_oid, types=["oid"])
    deps = plpy.execute(plpy.prepare(
        "SELECT DISTINCT d.refclassid::regclass::text AS cls, d.refobjid::int AS obj, d.refobjsubid AS sub "
        "FROM pg_depend d JOIN pg_rewrite r ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid "
        "WHERE r.ev_class = $1 AND NOT (d.refclassid = 'pg_class'::regclass AND d.refobjid = $1)",
        ["oid"]), [view_oid])
    cols, funcs = [], []
    for d in deps:
        if d["cls"] == "pg_class":
            if d["obj"] != relid:
                _fail(f"invalid expression {expr!r}: it may read only columns of its own table")
            if d["sub"]:  # 0 is the FROM clause's dependency on the table itself
                cols.append(d["sub"])
        elif d["cls"] == "pg_proc":
            funcs.append(d["obj"])
    # canonical text, fully qualified: deparse with only pg_catalog on the search_path
    old_path = one("SELECT current_setting('search_path') AS p")["p"]
    plpy.execute("SELECT set_config('search_path', 'pg_catalog', true)")
    try:
        text = one("SELECT pg_get_viewdef($1, false) AS d", view_oid, types=["oid"])["d"]
    finally:
        plpy.execute(plpy.prepare("SELECT set_config('search_path', $1, true)", ["text"]), [old_path])
    canonical = _strip(text)
    names = [r["attname"] for r in plpy.execute(plpy.prepare(
        "SELECT attname FROM pg_attribute WHERE attrelid = $1 AND attnum = ANY($2) ORDER BY attnum",
        ["oid", "int2[]"]), [relid, cols])]
    col_type = att["t"]
    if col_type == "unknown":
        col_type, canonical = "text", f"({canonical})::text"
    media = att["tname"] if att["tns"] == "pxt" and att["tname"] in ("image", "video", "audio", "document") else None
    return {"type": col_type, "deps": names, "funcs": funcs, "sql": canonical, "media_type": media}


def _strip(viewdef: str) -> str:
    """' SELECT <expr> AS pxt_value FROM ONLY t pxt_row, (VALUES...' -> '<expr>'."""
    body = viewdef.strip()
    if not body.startswith("SELECT") or not body[6:7].isspace():
        _fail("internal error: unexpected probe view definition")
    head, sep, rest = body[len("SELECT"):].rpartition(" AS pxt_value")
    if not sep or not rest.lstrip().startswith("FROM ONLY ") or "pxt_probe(pxt_probe_unused)" not in rest:
        _fail("internal error: unexpected probe view definition")
    return head.strip()
