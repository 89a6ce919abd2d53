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
3. The canonical text PostgreSQL deparses from that view (fully qualified, quoted; a
   ``sqlgen.ddl.Deparsed``) is what generated triggers contain; the plpgsql ``pxt_row ALIAS
   FOR NEW`` makes it evaluate against the row being written. Triggers are regenerated from
   the views after any change.
"""
import plpy

from ..core.errors import fail as _fail
from ..core.spi import one, qualified
from ..sqlgen import ddl as gen

FORBIDDEN_WORDS = gen.FORBIDDEN_WORDS
ALIAS = "pxt_row"


def scan(expr: str) -> None:
    """Refuse (with a clean SQL error) an expression outside the accepted subset (1. above;
    the lexer is sqlgen.ddl.scan_expression, which sqlgen.ddl.Expression also runs)."""
    try:
        gen.scan_expression(expr)
    except gen.ExpressionError as e:
        _fail(str(e))


def create_view(relid: int, expr: str) -> str:
    """Validate ``expr`` and store it as a view over the table's storage; returns the view's name."""
    scan(expr)
    view = gen.expression_view(one("SELECT nextval('pxt_internal.expr_seq') AS n")["n"])
    stmt = gen.create_expression_view(view, gen.parse_name(qualified(relid)), gen.Expression(expr))
    try:
        # prepare() refuses more than one statement: a second guard after scan()
        plan = plpy.prepare(stmt.as_string())
        plpy.execute(plan)
    except plpy.SPIError as e:
        _fail(f"invalid expression {expr!r}: {e.args[0] if e.args else e}")
    return view.as_string()


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
    deparsed = gen.Deparsed(_strip(text))  # PostgreSQL's text, trusted: see gen.Deparsed
    names = [r["attname"] for r in plpy.execute(plpy.prepare(
        "SELECT attname FROM pg_attribute WHERE attrelid = $1 AND attnum = ANY($2) ORDER BY attnum",
        ["oid", "int2[]"]), [relid, cols])]
    col_type = att["t"]
    if col_type == "unknown":
        col_type, deparsed = "text", gen.cast_to_text(deparsed)
    media = att["tname"] if att["tns"] == "pxt" and att["tname"] in ("image", "video", "audio", "document") else None
    return {"type": col_type, "deps": names, "funcs": funcs, "sql": deparsed.as_string(), "deparsed": deparsed,
            "media_type": media}


def _strip(viewdef: str) -> str:
    """' SELECT <expr> AS pxt_value FROM ONLY t pxt_row, (VALUES...' -> '<expr>'."""
    body = viewdef.strip()
    if not body.startswith("SELECT") or not body[6:7].isspace():
        _fail("internal error: unexpected probe view definition")
    head, sep, rest = body[len("SELECT"):].rpartition(" AS pxt_value")
    if not sep or not rest.lstrip().startswith("FROM ONLY ") or "pxt_probe(pxt_probe_unused)" not in rest:
        _fail("internal error: unexpected probe view definition")
    return head.strip()
