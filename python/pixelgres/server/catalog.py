"""The catalog: pixelgres's own metadata, read and written in one place.

Tables (``pxt.tables``: managed tables, iterator views' storage, snapshots), their columns
(``pxt.column_defs``), the version log (``pxt.versions``) and iterator views
(``pxt.iterator_views``). Everything above this module asks it rather than querying those
tables itself; it imports nothing of pixelgres but ``core`` and ``sqlgen``.
"""
from __future__ import annotations

import json

import plpy

from .core.errors import fail
from .core.spi import one, parse_table_name
from .sqlgen.compose import SQL, Identifier


# --- tables -----------------------------------------------------------------------------------
def managed(name: str) -> int:
    """OID of a managed table's storage given a user-supplied name: the table's name (its
    face, see faces.py), an iterator view's or a snapshot's name."""
    schema, table = parse_table_name(name)
    row = one("SELECT t.relid::oid::int AS oid FROM pxt.tables t "
              "WHERE t.face = to_regclass(format('%I.%I', $1::text, $2::text))", schema, table)
    if row is not None:
        return row["oid"]
    row = one("SELECT t.relid::oid::int AS oid FROM pxt.tables t JOIN pg_class c ON c.oid = t.relid "
              "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2",
              schema, table)
    if row is not None:
        return row["oid"]
    storage = iterator_storage(name)
    if storage:
        return storage
    exists = one("SELECT to_regclass(format('%I.%I', $1::text, $2::text)) IS NOT NULL AS e", schema, table)["e"]
    fail(f"table {name!r} is not managed by pixelgres" if exists else f"table {name!r} does not exist",
         hint="adopt an existing table with pxt.manage()" if exists else None,
         sqlstate="42809" if exists else "42P01")


def display_name(oid: int) -> str:
    """A managed table's name as users write it: its face's, else its own (quote_ident quoting)."""
    return one("SELECT format('%I.%I', n.nspname, c.relname) AS n FROM pxt.tables t "
               "JOIN pg_class c ON c.oid = coalesce(t.face, t.relid) JOIN pg_namespace n ON n.oid = c.relnamespace "
               "WHERE t.relid = $1 UNION ALL SELECT $1::regclass::text LIMIT 1", oid, types=["oid"])["n"]


def vkey(oid: int) -> str:
    """The stable key of a managed table's generated objects (see pxt.tables.vkey)."""
    return one("SELECT vkey FROM pxt.tables WHERE relid = $1", oid, types=["oid"])["vkey"]


# --- the version log ---------------------------------------------------------------------------
def current_version(oid: int) -> int:
    return one("SELECT version FROM pxt.tables WHERE relid = $1", oid, types=["oid"])["version"]


def schema_snapshot(oid: int) -> list[dict]:
    """The user's columns as the version log records them."""
    return [{"attnum": r["attnum"], "name": r["name"], "type": r["col_type"]} for r in plpy.execute(plpy.prepare(
        "SELECT attnum, name, col_type FROM pxt.column_defs WHERE relid = $1 AND dropped_at IS NULL ORDER BY attnum",
        ["oid"]), [oid])]


def log_create(oid: int) -> None:
    plpy.execute(plpy.prepare(
        "INSERT INTO pxt.versions (relid, version, change_type, schema_change, schema) VALUES ($1, 0, 'schema', $2, $3)",
        ["oid", "jsonb", "jsonb"]), [oid, json.dumps({"op": "create"}), json.dumps(schema_snapshot(oid))])


def log_schema_version(oid: int, change: dict) -> int:
    v = one("UPDATE pxt.tables SET version = version + 1 WHERE relid = $1 RETURNING version",
            oid, types=["oid"])["version"]
    plpy.execute(plpy.prepare(
        "INSERT INTO pxt.versions (relid, version, change_type, schema_change, schema) VALUES ($1, $2, 'schema', $3, $4)",
        ["oid", "int", "jsonb", "jsonb"]), [oid, v, json.dumps(change), json.dumps(schema_snapshot(oid))])
    return v


# --- iterator views ----------------------------------------------------------------------------
def iterator_entry(storage: int) -> dict | None:
    r = one("SELECT storage::oid::int AS storage, view_schema, view_name, view_rel::oid::int AS view_oid, "
            "base::oid::int AS base, call, iter_view::text AS iter_view FROM pxt.iterator_views "
            "WHERE storage = $1", storage, types=["oid"])
    return dict(r) if r else None


def iterator_storage(name: str) -> int | None:
    """Storage oid of an iterator view given the view's (or the storage's) name."""
    schema, rel = parse_table_name(name)
    r = one("SELECT storage::oid::int AS s FROM pxt.iterator_views v WHERE (v.view_schema = $1 AND v.view_name = $2) "
            "OR v.storage = to_regclass(format('%I.%I', $1::text, $2::text))", schema, rel)
    return r["s"] if r else None


# --- schemas (Pixeltable's directories) ------------------------------------------------------------
def ensure_schema(schema: str) -> None:
    if one("SELECT to_regnamespace(quote_ident($1)) IS NULL AS missing", schema)["missing"]:
        plpy.execute(SQL("CREATE SCHEMA {}").format(Identifier(schema)).as_string())
        # readers are granted SELECT on each managed table; they must reach the schema too
        plpy.execute(SQL("GRANT USAGE ON SCHEMA {} TO pxt_reader").format(Identifier(schema)).as_string())
