"""Revert: undo exactly the latest version of a table, data or schema.

It finds the rows a version inserted among the highest rowids (the primary key; the version
log says how many) and those it changed by the history's ``_pxt_v_to`` index, so its cost is
what that version changed, not the table size. Undoing a schema change replays DDL (``ddl.tables``), so this module sits
above the DDL layer while recording versions (``history``) sits below it.
"""
import json

import plpy

from ..core.errors import fail as _fail
from ..catalog import display_name
from ..core.spi import one
from ..ddl import tables, triggers
from ..sqlgen import versioning as gen
from ..sqlgen.compose import Composable
from .history import history_of, live_columns, relation_of, version_query


def _execute(stmt: Composable):
    return plpy.execute(stmt.as_string())


def _pinning_snapshots(oid: int, v: int) -> list[dict]:
    return list(plpy.execute(plpy.prepare(
        "SELECT relid::oid::int AS oid, relid::text AS s, vkey, version, pins FROM pxt.tables "
        "WHERE kind = 'snapshot' AND base = $1 AND pins >= $2 ORDER BY pins DESC", ["oid", "int"]), [oid, v]))


def revert(oid: int, if_pinned: str = "materialize") -> int:
    """Undo the latest version; returns the version the table is now at.

    A snapshot showing the version being undone keeps showing it: with ``if_pinned =>
    'materialize'`` (the default) it first takes over the rows that version changed (see
    ``_keep_snapshot``); ``'error'`` refuses instead, as Pixeltable does."""
    if if_pinned not in ("materialize", "error"):
        _fail(f"if_pinned must be 'materialize' or 'error', not {if_pinned!r}")
    table = display_name(oid)
    v = one("SELECT version FROM pxt.tables WHERE relid = $1 FOR UPDATE", oid, types=["oid"])["version"]
    if v == 0:
        _fail(f"cannot revert {table}: it is at version 0, there is nothing to undo", sqlstate="55000")
    snaps = _pinning_snapshots(oid, v)
    if snaps and if_pinned == "error":
        _fail(f"cannot revert {table} past version {v}: snapshot {snaps[0]['s']} pins version {snaps[0]['pins']}",
              hint="drop the snapshot first (pxt.drop_snapshot), or revert with if_pinned => 'materialize'", sqlstate="55000")
    entry = one("SELECT change_type, schema_change, inserts FROM pxt.versions WHERE relid = $1 AND version = $2",
                oid, v, types=["oid", "int"])
    if entry is None:
        _fail(f"cannot revert {table}: version {v} is not in the version log")
    if entry["change_type"] == "data":
        _revert_views(oid, v, table, if_pinned)
    inserted = _inserted(oid, v, entry["inserts"]) if entry["change_type"] == "data" else None
    for snap in snaps:
        _keep_snapshot(snap, oid, v, entry["change_type"] == "data", inserted)
    plpy.execute("SELECT set_config('pixelgres.replaying', 'on', true)")
    try:
        if entry["change_type"] == "data":
            _revert_data(oid, v, inserted)
        else:
            _revert_schema(oid, v, json.loads(entry["schema_change"]))
    finally:
        plpy.execute("SELECT set_config('pixelgres.replaying', 'off', true)")
    plpy.execute(plpy.prepare("DELETE FROM pxt.versions WHERE relid = $1 AND version = $2", ["oid", "int"]), [oid, v])
    plpy.execute(plpy.prepare("UPDATE pxt.tables SET version = $2 - 1 WHERE relid = $1", ["oid", "int"]), [oid, v])
    return v - 1



def _inserted(oid: int, v: int, k: int | None):
    """SQL of the rowids of the ``k`` rows (the version log's count) version ``v`` inserted:
    among the highest rowids when all ``k`` are there, else by a scan; None when it inserted none."""
    if not k:
        return None
    table = relation_of(oid)
    ranged = gen.inserted_rows(table, v, k)
    if _execute(gen.count_rows(ranged))[0]["n"] == k:
        return ranged
    return gen.inserted_rows(table, v)  # rowids given by hand, or a count that includes aborted rows


def _keep_snapshot(snap: dict, oid: int, v: int, data_version: bool, inserted) -> None:
    """Let a snapshot that reads version ``v`` of its base survive the revert of ``v``.

    A snapshot is a view over the base's live rows and history "as of" the version it pins.
    Its overlay table ``pxt_internal."snap_<vkey>"`` holds the rows (``_pxt_present``) and
    absences (tombstones) where the snapshot differs from the pinned version. Undoing a data
    version only moves the rows that version changed into the overlay, as they are in the
    snapshot, and pins ``v - 1`` (same schema): the cost stays what the version changed. Undoing
    a schema version copies the whole snapshot into the overlay, which then pins nothing."""
    view, ov = relation_of(snap["oid"]), gen.overlay_table(snap["vkey"])
    table, h = relation_of(oid), history_of(oid)
    cols = [gen.Column.of(c) for c in plpy.execute(plpy.prepare(
        "SELECT attname AS name, format_type(atttypid, atttypmod) AS type FROM pg_attribute "
        "WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped AND attname <> '_pxt_rowid' ORDER BY attnum",
        ["oid"]), [snap["oid"]])]
    if not one("SELECT to_regclass($1) IS NOT NULL AS e", ov.as_string())["e"]:
        # the snapshot's owner owns its rows (and drops them with it); replacing the view below
        # needs that ownership anyway
        owner = one("SELECT pg_get_userbyid(relowner)::text AS o FROM pg_class WHERE oid = $1",
                    snap["oid"], types=["oid"])["o"]
        for stmt in gen.create_overlay(ov, cols, snap["s"], owner):
            _execute(stmt)
    if data_version:
        ids = [r["id"] for r in _execute(gen.overlay_missing_ids(table, h, ov, int(v), inserted))]
        plpy.execute(plpy.prepare(gen.overlay_take_rows(ov, view, cols).as_string(), ["bigint[]"]), [ids])
        pins = v - 1
        pinned = version_query(oid, pins)
    else:
        _execute(gen.overlay_take_all(ov, view, cols))
        pins, pinned = None, None
    _execute(gen.snapshot_over_overlay(view, ov, cols, pinned))
    plpy.execute(plpy.prepare("UPDATE pxt.tables SET pins = $2 WHERE relid = $1", ["oid", "int"]), [snap["oid"], pins])


def _revert_views(oid: int, v: int, table: str, if_pinned: str) -> None:
    """Revert, in each iterator view over this table, the versions this version's statement wrote."""
    for view in plpy.execute(plpy.prepare(
            "SELECT relid::oid::int AS oid, relid::text AS name FROM pxt.tables WHERE kind = 'view' AND base = $1",
            ["oid"]), [oid]):
        later = one("SELECT min(version) AS v FROM pxt.versions WHERE relid = $1 AND caused_by = $2",
                    view["oid"], v, types=["oid", "int"])["v"]
        if later is None:
            continue
        other = one("SELECT count(*) AS n FROM pxt.versions WHERE relid = $1 AND version > $2 "
                    "AND caused_by IS DISTINCT FROM $3", view["oid"], later, v, types=["oid", "int", "int"])["n"]
        if other:
            _fail(f"cannot revert {table}: view {view['name']} has changes made after version {v}",
                       hint=f"revert {view['name']} past them first")
        while one("SELECT caused_by FROM pxt.versions WHERE relid = $1 ORDER BY version DESC LIMIT 1",
                  view["oid"], types=["oid"])["caused_by"] == v:
            revert(view["oid"], if_pinned)


def _revert_data(oid: int, v: int, inserted) -> None:
    cols = [gen.Column.of(a) for a in live_columns(oid)]
    for stmt in gen.revert_data(relation_of(oid), history_of(oid), cols, int(v), inserted):
        _execute(stmt)


def _revert_schema(oid: int, v: int, change: dict) -> None:
    table = display_name(oid)
    op = change.get("op")
    plpy.execute("SELECT set_config('pxt_v.no_log', 'on', true)")
    try:
        if op == "create":
            _fail(f"cannot revert the creation of {table}; drop it with pxt.drop_table")
        elif op == "add_column":
            row = one("SELECT name, expr_view::oid AS vo FROM pxt.column_defs WHERE relid = $1 AND attnum = $2",
                      oid, change["attnum"], types=["oid", "int"])
            if row:
                view = None
                if row["vo"] and one("SELECT 1 AS x FROM pg_class WHERE oid = $1", row["vo"], types=["oid"]):
                    view = relation_of(row["vo"])
                for stmt in gen.revert_add_column(relation_of(oid), history_of(oid), row["name"],
                                                  int(change["attnum"]), view):
                    _execute(stmt)
        elif op == "drop_column":
            tables.undrop_column(oid, change["attnum"], change["column"])
        elif op == "rename_column":
            phys = one("SELECT attname FROM pg_attribute WHERE attrelid = $1 AND attnum = $2",
                       oid, change["attnum"], types=["oid", "int"])["attname"]
            _execute(gen.rename_column(relation_of(oid), phys, change["from"]))
        elif op == "alter_computed_column":
            tables.alter_computed_column(table, change["column"], change["old_expr"], change["old_on_error"],
                                         log=False)
            plpy.execute("SELECT set_config('pixelgres.replaying', 'off', true)")
            plpy.execute(plpy.prepare("SELECT pxt.recompute_columns($1, ARRAY[$2], false)", ["text", "text"]),
                         [table, change["column"]])
            plpy.execute("SELECT set_config('pixelgres.replaying', 'on', true)")
        elif op == "add_embedding_index":
            plpy.execute(plpy.prepare("SELECT pxt.drop_embedding_index($1, $2)", ["text", "text"]),
                         [table, change["index"]])
        else:
            _fail(f"cannot revert version {v} of {table}: unknown schema change {op!r}")
        tables.sync(oid)
        triggers.regenerate(oid)
    finally:
        plpy.execute("SELECT set_config('pxt_v.no_log', 'off', true)")
