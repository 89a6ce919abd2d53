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

from .errors import fail as _fail

from .sqlutil import ensure_schema, lit, one, q, qualified, vkey

SYSTEM = ("_pxt_rowid", "_pxt_v")


def hist_name(oid: int) -> str:
    return f'pxt_internal."hist_{vkey(oid)}"'


def _attrs(oid: int) -> list[dict]:
    """All live attributes of the table except rowid/version: attnum, name, type."""
    return list(plpy.execute(plpy.prepare("""
        SELECT attnum, attname AS name, format_type(atttypid, atttypmod) AS type
        FROM pg_attribute WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped
          AND attname NOT IN ('_pxt_rowid', '_pxt_v') ORDER BY attnum""", ["oid"]), [oid]))


def ensure_history(oid: int) -> None:
    """Create the history table, and give it a column for every attribute of the table."""
    h = hist_name(oid)
    if not one(f"SELECT to_regclass({lit(h)}) IS NOT NULL AS e")["e"]:
        plpy.execute(f"CREATE TABLE {h} (_pxt_rowid bigint NOT NULL, _pxt_v integer NOT NULL, "
                     f"_pxt_v_to integer NOT NULL)")
        plpy.execute(f'CREATE INDEX ON {h} (_pxt_v_to)')  # revert; time travel scans
        plpy.execute(f"GRANT SELECT ON {h} TO pxt_reader")
    have = {r["attname"] for r in plpy.execute(plpy.prepare(
        "SELECT attname FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped",
        ["text"]), [h])}
    for a in _attrs(oid):
        if f"c{a['attnum']}" not in have:
            plpy.execute(f"ALTER TABLE {h} ADD COLUMN c{a['attnum']} {a['type']}")


def schema_snapshot(oid: int) -> list[dict]:
    return [{"attnum": r["attnum"], "name": r["name"], "type": r["col_type"]} for r in plpy.execute(plpy.prepare(
        "SELECT attnum, name, col_type FROM pxt.column_defs WHERE relid = $1 AND dropped_at IS NULL ORDER BY attnum",
        ["oid"]), [oid])]


def log_schema_version(oid: int, change: dict) -> int:
    v = one("UPDATE pxt.tables SET version = version + 1 WHERE relid = $1 RETURNING version",
            oid, types=["oid"])["version"]
    plpy.execute(plpy.prepare(
        "INSERT INTO pxt.versions (relid, version, change_type, schema_change, schema) VALUES ($1, $2, 'schema', $3, $4)",
        ["oid", "int", "jsonb", "jsonb"]), [oid, v, json.dumps(change), json.dumps(schema_snapshot(oid))])
    return v


def log_create(oid: int) -> None:
    plpy.execute(plpy.prepare(
        "INSERT INTO pxt.versions (relid, version, change_type, schema_change, schema) VALUES ($1, 0, 'schema', $2, $3)",
        ["oid", "jsonb", "jsonb"]), [oid, json.dumps({"op": "create"}), json.dumps(schema_snapshot(oid))])


def current_version(oid: int) -> int:
    return one("SELECT version FROM pxt.tables WHERE relid = $1", oid, types=["oid"])["version"]


# --- triggers (generated per table; called by triggers.regenerate) ---------------------------
def trigger_sql(oid: int, late_errors: bool) -> list[str]:
    """Statements (re)creating the version triggers of a table. ``late_errors``: batched
    columns record errors after the rows were captured, so count them in the table."""
    table = qualified(oid)
    h = hist_name(oid)
    attrs = _attrs(oid)
    hcols = ", ".join(f"c{a['attnum']}" for a in attrs)
    ocols = ", ".join(f"o.{q(a['name'])}" for a in attrs)
    k = vkey(oid)
    fn = f'pxt_internal."ver_{k}"'
    skip = ("current_setting('pixelgres.replaying', true) = 'on' OR "
            "coalesce(current_setting('pixelgres.recompute', true), '') <> '' OR "
            "current_setting('pxt_v.internal', true) = 'on'")
    body = f"""
DECLARE
  v integer := nullif(current_setting('pxt_v.{k}', true), '')::integer;
  n bigint;
  e bigint := 0;
  caused integer;
BEGIN
  IF {skip} THEN RETURN NULL; END IF;
  IF TG_WHEN = 'BEFORE' THEN
    UPDATE pxt.tables SET version = version + 1 WHERE relid = TG_RELID RETURNING version INTO v;
    PERFORM set_config('pxt_v.{k}', v::text, true);
    RETURN NULL;
  END IF;
  IF TG_OP = 'INSERT' THEN
    SELECT count(*), count(*) FILTER (WHERE {"(SELECT t._pxt_errors IS NOT NULL FROM " + table + " t WHERE t._pxt_rowid = n._pxt_rowid)" if late_errors else "n._pxt_errors IS NOT NULL"})
      INTO n, e FROM pxt_new n;
  ELSIF TG_OP = 'UPDATE' THEN
    INSERT INTO {h} (_pxt_rowid, _pxt_v, _pxt_v_to{', ' + hcols if hcols else ''})
      SELECT o._pxt_rowid, o._pxt_v, v{', ' + ocols if ocols else ''} FROM pxt_old o WHERE o._pxt_v < v;
    GET DIAGNOSTICS n = ROW_COUNT;
    SELECT count(*) INTO e FROM pxt_new t WHERE t._pxt_errors IS NOT NULL;
  ELSE
    INSERT INTO {h} (_pxt_rowid, _pxt_v, _pxt_v_to{', ' + hcols if hcols else ''})
      SELECT o._pxt_rowid, o._pxt_v, v{', ' + ocols if ocols else ''} FROM pxt_old o WHERE o._pxt_v < v;
    GET DIAGNOSTICS n = ROW_COUNT;
  END IF;
  IF n = 0 THEN  -- nothing changed: give the version number back (we hold the row lock)
    UPDATE pxt.tables SET version = version - 1 WHERE relid = TG_RELID AND version = v;
  ELSE
    -- an iterator view's rows are written by its base's statement: remember which version
    SELECT nullif(current_setting('pxt_v.' || b.vkey, true), '')::integer INTO caused
      FROM pxt.tables s JOIN pxt.tables b ON b.relid = s.base WHERE s.relid = TG_RELID AND s.kind = 'view';
    INSERT INTO pxt.versions (relid, version, change_type, inserts, updates, deletes, errors, caused_by)
    VALUES (TG_RELID, v, 'data', CASE WHEN TG_OP = 'INSERT' THEN n ELSE 0 END,
            CASE WHEN TG_OP = 'UPDATE' THEN n ELSE 0 END, CASE WHEN TG_OP = 'DELETE' THEN n ELSE 0 END, e, caused);
  END IF;
  RETURN NULL;
END"""
    # SECURITY DEFINER: anyone allowed to write the table gets its versions recorded (history
    # table, version log) as the table's owner; the body is fixed, schema-qualified SQL.
    out = [f"CREATE OR REPLACE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER "
           f"SET search_path = pg_catalog, pg_temp AS {lit(body)}",
           # inserted rows take the statement's version from a default: no row trigger needed
           f"ALTER TABLE {table} ALTER COLUMN _pxt_v SET DEFAULT "
           f"coalesce(nullif(current_setting('pxt_v.{k}', true), '')::integer, 0)"]
    for ev in ("INSERT", "UPDATE", "DELETE"):
        out.append(f"CREATE OR REPLACE TRIGGER pxt_version_begin_{ev.lower()} BEFORE {ev} ON {table} "
                   f"FOR EACH STATEMENT EXECUTE FUNCTION {fn}()")
        ref = {"INSERT": "NEW TABLE AS pxt_new", "UPDATE": "OLD TABLE AS pxt_old NEW TABLE AS pxt_new",
               "DELETE": "OLD TABLE AS pxt_old"}[ev]
        out.append(f"CREATE OR REPLACE TRIGGER pxt_version_end_{ev.lower()} AFTER {ev} ON {table} "
                   f"REFERENCING {ref} FOR EACH STATEMENT EXECUTE FUNCTION {fn}()")
    out.append(f"CREATE OR REPLACE TRIGGER pxt_guard_version BEFORE UPDATE OF _pxt_v ON {table} "
               f"FOR EACH ROW EXECUTE FUNCTION pxt._guard_version()")
    return out


# --- revert -------------------------------------------------------------------------------------
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
    table = qualified(oid)
    v = one("SELECT version FROM pxt.tables WHERE relid = $1 FOR UPDATE", oid, types=["oid"])["version"]
    if v == 0:
        _fail(f"cannot revert {table}: it is at version 0, there is nothing to undo", sqlstate="55000")
    snaps = _pinning_snapshots(oid, v)
    if snaps and if_pinned == "error":
        _fail(f"cannot revert {table} past version {v}: snapshot {snaps[0]['s']} pins version {snaps[0]['pins']}",
              hint="drop the snapshot first (pxt.drop_snapshot), or revert with if_pinned => 'materialize'", sqlstate="55000")
    entry = one("SELECT change_type, schema_change FROM pxt.versions WHERE relid = $1 AND version = $2",
                oid, v, types=["oid", "int"])
    if entry is None:
        _fail(f"cannot revert {table}: version {v} is not in the version log")
    if entry["change_type"] == "data":
        _revert_views(oid, v, table, if_pinned)
    for snap in snaps:
        _keep_snapshot(snap, oid, v, entry["change_type"] == "data")
    plpy.execute("SELECT set_config('pixelgres.replaying', 'on', true)")
    try:
        if entry["change_type"] == "data":
            _revert_data(oid, v)
        else:
            _revert_schema(oid, v, json.loads(entry["schema_change"]))
    finally:
        plpy.execute("SELECT set_config('pixelgres.replaying', 'off', true)")
    plpy.execute(plpy.prepare("DELETE FROM pxt.versions WHERE relid = $1 AND version = $2", ["oid", "int"]), [oid, v])
    plpy.execute(plpy.prepare("UPDATE pxt.tables SET version = $2 - 1 WHERE relid = $1", ["oid", "int"]), [oid, v])
    return v - 1


def overlay_name(snapshot_vkey: str) -> str:
    return f'pxt_internal.{q("snap_" + snapshot_vkey)}'


def _keep_snapshot(snap: dict, oid: int, v: int, data_version: bool) -> None:
    """Let a snapshot that reads version ``v`` of its base survive the revert of ``v``.

    A snapshot is a view over the base's live rows and history "as of" the version it pins.
    Its overlay table ``pxt_internal."snap_<vkey>"`` holds the rows (``_pxt_present``) and
    absences (tombstones) where the snapshot differs from the pinned version. Undoing a data
    version only moves the rows that version changed into the overlay, as they are in the
    snapshot, and pins ``v - 1`` (same schema): the cost stays what the version changed. Undoing
    a schema version copies the whole snapshot into the overlay, which then pins nothing."""
    view, ov, table, h = snap["s"], overlay_name(snap["vkey"]), qualified(oid), hist_name(oid)
    cols = list(plpy.execute(plpy.prepare(
        "SELECT attname AS name, format_type(atttypid, atttypmod) AS type FROM pg_attribute "
        "WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped AND attname <> '_pxt_rowid' ORDER BY attnum",
        ["oid"]), [snap["oid"]]))
    names = ", ".join(q(c["name"]) for c in cols)
    if not one(f"SELECT to_regclass({lit(ov)}) IS NOT NULL AS e")["e"]:
        defs = "".join(f", {q(c['name'])} {c['type']}" for c in cols)
        plpy.execute(f"CREATE TABLE {ov} (_pxt_rowid bigint PRIMARY KEY, _pxt_present boolean NOT NULL{defs})")
        plpy.execute(f"COMMENT ON TABLE {ov} IS {lit(f'pixelgres: rows of snapshot {view} no longer in its base history')}")
        # the snapshot's owner owns its rows (and drops them with it); replacing the view below
        # needs that ownership anyway
        owner = one("SELECT relowner::regrole::text AS o FROM pg_class WHERE oid = $1", snap["oid"], types=["oid"])["o"]
        plpy.execute(f"ALTER TABLE {ov} OWNER TO {owner}")
    vs = str(int(v))
    if data_version:
        ids = [r["id"] for r in plpy.execute(
            f"SELECT id FROM (SELECT _pxt_rowid AS id FROM ONLY {table} WHERE _pxt_v = {vs} UNION "
            f"SELECT _pxt_rowid FROM {h} WHERE _pxt_v_to = {vs}) d "
            f"WHERE NOT EXISTS (SELECT 1 FROM {ov} o WHERE o._pxt_rowid = d.id)")]
        plpy.execute(plpy.prepare(
            f"INSERT INTO {ov} (_pxt_rowid, _pxt_present{', ' + names if names else ''}) "
            f"SELECT d.id, s._pxt_rowid IS NOT NULL{''.join(', s.' + q(c['name']) for c in cols)} "
            f"FROM unnest($1::bigint[]) d(id) LEFT JOIN (SELECT * FROM {view} WHERE _pxt_rowid = ANY($1)) s "
            f"ON s._pxt_rowid = d.id", ["bigint[]"]), [ids])
        pins = v - 1
        body = (f"SELECT b.* FROM ({version_sql(oid, pins)}) b WHERE NOT EXISTS "
                f"(SELECT 1 FROM {ov} o WHERE o._pxt_rowid = b._pxt_rowid) UNION ALL ")
    else:
        plpy.execute(f"INSERT INTO {ov} (_pxt_rowid, _pxt_present{', ' + names if names else ''}) "
                     f"SELECT s._pxt_rowid, true{''.join(', s.' + q(c['name']) for c in cols)} FROM {view} s "
                     f"WHERE NOT EXISTS (SELECT 1 FROM {ov} o WHERE o._pxt_rowid = s._pxt_rowid)")
        pins, body = None, ""
    body += f"SELECT _pxt_rowid{', ' + names if names else ''} FROM {ov} WHERE _pxt_present"
    plpy.execute(f"CREATE OR REPLACE VIEW {view} AS {body}")
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


def _revert_data(oid: int, v: int) -> None:
    table, h = qualified(oid), hist_name(oid)
    attrs = _attrs(oid)
    vs = str(int(v))
    plpy.execute(f"DELETE FROM ONLY {table} t WHERE t._pxt_v = {vs} AND NOT EXISTS "
                 f"(SELECT 1 FROM {h} h WHERE h._pxt_rowid = t._pxt_rowid AND h._pxt_v_to = {vs})")
    sets = ", ".join(f"{q(a['name'])} = h.c{a['attnum']}" for a in attrs)
    plpy.execute(f"UPDATE ONLY {table} t SET {sets} FROM {h} h "
                 f"WHERE h._pxt_rowid = t._pxt_rowid AND h._pxt_v_to = {vs}")
    names = ", ".join([q(a["name"]) for a in attrs] + ["_pxt_rowid", "_pxt_v"])
    vals = ", ".join([f"h.c{a['attnum']}" for a in attrs] + ["h._pxt_rowid", "h._pxt_v"])
    plpy.execute(f"INSERT INTO {table} ({names}) OVERRIDING SYSTEM VALUE SELECT {vals} FROM {h} h "
                 f"WHERE h._pxt_v_to = {vs} AND NOT EXISTS (SELECT 1 FROM ONLY {table} t WHERE t._pxt_rowid = h._pxt_rowid)")
    plpy.execute(f"DELETE FROM {h} WHERE _pxt_v_to = {vs}")


def _revert_schema(oid: int, v: int, change: dict) -> None:
    from . import tables, triggers

    table = qualified(oid)
    op = change.get("op")
    plpy.execute("SELECT set_config('pxt_v.no_log', 'on', true)")
    try:
        if op == "create":
            _fail(f"cannot revert the creation of {table}; drop it with pxt.drop_table")
        elif op == "add_column":
            row = one("SELECT name, expr_view::oid AS vo FROM pxt.column_defs WHERE relid = $1 AND attnum = $2",
                      oid, change["attnum"], types=["oid", "int"])
            if row:
                if row["vo"] and one("SELECT 1 AS x FROM pg_class WHERE oid = $1", row["vo"], types=["oid"]):
                    plpy.execute(f"DROP VIEW {one('SELECT $1::regclass::text AS n', row['vo'], types=['oid'])['n']}")
                plpy.execute(f"ALTER TABLE {table} DROP COLUMN {q(row['name'])} CASCADE")
                h = hist_name(oid)
                plpy.execute(f"ALTER TABLE {h} DROP COLUMN IF EXISTS c{int(change['attnum'])}")
        elif op == "drop_column":
            tables.undrop_column(oid, change["attnum"], change["column"])
        elif op == "rename_column":
            phys = one("SELECT attname FROM pg_attribute WHERE attrelid = $1 AND attnum = $2",
                       oid, change["attnum"], types=["oid", "int"])["attname"]
            plpy.execute(f"ALTER TABLE {table} RENAME COLUMN {q(phys)} TO {q(change['from'])}")
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


# --- time travel and snapshots ---------------------------------------------------------------------
def version_sql(oid: int, n: int) -> str:
    """SELECT returning exactly the rows and columns (as named then) live at version n."""
    table = qualified(oid)
    t = one("SELECT version, retained_from FROM pxt.tables WHERE relid = $1", oid, types=["oid"])
    if n < 0 or n > t["version"]:
        _fail(f"{table} has no version {n} (versions 0..{t['version']})")
    if n < t["retained_from"]:
        _fail(f"version {n} of {table} was vacuumed (oldest kept: {t['retained_from']})")
    schema = json.loads(one("SELECT schema FROM pxt.versions WHERE relid = $1 AND version <= $2 AND schema IS NOT NULL "
                            "ORDER BY version DESC LIMIT 1", oid, n, types=["oid", "int"])["schema"])
    phys = {r["attnum"]: r["attname"] for r in plpy.execute(plpy.prepare(
        "SELECT attnum, attname FROM pg_attribute WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped",
        ["oid"]), [oid])}
    live_cols, hist_cols = ["_pxt_rowid"], ["_pxt_rowid"]
    for c in schema:
        if c["attnum"] in phys:
            live_cols.append(f"{q(phys[c['attnum']])} AS {q(c['name'])}")
            hist_cols.append(f"c{c['attnum']} AS {q(c['name'])}")
        else:  # physically gone (vacuumed): keep the column, without values
            live_cols.append(f"NULL::{c['type']} AS {q(c['name'])}")
            hist_cols.append(f"NULL::{c['type']} AS {q(c['name'])}")
    ns = str(int(n))
    h = hist_name(oid)
    # live rows inserted by n and not replaced since; history entries live at n (a row version
    # starts where the row's previous entry ended, or at its insert)
    return (f"SELECT {', '.join(live_cols)} FROM ONLY {table} t WHERE t._pxt_v <= {ns} AND NOT EXISTS "
            f"(SELECT 1 FROM {h} x WHERE x._pxt_rowid = t._pxt_rowid AND x._pxt_v_to > {ns}) UNION ALL "
            f"SELECT {', '.join(hist_cols)} FROM (SELECT *, coalesce(lag(_pxt_v_to) OVER (PARTITION BY _pxt_rowid "
            f"ORDER BY _pxt_v_to), _pxt_v) AS pxt_start FROM {h} WHERE _pxt_v <= {ns}) s "
            f"WHERE s.pxt_start <= {ns} AND s._pxt_v_to > {ns}")


def create_snapshot(name: str, oid: int, n) -> str:
    from .sqlutil import parse_table_name

    schema, rel = parse_table_name(name)
    full = f"{q(schema)}.{q(rel)}"
    n = current_version(oid) if n is None else int(n)
    sql = version_sql(oid, n)
    ensure_schema(schema)
    plpy.execute(f"CREATE VIEW {full} AS {sql}")
    plpy.execute(f"GRANT SELECT ON {full} TO pxt_reader")
    plpy.execute(f"COMMENT ON VIEW {full} IS {lit(f'pixelgres snapshot of {qualified(oid)} at version {n}')}")
    plpy.execute(plpy.prepare("INSERT INTO pxt.tables (relid, kind, base, version, pins) "
                              "VALUES ($1::regclass, 'snapshot', $2, $3, $3)", ["text", "oid", "int"]), [full, oid, n])
    return full


def drop_snapshot(name: str) -> None:
    from .sqlutil import parse_table_name

    schema, rel = parse_table_name(name)
    full = f"{q(schema)}.{q(rel)}"
    r = one("SELECT vkey FROM pxt.tables WHERE kind = 'snapshot' AND relid = to_regclass($1)", full)
    if r is None:
        _fail(f"{name!r} is not a snapshot", sqlstate="42809")
    plpy.execute(f"DROP VIEW {full}")
    plpy.execute(f"DROP TABLE IF EXISTS {overlay_name(r['vkey'])}")


def at_version(oid: int, n: int) -> str:
    name = f"{one('SELECT relname FROM pg_class WHERE oid = $1', oid, types=['oid'])['relname']}@{int(n)}"
    plpy.execute(f"CREATE OR REPLACE TEMP VIEW {q(name)} AS {version_sql(oid, n)}")
    return f"pg_temp.{q(name)}"


# --- retention -----------------------------------------------------------------------------------
def vacuum_history(oid: int, keep, older_than) -> dict:
    table = qualified(oid)
    v = current_version(oid)
    cutoffs = []
    if keep is not None:
        if keep < 1:
            _fail("keep must be at least 1 (the current version)")
        cutoffs.append(v - keep + 1)
    if older_than is not None:
        r = one("SELECT coalesce(max(version), 0) AS v FROM pxt.versions WHERE relid = $1 AND created_at <= now() - $2::interval",
                oid, older_than, types=["oid", "text"])
        cutoffs.append(r["v"])
    if not cutoffs:
        _fail("give keep => N versions or older_than => interval")
    cutoff = max(0, min(cutoffs))
    snap = one("SELECT min(pins) AS v FROM pxt.tables WHERE kind = 'snapshot' AND base = $1", oid, types=["oid"])["v"]
    if snap is not None and snap < cutoff:
        _fail(f"cannot vacuum {table} history before version {cutoff}: a snapshot pins version {snap}",
                   hint="drop the snapshot or keep more versions", sqlstate="55000")
    old = one("SELECT retained_from FROM pxt.tables WHERE relid = $1", oid, types=["oid"])["retained_from"]
    if cutoff <= old:
        return {"retained_from": old, "rows_removed": 0}
    n = plpy.execute(f"DELETE FROM {hist_name(oid)} WHERE _pxt_v_to <= {int(cutoff)}").nrows()
    plpy.execute(plpy.prepare("UPDATE pxt.tables SET retained_from = $2 WHERE relid = $1", ["oid", "int"]), [oid, cutoff])
    # soft-dropped columns no retained version can see are dropped for good
    for d in plpy.execute(plpy.prepare(
            "SELECT attnum, name FROM pxt.column_defs WHERE relid = $1 AND dropped_at IS NOT NULL AND dropped_at <= $2",
            ["oid", "int"]), [oid, cutoff]):
        plpy.execute("SELECT set_config('pxt_v.no_log', 'on', true)")
        plpy.execute(f"ALTER TABLE {table} DROP COLUMN IF EXISTS {q('_pxt_dropped_' + str(d['attnum']))}")
        plpy.execute("SELECT set_config('pxt_v.no_log', 'off', true)")
    return {"retained_from": cutoff, "rows_removed": n}


def vacuum_media(min_age_seconds: float, dry_run: bool) -> dict:
    """Delete store files that no live row, history row or snapshot references.
    Files younger than ``min_age_seconds`` are kept: a concurrent, not yet committed
    transaction may have just written them."""
    import os
    import time

    from .media import media_dir

    refs = set()
    for t in plpy.execute("SELECT relid::oid::int AS oid FROM pxt.tables WHERE kind <> 'snapshot'"):
        oid = t["oid"]
        cols = plpy.execute(plpy.prepare(
            "SELECT a.attname, d.attnum FROM pxt.column_defs d JOIN pg_attribute a ON a.attrelid = d.relid "
            "AND a.attnum = d.attnum AND NOT a.attisdropped WHERE d.relid = $1 AND d.media_type IS NOT NULL",
            ["oid"]), [oid])
        h = hist_name(oid)
        has_h = one(f"SELECT to_regclass({lit(h)}) IS NOT NULL AS e")["e"]
        for c in cols:
            parts = [f"SELECT {q(c['attname'])}::text AS r FROM ONLY {qualified(oid)}"]
            if has_h:
                parts.append(f"SELECT c{int(c['attnum'])}::text FROM {h}")
            for r in plpy.execute(f"SELECT DISTINCT r FROM ({' UNION ALL '.join(parts)}) s "
                                  f"WHERE r LIKE 'media://%'"):
                refs.add(r["r"][len("media://"):])
    # snapshots that outlived a revert hold their own rows (see _keep_snapshot)
    for s in plpy.execute("SELECT vkey FROM pxt.tables WHERE kind = 'snapshot' AND pins IS DISTINCT FROM version"):
        ov = overlay_name(s["vkey"])
        for c in plpy.execute(plpy.prepare(
                "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped "
                "AND atttypid = ANY (ARRAY['pxt.image', 'pxt.video', 'pxt.audio', 'pxt.document']::regtype[])",
                ["text"]), [ov]):
            for r in plpy.execute(f"SELECT DISTINCT {q(c['attname'])}::text AS r FROM {ov} "
                                  f"WHERE {q(c['attname'])}::text LIKE 'media://%'"):
                refs.add(r["r"][len("media://"):])
    root = media_dir()
    now = time.time()
    scanned = deleted = freed = 0
    for sub in sorted(os.listdir(root)):
        d = os.path.join(root, sub)
        if len(sub) != 2 or not os.path.isdir(d):
            continue  # e.g. _url_cache
        for name in os.listdir(d):
            if name.startswith(".tmp-"):
                path = os.path.join(d, name)  # an interrupted write: remove once old enough
            elif name in refs:
                scanned += 1
                continue
            else:
                path = os.path.join(d, name)
            scanned += 1
            st = os.stat(path)
            if now - st.st_mtime < min_age_seconds:
                continue
            deleted += 1
            freed += st.st_size
            if not dry_run:
                os.unlink(path)
    return {"files": scanned, "referenced": len(refs), "deleted": deleted, "bytes_freed": freed, "dry_run": dry_run}
