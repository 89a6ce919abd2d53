"""Small SQL helpers for server code: identifiers, table names, catalog lookups.

Identifiers coming from users are parsed by PostgreSQL itself (parse_ident) and re-quoted
with quote_ident, so nothing a user types is ever pasted into generated SQL unquoted.
"""
import plpy

from .errors import fail as _fail


def q(ident: str) -> str:
    return plpy.quote_ident(ident)


def lit(value) -> str:
    return "NULL" if value is None else plpy.quote_literal(str(value))


def one(query: str, *args, types=None):
    """First row of a parameterised query, or None."""
    if args:
        plan = plpy.prepare(query, types or ["text"] * len(args))
        rows = plpy.execute(plan, list(args))
    else:
        rows = plpy.execute(query)
    return rows[0] if rows else None


def parse_table_name(name: str) -> tuple[str, str]:
    """'ml.images' / '"My Schema".t' / 'images' -> (schema, table); default schema public."""
    if not isinstance(name, str) or not name.strip():
        _fail("table name must be a non-empty string")
    try:
        parts = one("SELECT parse_ident($1) AS p", name)["p"]
    except plpy.SPIError as e:
        _fail(f"invalid table name {name!r}: {e.args[0] if e.args else e}")
    if len(parts) == 1:
        return "public", parts[0]
    if len(parts) == 2:
        return parts[0], parts[1]
    _fail(f"invalid table name {name!r}: expected table or schema.table")


def check_column_name(name: str) -> str:
    if not isinstance(name, str) or not name or len(name.encode()) > 63:
        _fail(f"invalid column name {name!r}: 1 to 63 bytes")
    if name.startswith("_pxt_"):
        _fail(f"invalid column name {name!r}: names starting with _pxt_ are reserved")
    return name


def regclass(name: str) -> int:
    """OID of an existing table given by a user-supplied name."""
    schema, table = parse_table_name(name)
    row = one("SELECT c.oid::int AS oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
              "WHERE n.nspname = $1 AND c.relname = $2", schema, table)
    if row is None:
        _fail(f"table {name!r} does not exist", sqlstate="42P01")
    return row["oid"]


def qualified(oid: int) -> str:
    return one("SELECT format('%I.%I', n.nspname, c.relname) AS n FROM pg_class c "
               "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1",
               oid, types=["oid"])["n"]


def vkey(oid: int) -> str:
    """The stable key of a managed table's generated objects (see pxt.tables.vkey)."""
    return one("SELECT vkey FROM pxt.tables WHERE relid = $1", oid, types=["oid"])["vkey"]


_PRIMARY: list = []  # set once this backend saw it runs on a primary (a primary never turns replica)


def on_replica() -> bool:
    """Is this a hot-standby replica (read-only until promoted)? Functions that would write
    outside the tables (the media store, the AI result cache) ask before they do."""
    if _PRIMARY:
        return False
    if one("SELECT pg_catalog.pg_is_in_recovery() AS r")["r"]:
        return True
    _PRIMARY.append(True)
    return False
