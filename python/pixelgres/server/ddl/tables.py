"""Managed tables and computed columns: catalog, DDL, backfill.

The catalog (pxt.tables, pxt.column_defs) says which columns are computed and from what;
``triggers.regenerate`` turns it into one row trigger function per table (and statement
triggers for batched columns). Every change here ends by regenerating.
"""
import json
import re

import plpy

from .. import catalog
from ..catalog import managed
from ..core.errors import fail as _fail
from ..core.spi import check_column_name, ensure_schema, one, parse_table_name, q, qualified
from ..versioning import history
from . import exprs, triggers

TYPE_ALIASES = {
    "image": "pxt.image", "video": "pxt.video", "audio": "pxt.audio", "document": "pxt.document",
    "string": "text", "str": "text", "int": "bigint", "float": "double precision",
    "bool": "boolean", "json": "jsonb", "timestamp": "timestamptz", "bytes": "bytea",
}
_TYPE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_ .]*(\(\s*\d+\s*(,\s*\d+\s*)?\))?(\[\])?$")
SYSTEM_COLUMNS = ("_pxt_rowid", "_pxt_errors", "_pxt_v")


def resolve_type(spec) -> str:
    if not isinstance(spec, str):
        _fail(f"column type must be a string, not {spec!r}")
    t = TYPE_ALIASES.get(spec.strip().lower(), spec.strip())
    try:
        known = bool(_TYPE_RE.match(t)) and one("SELECT to_regtype($1) IS NOT NULL AS ok", t)["ok"] is True
    except plpy.SPIError:  # e.g. 'int NOT NULL': not a type name
        known = False
    if not known:
        _fail(f"unknown column type {spec!r}",
                   hint="use image, video, audio, document, string, int, float, bool, json, "
                        "timestamp, date, bytes, or any PostgreSQL type name")
    return t


def create_table(name: str, schema_json: str, if_exists: str = "error") -> str:
    schema, table = parse_table_name(name)
    try:
        spec = json.loads(schema_json) if schema_json else {}
    except ValueError as e:
        _fail(f"schema must be a JSON object of column name -> type: {e}")
    if not isinstance(spec, dict):
        _fail("schema must be a JSON object of column name -> type")
    full = f"{q(schema)}.{q(table)}"
    if one("SELECT to_regclass($1) IS NOT NULL AS e", full)["e"]:
        if if_exists == "ignore":
            return full
        if if_exists == "replace":
            drop_table(full)
        else:
            _fail(f"table {name!r} already exists", hint="if_exists => 'ignore' or 'replace'", sqlstate="42P07")
    cols = []
    for c, t in spec.items():
        check_column_name(c)
        try:
            cols.append(f"{q(c)} {resolve_type(t)}")
        except plpy.Error as e:
            _fail(f"column {c!r}: {e.args[0] if e.args else e}", hint="types: image, video, audio, document, "
                       "string, int, float, bool, json, timestamp, date, bytes, or a PostgreSQL type name")
    ensure_schema(schema)
    plpy.execute(f"CREATE TABLE {full} ({', '.join(cols + ['_pxt_rowid bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY', '_pxt_errors jsonb', '_pxt_v integer NOT NULL DEFAULT 0'])})")
    manage(full)
    return full


def manage(name: str) -> str:
    schema, table = parse_table_name(name)
    full = f"{q(schema)}.{q(table)}"
    row = one("SELECT c.oid::int AS oid, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
              "WHERE n.nspname = $1 AND c.relname = $2", schema, table)
    if row is None:
        _fail(f"table {name!r} does not exist", sqlstate="42P01")
    if row["relkind"] not in ("r",):
        _fail(f"{name!r} is not a plain table", sqlstate="42809")
    oid = row["oid"]
    if one("SELECT 1 AS x FROM pxt.tables WHERE relid = $1", oid, types=["oid"]):
        return full
    have = {r["attname"] for r in plpy.execute(plpy.prepare(
        "SELECT attname FROM pg_attribute WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped", ["oid"]), [oid])}
    if "_pxt_rowid" not in have:
        plpy.execute(f"ALTER TABLE {full} ADD COLUMN _pxt_rowid bigint GENERATED ALWAYS AS IDENTITY")
        plpy.execute(f"CREATE UNIQUE INDEX ON {full} (_pxt_rowid)")
    if "_pxt_errors" not in have:
        plpy.execute(f"ALTER TABLE {full} ADD COLUMN _pxt_errors jsonb")
    if "_pxt_v" not in have:
        plpy.execute(f"ALTER TABLE {full} ADD COLUMN _pxt_v integer NOT NULL DEFAULT 0")
    plpy.execute(f"CREATE INDEX ON {full} (_pxt_v)")  # revert finds a version's rows by it
    plpy.execute(plpy.prepare("INSERT INTO pxt.tables (relid) VALUES ($1)", ["oid"]), [oid])
    plpy.execute(f"GRANT SELECT ON {full} TO pxt_reader")
    sync(oid)
    catalog.log_create(oid)
    return full


def sync(oid: int) -> None:
    """Bring the catalog in line with the table (new, renamed, dropped columns), regenerate,
    and log a schema version if the columns changed."""
    was = one("SELECT coalesce(current_setting('pxt_v.in_sync', true), '') AS v")["v"]
    plpy.execute("SELECT set_config('pxt_v.in_sync', 'on', true)")  # our DDL must not re-enter
    try:
        _sync(oid)
    finally:
        plpy.execute(plpy.prepare("SELECT set_config('pxt_v.in_sync', $1, true)", ["text"]), [was])


def _sync(oid: int) -> None:
    q_oid = ["oid"]
    gone = plpy.execute(plpy.prepare("""
        DELETE FROM pxt.column_defs d WHERE d.relid = $1 AND NOT EXISTS (
            SELECT 1 FROM pg_attribute a WHERE a.attrelid = $1 AND a.attnum = d.attnum AND NOT a.attisdropped)
        RETURNING expr_view::oid AS v""", q_oid), [oid])
    for g in gone:  # a computed column dropped with plain DDL leaves its expression view
        v = g["v"] and one("SELECT oid::regclass::text AS n FROM pg_class WHERE oid = $1", g["v"], types=["oid"])
        if v:
            plpy.execute(f"DROP VIEW {v['n']}")
    plpy.execute(plpy.prepare("""
        UPDATE pxt.column_defs d SET name = a.attname, col_type = format_type(a.atttypid, a.atttypmod)
        FROM pg_attribute a WHERE d.relid = $1 AND a.attrelid = $1 AND a.attnum = d.attnum AND d.dropped_at IS NULL
          AND (d.name <> a.attname OR d.col_type <> format_type(a.atttypid, a.atttypmod))""", q_oid), [oid])
    plpy.execute(plpy.prepare("""
        INSERT INTO pxt.column_defs (relid, name, attnum, col_type, media_type, position)
        SELECT $1, a.attname, a.attnum, format_type(a.atttypid, a.atttypmod),
               CASE WHEN tn.nspname = 'pxt' AND t.typname IN ('image','video','audio','document') THEN t.typname END,
               0
        FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid JOIN pg_namespace tn ON tn.oid = t.typnamespace
        WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
          AND a.attname NOT LIKE '\\_pxt\\_%'
          AND NOT EXISTS (SELECT 1 FROM pxt.column_defs d WHERE d.relid = $1 AND d.attnum = a.attnum)""", q_oid), [oid])
    history.ensure_history(oid)
    triggers.regenerate(oid)
    _log_schema_change(oid)


def _log_schema_change(oid: int) -> None:
    """Log a schema version if the columns differ from the last logged schema."""
    if one("SELECT current_setting('pxt_v.no_log', true) = 'on' AS x")["x"]:
        return
    last = one("SELECT schema FROM pxt.versions WHERE relid = $1 AND schema IS NOT NULL ORDER BY version DESC LIMIT 1",
               oid, types=["oid"])
    if last is None:  # manage() logs version 0 itself
        return
    before = {c["attnum"]: c for c in json.loads(last["schema"])}
    after = {c["attnum"]: c for c in catalog.schema_snapshot(oid)}
    if before == after:
        return
    added = [a for a in after if a not in before]
    gone = [a for a in before if a not in after]
    renamed = [a for a in after if a in before and after[a]["name"] != before[a]["name"]]
    if len(added) == 1 and not gone and not renamed:
        change = {"op": "add_column", "column": after[added[0]]["name"], "attnum": added[0]}
    elif len(gone) == 1 and not added and not renamed:
        change = {"op": "drop_column", "column": before[gone[0]]["name"], "attnum": gone[0]}
    elif len(renamed) == 1 and not added and not gone:
        a = renamed[0]
        change = {"op": "rename_column", "from": before[a]["name"], "to": after[a]["name"], "attnum": a}
    else:
        change = {"op": "alter_table", "added": [after[a]["name"] for a in added],
                  "dropped": [before[a]["name"] for a in gone], "renamed": [after[a]["name"] for a in renamed]}
    catalog.log_schema_version(oid, change)


def add_computed_column(table: str, name: str, expr: str, on_error: str = "abort", if_exists: str = "error",
                        mode: str = "eager") -> str:
    oid = managed(table)
    full = qualified(oid)
    check_column_name(name)
    if on_error not in ("abort", "ignore"):
        _fail(f"on_error must be 'abort' or 'ignore', not {on_error!r}")
    if mode not in ("eager", "deferred"):
        _fail(f"mode must be 'eager' or 'deferred', not {mode!r}")
    if one("SELECT 1 AS x FROM pg_attribute WHERE attrelid = $1 AND attname = $2 AND NOT attisdropped",
           oid, name, types=["oid", "name"]):
        if if_exists == "ignore":
            return name
        if if_exists != "replace":
            _fail(f"column {name!r} already exists in {full}", hint="if_exists => 'ignore' or 'replace'", sqlstate="42701")
        drop_column(full, name)
    view = exprs.create_view(oid, full, expr)
    info = exprs.analyze(oid, view, expr)
    batched = one("SELECT EXISTS (SELECT 1 FROM pxt.batched_functions WHERE func::oid = ANY($1::oid[])) AS b",
                  info["funcs"], types=["int[]"])["b"]
    plpy.execute(f"ALTER TABLE {full} ADD COLUMN {q(name)} {info['type']}")  # type from format_type: safe
    plpy.execute(plpy.prepare("""
        UPDATE pxt.column_defs SET expr = $3, expr_view = $4::regclass, deps = $5, batched = $6, on_error = $7,
               media_type = $8, deferred = $9, position = (SELECT coalesce(max(position), 0) + 1 FROM pxt.column_defs WHERE relid = $1)
        WHERE relid = $1 AND name = $2 AND dropped_at IS NULL""", ["oid", "name", "text", "text", "name[]", "bool", "text", "text", "bool"]),
        [oid, name, expr, view, info["deps"], batched, on_error, info["media_type"], mode == "deferred"])
    triggers.regenerate(oid)
    return name  # the SQL wrapper backfills (pxt.recompute_columns) unless deferred


def drop_column(table: str, name: str) -> None:
    """Drop a column as a new schema version. The data is kept (the column is renamed
    _pxt_dropped_<attnum>) so time travel and revert still see it; vacuum_history removes
    it for good once no retained version needs it."""
    oid = managed(table)
    full = qualified(oid)
    row = one("SELECT attnum, expr_view::text AS v FROM pxt.column_defs WHERE relid = $1 AND name = $2 "
              "AND dropped_at IS NULL", oid, name, types=["oid", "name"])
    if row is None:
        _fail(f"column {name!r} does not exist in {full}", sqlstate="42703")
    users = [r["name"] for r in plpy.execute(plpy.prepare(
        "SELECT name FROM pxt.column_defs WHERE relid = $1 AND $2 = ANY(deps) AND dropped_at IS NULL "
        "AND name <> $2 ORDER BY position", ["oid", "name"]), [oid, name])]
    if users:
        _fail(f"cannot drop column {name!r} of {full}: computed column(s) {', '.join(users)} depend on it",
                   hint="drop those first")
    if row["v"]:
        plpy.execute(f"DROP VIEW IF EXISTS {row['v']}")
    plpy.execute(plpy.prepare("UPDATE pxt.column_defs SET dropped_at = (SELECT version + 1 FROM pxt.tables "
                              "WHERE relid = $1), expr_view = NULL WHERE relid = $1 AND name = $2 AND dropped_at IS NULL",
                              ["oid", "name"]), [oid, name])
    plpy.execute(f"ALTER TABLE {full} RENAME COLUMN {q(name)} TO {q('_pxt_dropped_' + str(row['attnum']))}")
    sync(oid)  # regenerates the triggers and logs the drop


def undrop_column(oid: int, attnum: int, name: str) -> None:
    """Revert of a drop: the column gets its name (and expression) back."""
    full = qualified(oid)
    plpy.execute(f"ALTER TABLE {full} RENAME COLUMN {q('_pxt_dropped_' + str(int(attnum)))} TO {q(name)}")
    row = one("SELECT expr FROM pxt.column_defs WHERE relid = $1 AND attnum = $2", oid, attnum, types=["oid", "int"])
    view = exprs.create_view(oid, full, row["expr"]) if row and row["expr"] else None
    plpy.execute(plpy.prepare("UPDATE pxt.column_defs SET dropped_at = NULL, name = $3, expr_view = $4::regclass "
                              "WHERE relid = $1 AND attnum = $2", ["oid", "int", "name", "text"]),
                 [oid, attnum, name, view])


def add_column(table: str, name: str, type_spec: str) -> str:
    oid = managed(table)
    plpy.execute(f"ALTER TABLE {qualified(oid)} ADD COLUMN {q(check_column_name(name))} {resolve_type(type_spec)}")
    return name


def rename_column(table: str, old: str, new: str) -> str:
    oid = managed(table)
    if not one("SELECT 1 AS x FROM pxt.column_defs WHERE relid = $1 AND name = $2 AND dropped_at IS NULL",
               oid, old, types=["oid", "name"]):
        _fail(f"column {old!r} does not exist in {qualified(oid)}", sqlstate="42703")
    plpy.execute(f"ALTER TABLE {qualified(oid)} RENAME COLUMN {q(old)} TO {q(check_column_name(new))}")
    return new


def drop_table(table: str, force: bool = False) -> None:
    oid = managed(table)
    full = qualified(oid)
    snaps = [r["s"] for r in plpy.execute(plpy.prepare(
        "SELECT relid::text AS s FROM pxt.tables WHERE kind = 'snapshot' AND base = $1", ["oid"]), [oid])]
    if snaps and not force:
        _fail(f"cannot drop {full}: snapshots {', '.join(snaps)} read it",
                   hint="drop them first, or pxt.drop_table(name, force => true) to drop them too", sqlstate="2BP01")
    for s_ in snaps:
        history.drop_snapshot(s_)
    plpy.execute(f"DROP TABLE {full} CASCADE")  # the event trigger cleans the catalog


def check_recompute(oid: int, cols: list[str]) -> str:
    """Validate a recompute request; returns the qualified table name."""
    full = qualified(oid)
    known = {r["name"] for r in plpy.execute(plpy.prepare(
        "SELECT name FROM pxt.column_defs WHERE relid = $1 AND expr IS NOT NULL AND dropped_at IS NULL",
        ["oid"]), [oid])}
    if not cols:
        _fail("name at least one computed column to recompute")
    for c in cols:
        if c not in known:
            _fail(f"{c!r} is not a computed column of {full}", sqlstate="42809")
    return full


def columns(table: str):
    oid = managed(table)
    rows = plpy.execute(plpy.prepare("""
        SELECT name, col_type, media_type, expr IS NOT NULL AS is_computed, expr, expr_view::text AS v,
               deps, on_error, batched, position
        FROM pxt.column_defs WHERE relid = $1 AND dropped_at IS NULL ORDER BY attnum""", ["oid"]), [oid])
    out = []
    for r in rows:
        info = exprs.analyze(oid, r["v"], r["expr"]) if r["v"] else {"sql": None, "deps": []}
        out.append((r["name"], r["col_type"], r["media_type"], r["is_computed"], r["expr"], info["sql"],
                    info["deps"], r["on_error"] if r["is_computed"] else None, r["batched"]))
    return out


def alter_computed_column(table: str, name: str, expr: str, on_error: str | None, log: bool = True) -> str:
    """Replace a computed column's expression (same name); recomputes only it and its dependents."""
    oid = managed(table)
    row = one("SELECT on_error, expr FROM pxt.column_defs WHERE relid = $1 AND name = $2 AND dropped_at IS NULL AND expr IS NOT NULL",
              oid, name, types=["oid", "name"])
    if row is None:
        _fail(f"{name!r} is not a computed column of {qualified(oid)}", sqlstate="42809")
    on_error = on_error or row["on_error"]
    full = qualified(oid)
    view = exprs.create_view(oid, full, expr)
    info = exprs.analyze(oid, view, expr)
    cur = one("SELECT format_type(atttypid, atttypmod) AS t FROM pg_attribute WHERE attrelid = $1 AND attname = $2",
              oid, name, types=["oid", "name"])["t"]
    if info["type"] != cur:
        plpy.execute(f"DROP VIEW {view}")
        _fail(f"new expression has type {info['type']}, column {name!r} is {cur}",
                   hint="drop and re-add the column to change its type")
    old = one("SELECT expr_view::text AS v FROM pxt.column_defs WHERE relid = $1 AND name = $2 AND dropped_at IS NULL", oid, name,
              types=["oid", "name"])["v"]
    batched = one("SELECT EXISTS (SELECT 1 FROM pxt.batched_functions WHERE func::oid = ANY($1::oid[])) AS b",
                  info["funcs"], types=["int[]"])["b"]
    plpy.execute(plpy.prepare("UPDATE pxt.column_defs SET expr = $3, expr_view = $4::regclass, deps = $5, "
                              "batched = $6, on_error = $7 WHERE relid = $1 AND name = $2 AND dropped_at IS NULL",
                              ["oid", "name", "text", "text", "name[]", "bool", "text"]),
                 [oid, name, expr, view, info["deps"], batched, on_error])
    if old:
        plpy.execute(f"DROP VIEW IF EXISTS {old}")
    triggers.regenerate(oid)
    if log:
        catalog.log_schema_version(oid, {"op": "alter_computed_column", "column": name, "old_expr": row["expr"],
                                            "old_on_error": row["on_error"], "expr": expr})
    return name  # the SQL wrapper recomputes


def errors(table: str):
    oid = managed(table)
    full = qualified(oid)
    return plpy.execute(f"""
        SELECT t._pxt_rowid AS rowid, e.key AS "column", e.value->>'type' AS error_type,
               e.value->>'message' AS message, e.value->>'sqlstate' AS sqlstate
        FROM ONLY {full} t, jsonb_each(t._pxt_errors) e
        WHERE t._pxt_errors IS NOT NULL ORDER BY 1, 2""")


def status(table):
    """Per computed column: pending (NULL, no error), computed, error counts — exact."""
    if table is None:
        oids = [r["relid"] for r in plpy.execute("SELECT relid::oid::int AS relid FROM pxt.tables WHERE kind <> 'snapshot'")]
    else:
        oids = [managed(table)]
    out = []
    for oid in oids:
        full = qualified(oid)
        cols = [r["name"] for r in plpy.execute(plpy.prepare(
            "SELECT name FROM pxt.column_defs WHERE relid = $1 AND expr IS NOT NULL AND dropped_at IS NULL "
            "ORDER BY position", ["oid"]), [oid])]
        if not cols:
            continue
        aggs = ", ".join(
            f"count(*) FILTER (WHERE {q(c)} IS NULL AND NOT coalesce(_pxt_errors ? {plpy.quote_literal(c)}, false)), "
            f"count({q(c)}), count(*) FILTER (WHERE _pxt_errors ? {plpy.quote_literal(c)})" for c in cols)
        row = plpy.execute(f"SELECT ARRAY[{aggs}]::bigint[] AS a FROM ONLY {full}")[0]["a"]
        mode = {r["name"]: r["deferred"] for r in plpy.execute(plpy.prepare(
            "SELECT name, deferred FROM pxt.column_defs WHERE relid = $1", ["oid"]), [oid])}
        for i, c in enumerate(cols):
            out.append((full, c, "deferred" if mode[c] else "eager", row[3 * i], row[3 * i + 1], row[3 * i + 2]))
    return out
