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

from ..catalog import current_version, hist_name, overlay_name, vkey
from ..core.errors import fail as _fail
from ..core.spi import ensure_schema, lit, one, parse_table_name, q, qualified

SYSTEM = ("_pxt_rowid", "_pxt_v")


def live_columns(oid: int) -> list[dict]:
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
    for a in live_columns(oid):
        if f"c{a['attnum']}" not in have:
            plpy.execute(f"ALTER TABLE {h} ADD COLUMN c{a['attnum']} {a['type']}")



# --- triggers (generated per table; called by triggers.regenerate) ---------------------------
def trigger_sql(oid: int, late_errors: bool) -> list[str]:
    """Statements (re)creating the version triggers of a table. ``late_errors``: batched
    columns record errors after the rows were captured, so count them in the table."""
    table = qualified(oid)
    h = hist_name(oid)
    attrs = live_columns(oid)
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
