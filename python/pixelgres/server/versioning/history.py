"""Versions of managed tables: history table, version log, revert, snapshots, time travel.

* The live table stays a plain table; each row carries ``_pxt_v``, the version that inserted
  it (an UPDATE leaves it alone, so updates stay HOT and need no row trigger). Its past row
  versions live in ``pxt_internal."hist_<oid>"``: the row's ``_pxt_v``, ``_pxt_v_to`` (the
  version that replaced or deleted it) and one column ``c<attnum>`` per column the table ever
  had (so renames and drops never rewrite history). A row version became live at the
  ``_pxt_v_to`` of the row's previous history entry, or at ``_pxt_v`` if it has none.
* Every data-changing statement is one version: a BEFORE STATEMENT trigger allocates it
  (``UPDATE pxt.tables SET version = version + 1``: its row lock serialises writers of the
  same table until commit, which keeps the history linear; readers never wait), the row
  trigger stamps ``_pxt_v``, and AFTER STATEMENT triggers copy the old rows of updates and
  deletes from the transition tables into the history table, set-based, and log the counts.
* Every schema change is one version, logged with the column list after it. Dropped
  columns are kept (renamed ``_pxt_dropped_<attnum>``) so time travel and revert see them.
* Revert undoes exactly the latest version using the ``_pxt_v`` and ``_pxt_v_to`` indexes:
  its cost is what that version changed, not the table size.
"""
import json

import plpy

from ..catalog import current_version, display_name, ensure_schema, vkey
from ..core.errors import fail as _fail
from ..core.spi import one, parse_table_name
from ..sqlgen import versioning as gen
from ..sqlgen.compose import Composable, Identifier, clip

SYSTEM = ("_pxt_rowid", "_pxt_v")


def _execute(stmt: Composable):
    return plpy.execute(stmt.as_string())


def relation_of(oid: int) -> Identifier:
    """A relation's schema-qualified name, for generated SQL (``qualified`` is for messages)."""
    r = one("SELECT n.nspname AS s, c.relname AS r FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.oid = $1", oid, types=["oid"])
    return Identifier(r["s"], r["r"])


def history_of(oid: int) -> Identifier:
    """The history table holding a managed table's past row versions."""
    return gen.history_table(vkey(oid))


def live_columns(oid: int) -> list[dict]:
    """All live attributes of the table except rowid/version: attnum, name, type."""
    return list(plpy.execute(plpy.prepare("""
        SELECT attnum, attname AS name, format_type(atttypid, atttypmod) AS type
        FROM pg_attribute WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped
          AND attname NOT IN ('_pxt_rowid', '_pxt_v') ORDER BY attnum""", ["oid"]), [oid]))


def _columns(rows) -> list[gen.Column]:
    return [gen.Column.of(r) for r in rows]


def ensure_history(oid: int) -> None:
    """Create the history table, and give it a column for every attribute of the table."""
    h = history_of(oid)
    if not one("SELECT to_regclass($1) IS NOT NULL AS e", h.as_string())["e"]:
        for stmt in gen.create_history_table(h):
            _execute(stmt)
    have = {r["attname"] for r in plpy.execute(plpy.prepare(
        "SELECT attname FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped",
        ["text"]), [h.as_string()])}
    for stmt in gen.add_history_columns(h, _columns(live_columns(oid)), have):
        _execute(stmt)



# --- triggers (generated per table; called by triggers.regenerate) ---------------------------
def trigger_sql(oid: int, late_errors: bool, records_errors: bool = True) -> list[str]:
    """Statements (re)creating the version triggers of a table. ``late_errors``: batched
    columns record errors after the rows were captured, so count them in the table;
    ``records_errors``: some column may record errors at all."""
    view = one("SELECT kind = 'view' AS v FROM pxt.tables WHERE relid = $1", oid, types=["oid"])["v"]
    stmts = gen.trigger_statements(relation_of(oid), vkey(oid), _columns(live_columns(oid)), bool(late_errors),
                                   bool(records_errors), bool(view))
    return [s.as_string() for s in stmts]



# --- time travel and snapshots ---------------------------------------------------------------------
def version_query(oid: int, n: int) -> Composable:
    """SELECT returning exactly the rows and columns (as named then) live at version n."""
    t = one("SELECT version, retained_from FROM pxt.tables WHERE relid = $1", oid, types=["oid"])
    if n < 0 or n > t["version"]:
        _fail(f"{display_name(oid)} has no version {n} (versions 0..{t['version']})")
    if n < t["retained_from"]:
        _fail(f"version {n} of {display_name(oid)} was vacuumed (oldest kept: {t['retained_from']})")
    schema = json.loads(one("SELECT schema FROM pxt.versions WHERE relid = $1 AND version <= $2 AND schema IS NOT NULL "
                            "ORDER BY version DESC LIMIT 1", oid, n, types=["oid", "int"])["schema"])
    phys = {r["attnum"]: r["attname"] for r in plpy.execute(plpy.prepare(
        "SELECT attnum, attname FROM pg_attribute WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped",
        ["oid"]), [oid])}
    return gen.version_select(relation_of(oid), history_of(oid), _columns(schema), phys, int(n))


def version_sql(oid: int, n: int) -> str:
    """SELECT returning exactly the rows and columns (as named then) live at version n."""
    return version_query(oid, n).as_string()


def _user_relation(name: str) -> tuple[str, Identifier]:
    """A user's relation name: its schema and its Identifier (over-long names truncated as
    PostgreSQL truncates them)."""
    schema, rel = parse_table_name(name)
    return schema, Identifier(clip(schema), clip(rel))


def create_snapshot(name: str, oid: int, n) -> str:
    schema, view = _user_relation(name)
    n = current_version(oid) if n is None else int(n)
    select = version_query(oid, n)
    ensure_schema(schema)
    for stmt in gen.create_snapshot(view, select, gen.snapshot_comment(display_name(oid), n)):
        _execute(stmt)
    full = view.as_string()
    plpy.execute(plpy.prepare("INSERT INTO pxt.tables (relid, kind, base, version, pins) "
                              "VALUES ($1::regclass, 'snapshot', $2, $3, $3)", ["text", "oid", "int"]), [full, oid, n])
    return full


def drop_snapshot(name: str) -> None:
    _, view = _user_relation(name)
    r = one("SELECT vkey FROM pxt.tables WHERE kind = 'snapshot' AND relid = to_regclass($1)", view.as_string())
    if r is None:
        _fail(f"{name!r} is not a snapshot", sqlstate="42809")
    _execute(gen.drop_snapshot(view))
    overlay = gen.overlay_table(r["vkey"])  # usually gone with the view (the sql_drop event trigger)
    if one("SELECT to_regclass($1) IS NOT NULL AS e", overlay.as_string())["e"]:
        _execute(gen.drop_overlay(overlay))


def at_version(oid: int, n: int) -> str:
    relname = one("SELECT c.relname FROM pxt.tables t JOIN pg_class c ON c.oid = coalesce(t.face, t.relid) "
                  "WHERE t.relid = $1", oid, types=["oid"])["relname"]  # a table's by its face's name
    name = clip(relname + "@" + str(int(n)))
    _execute(gen.create_temp_view(name, version_query(oid, n)))
    return Identifier("pg_temp", name).as_string()
