"""Generate the trigger functions that evaluate a table's computed columns.

Per managed table:
* ``pxt_internal."row_<oid>"``: BEFORE INSERT OR UPDATE FOR EACH ROW. Validates media
  inputs, refuses direct writes to computed columns, evaluates computed columns in
  dependency order (on UPDATE only those whose inputs changed, or that
  pixelgres.recompute names), each in its own exception block that either aborts with the
  column, row and cause, or (on_error 'ignore') stores NULL and records the error in
  ``_pxt_errors``. Columns that are batched, or downstream of one, are left to:
* ``pxt_internal."stmt_<oid>"``: AFTER INSERT / AFTER UPDATE FOR EACH STATEMENT with the
  transition table: for each batched column, collect the statement's calls, run them as one
  batch (pixelgres.server.core.batch), and write results back row by row; the row trigger then
  computes whatever depends on them.
Expressions are PostgreSQL's own deparse of the column's expression view (exprs.py), with
``pxt_row`` aliased to NEW, so no user text is pasted into the function. The deparse is
schema-qualified, so the functions need no pinned search_path; not pinning it matters,
because a pinned path would also apply inside users' own functions called from an
expression and break their unqualified table references.
"""
import plpy

from ..catalog import vkey
from ..core.spi import lit, one, q, qualified
from ..versioning import history
from . import exprs

FN_SCHEMA = "pxt_internal"


def _err_record(col: str) -> str:
    return (f"pxt_row._pxt_errors := coalesce(pxt_row._pxt_errors, '{{}}'::jsonb) || "
            f"jsonb_build_object({lit(col)}, pxt._error_info(SQLSTATE, SQLERRM));")


def _row_desc(deps: list[str]) -> str:
    """SQL text giving a short description of the row: rowid and the column's inputs."""
    parts = ["'_pxt_rowid=' || coalesce(pxt_row._pxt_rowid::text, '?')"]
    for d in deps:
        parts.append(f"{lit(d + '=')} || coalesce(quote_literal(left(pxt_row.{q(d)}::text, 200)), 'NULL')")
    return " || ', ' || ".join(parts)


def _plain_eq_types(oid: int) -> set:
    """Columns whose type compares with a pg_catalog operator. The triggers do not pin
    search_path (see above), so for other types (pgvector's vector, ...) whose '=' may not be
    on the writer's search_path, changes are detected by comparing text forms."""
    return {r["attname"] for r in plpy.execute(plpy.prepare("""
        SELECT a.attname FROM pg_attribute a
        JOIN pg_type t ON t.oid = a.atttypid
        WHERE a.attrelid = $1 AND a.attnum > 0 AND EXISTS (
            SELECT 1 FROM pg_operator o WHERE o.oprname = '=' AND o.oprnamespace = 'pg_catalog'::regnamespace
              AND o.oprleft = coalesce(nullif(t.typbasetype, 0), t.oid) AND o.oprright = o.oprleft)""",
        ["oid"]), [oid])}


def _changed(col: str, plain: set) -> str:
    if col in plain:
        return f"pxt_row.{q(col)} IS DISTINCT FROM OLD.{q(col)}"
    return f"pxt_row.{q(col)}::text IS DISTINCT FROM OLD.{q(col)}::text"


def _compute_block(table: str, c: dict) -> str:
    col = c["name"]
    if c["on_error"] == "ignore":
        handler = f"pxt_row.{q(col)} := NULL; {_err_record(col)}"
    else:
        handler = (f"RAISE EXCEPTION USING ERRCODE = SQLSTATE, MESSAGE = format('computed column %s of %s failed for row (%s): %s', "
                   f"{lit(col)}, {lit(table)}, {_row_desc(c['deps'])}, pxt._clean_error(SQLERRM)), "
                   f"HINT = 'add the column with on_error => ''ignore'' to record per-row errors instead';")
    return (f"    BEGIN\n      pxt_row.{q(col)} := {c['sql']};\n"
            f"    EXCEPTION WHEN OTHERS THEN\n      {handler}\n    END;\n")


def _load(oid: int) -> list[dict]:
    rows = plpy.execute(plpy.prepare("""
        SELECT name, expr, expr_view::text AS v, deps, batched, on_error, media_type, deferred
        FROM pxt.column_defs WHERE relid = $1 AND dropped_at IS NULL
        ORDER BY expr IS NOT NULL, position, attnum""", ["oid"]), [oid])
    cols = []
    for r in rows:
        c = dict(r)
        c["deps"] = list(r["deps"] or [])
        if r["v"]:
            info = exprs.analyze(oid, r["v"], r["expr"])
            c["sql"] = info["sql"]
            if info["deps"] != c["deps"]:  # renamed inputs: keep the catalog current
                c["deps"] = info["deps"]
                plpy.execute(plpy.prepare("UPDATE pxt.column_defs SET deps = $3 WHERE relid = $1 AND name = $2 "
                                          "AND dropped_at IS NULL", ["oid", "name", "name[]"]), [oid, r["name"], c["deps"]])
        cols.append(c)
    computed = [c for c in cols if c["expr"] is not None]
    pending = set()
    for c in computed:  # position order is a topological order
        c["pending"] = c["batched"] or c["deferred"] or any(d in pending for d in c["deps"])
        if c["pending"]:
            pending.add(c["name"])
    return cols


def regenerate(oid: int) -> None:
    table = qualified(oid)
    cols = _load(oid)
    computed = [c for c in cols if c["expr"] is not None]
    media_inputs = [c for c in cols if c["expr"] is None and c["media_type"]]
    k = vkey(oid)
    row_fn = f'{FN_SCHEMA}."row_{k}"'
    stmt_fn = f'{FN_SCHEMA}."stmt_{k}"'

    plain = _plain_eq_types(oid)
    ins, upd = [], []
    for m in media_inputs:
        check = (f"      BEGIN PERFORM pxt._validate_media(pxt_row.{q(m['name'])}, {lit(m['media_type'])});\n"
                 f"      EXCEPTION WHEN OTHERS THEN RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = "
                 f"format('invalid %s in column %s of %s, row _pxt_rowid=%s: %s', {lit(m['media_type'])}, "
                 f"{lit(m['name'])}, {lit(table)}, pxt_row._pxt_rowid, pxt._clean_error(SQLERRM)); END;\n")
        # pixelgres's own iterators write media they produced: pxt_iter.trusted names the table
        ins.append(f"    IF pxt_row.{q(m['name'])} IS NOT NULL AND coalesce(current_setting('pxt_iter.trusted', true), '') "
                   f"<> {lit(str(oid))} THEN\n{check}    END IF;\n")
        upd.append(f"    IF pxt_row.{q(m['name'])} IS NOT NULL AND {_changed(m['name'], plain)} THEN\n{check}    END IF;\n")
    for c in computed:
        ins.append(f"    IF pxt_row.{q(c['name'])} IS NOT NULL THEN RAISE EXCEPTION USING ERRCODE = '428C9', "
                   f"MESSAGE = format('cannot write computed column %s of %s', {lit(c['name'])}, {lit(table)}), "
                   f"HINT = 'computed columns are evaluated by pixelgres; write their input columns'; END IF;\n")
    ins.append("    pxt_row._pxt_errors := NULL;\n")
    for c in computed:
        if not c["pending"]:
            ins.append(_compute_block(table, c))
    guard = []
    for c in computed:
        guard.append(f"      IF {_changed(c['name'], plain)} THEN RAISE EXCEPTION USING "
                     f"ERRCODE = '428C9', MESSAGE = format('cannot write computed column %s of %s', {lit(c['name'])}, "
                     f"{lit(table)}), HINT = 'computed columns are evaluated by pixelgres; write their input columns'; END IF;\n")
    if guard:
        upd.insert(0, "    IF pxt_depth <= 1 THEN\n" + "".join(guard) + "    END IF;\n")
    for c in computed:
        changed = " OR ".join([f"{lit(c['name'])} = ANY(pxt_force)"] +
                              [_changed(d, plain) for d in c["deps"]])
        if c["batched"]:
            body = f"      IF pxt_depth <= 1 THEN pxt_row.{q(c['name'])} := NULL; END IF;\n"
        elif c["deferred"]:  # computed only when the worker asks (pixelgres.recompute names it)
            body = (f"      IF {lit(c['name'])} = ANY(pxt_asked) THEN\n{_compute_block(table, c)}"
                    f"      ELSE pxt_row.{q(c['name'])} := NULL; END IF;\n")
        else:
            body = _compute_block(table, c)
        upd.append(f"    IF {changed} THEN\n      pxt_row._pxt_errors := pxt_row._pxt_errors - {lit(c['name'])};\n{body}    END IF;\n")

    body = f"""
DECLARE
  pxt_row ALIAS FOR NEW;
  pxt_force text[];
  pxt_asked text[] := string_to_array(nullif(current_setting('pixelgres.recompute', true), ''), ',');
  pxt_depth int := pg_trigger_depth();
BEGIN
  IF current_setting('pixelgres.replaying', true) = 'on' THEN RETURN NEW; END IF;
  IF pxt_depth <= 1 THEN  -- a recompute applies to the statement that asked for it only
    pxt_force := string_to_array(nullif(current_setting('pixelgres.recompute', true), ''), ',');
  END IF;
  IF TG_OP = 'INSERT' THEN
{''.join(ins)}  ELSE
{''.join(upd)}  END IF;
  RETURN NEW;
END"""
    # Only computed columns and media checks need a row trigger: versions need none (an
    # insert's version comes from _pxt_v's default; an update leaves _pxt_v alone, so plain
    # updates stay HOT, and the version a row became live is found in the history table).
    if computed or media_inputs:
        plpy.execute(f"CREATE OR REPLACE FUNCTION {row_fn}() RETURNS trigger LANGUAGE plpgsql "
                     f"AS {lit(body)}")
        plpy.execute(f"CREATE OR REPLACE TRIGGER pxt_compute BEFORE INSERT OR UPDATE ON {table} "
                     f"FOR EACH ROW EXECUTE FUNCTION {row_fn}()")
    elif one(f"SELECT to_regprocedure({lit(row_fn + '()')}) IS NOT NULL AS e")["e"]:
        plpy.execute(f"DROP FUNCTION {row_fn}() CASCADE")  # and its trigger
    late = any(c["batched"] and c["on_error"] == "ignore" for c in computed)
    for stmt in history.trigger_sql(oid, late):
        plpy.execute(stmt)

    batched = [c for c in computed if c["batched"]]
    if not batched:
        if one(f"SELECT to_regprocedure({lit(stmt_fn + '()')}) IS NOT NULL AS e")["e"]:
            plpy.execute(f"DROP FUNCTION {stmt_fn}() CASCADE")  # and the two triggers using it
        return
    steps = []
    for c in batched:
        col = q(c["name"])
        if c["on_error"] == "ignore":
            handler = (f"UPDATE ONLY {table} pxt_row SET _pxt_errors = coalesce(pxt_row._pxt_errors, '{{}}'::jsonb) || "
                       f"jsonb_build_object({lit(c['name'])}, pxt._error_info(SQLSTATE, SQLERRM)) WHERE pxt_row._pxt_rowid = pxt_id;")
        else:
            handler = (f"PERFORM pxt._batch_end(); PERFORM set_config('pxt_v.internal', 'off', true); RAISE EXCEPTION USING ERRCODE = SQLSTATE, MESSAGE = "
                       f"format('computed column %s of %s failed for row (_pxt_rowid=%s): %s', {lit(c['name'])}, "
                       f"{lit(table)}, pxt_id, pxt._clean_error(SQLERRM)), "
                       f"HINT = 'add the column with on_error => ''ignore'' to record per-row errors instead';")
        asked = (f" AND {lit(c['name'])} = ANY(string_to_array(current_setting('pixelgres.recompute', true), ','))"
                 if c["deferred"] else "")
        steps.append(f"""
  SELECT array_agg(n._pxt_rowid ORDER BY n._pxt_rowid) INTO pxt_ids FROM pxt_new n
   WHERE n.{col} IS NULL AND NOT coalesce(n._pxt_errors ? {lit(c['name'])}, false){asked};
  IF pxt_ids IS NOT NULL THEN
    BEGIN
      PERFORM pxt._batch_begin();
      PERFORM ({c['sql']}) FROM ONLY {table} pxt_row WHERE pxt_row._pxt_rowid = ANY(pxt_ids);
      PERFORM pxt._batch_run();
    EXCEPTION WHEN OTHERS THEN PERFORM pxt._batch_end(); RAISE;
    END;
    PERFORM set_config('pxt_v.internal', 'on', true);  -- write-back is part of this version
    FOREACH pxt_id IN ARRAY pxt_ids LOOP
      BEGIN
        UPDATE ONLY {table} pxt_row SET {col} = {c['sql']} WHERE pxt_row._pxt_rowid = pxt_id;
      EXCEPTION WHEN OTHERS THEN
        {handler}
      END;
    END LOOP;
    PERFORM set_config('pxt_v.internal', 'off', true);
    PERFORM pxt._batch_end();
  END IF;""")
    body = f"""
DECLARE
  pxt_ids bigint[];
  pxt_id bigint;
BEGIN
  -- not for our own write-back (below) nor replays; rows written by other triggers (e.g. an
  -- iterator view's expansion) are evaluated like any others
  IF current_setting('pxt_v.internal', true) = 'on' OR current_setting('pixelgres.replaying', true) = 'on' THEN
    RETURN NULL;
  END IF;
{''.join(steps)}
  RETURN NULL;
END"""
    plpy.execute(f"CREATE OR REPLACE FUNCTION {stmt_fn}() RETURNS trigger LANGUAGE plpgsql "
                 f"AS {lit(body)}")
    for ev in ("insert", "update"):
        plpy.execute(f"CREATE OR REPLACE TRIGGER pxt_batch_{ev} AFTER {ev.upper()} ON {table} "
                     f"REFERENCING NEW TABLE AS pxt_new FOR EACH STATEMENT EXECUTE FUNCTION {stmt_fn}()")
