"""Iterator views: a table whose rows a set-returning function yields from each base row.

``create_view('ml.frames', 'ml.videos', 'pxt.frame_iterator(video, fps => 1)')`` makes:

* the *storage*, ``ml.frames_rows``: an ordinary managed table (pxt.tables kind 'view', with
  ``base`` and ``iterator`` set) holding the iterator's output columns and
  ``_pxt_base_rowid``, the ``_pxt_rowid`` of the base row it came from. Computed columns,
  embedding indexes and version history work on it as on any managed table;
* ``pxt_internal."iter_<storage oid>"``: a view of the base through the iterator
  (``SELECT b._pxt_rowid, it.* FROM base b CROSS JOIN LATERAL <call> it``). PostgreSQL parses
  and types the call, records which base columns and functions it reads (dropping them is
  refused) and follows renames; expanding rows is ``INSERT INTO storage SELECT ... FROM it_view
  WHERE _pxt_base_rowid = ANY(ids)``;
* ``ml.frames``: the relation users query: the storage LEFT JOINed to the base on
  ``_pxt_rowid``, so the base row's columns appear alongside without being copied (the join
  is unique, so PostgreSQL removes it when no base column is read);
* statement-level AFTER triggers ``pxt_view_<storage oid>_<event>`` on the base, with
  transition tables: insert expands the new rows only, delete and truncate remove their
  rows, an update re-expands the rows whose iterated columns changed. All writes are plain
  INSERT/DELETE statements on the storage, so its own triggers (computed columns, versions)
  see them. Writes to the storage from anywhere else are refused.

The catalog is ``pxt.iterator_views``; event triggers keep it, the joined view and the
generated functions in step with DDL on the base and the storage.
"""
from __future__ import annotations

import json
import re

import plpy

from ..catalog import iterator_entry, iterator_storage, managed
from ..core.errors import fail as _fail
from ..core.spi import ensure_schema, lit, one, parse_table_name, q, qualified
from ..ddl import exprs, tables

KNOWN = ("frame_iterator", "document_splitter", "audio_splitter", "string_splitter")
_BARE = re.compile(r"^\s*(" + "|".join(KNOWN) + r")\s*\(", re.I)
# a call whose first argument is a string literal: pxt.frame_iterator('video', fps => 1)
_FIRST_LITERAL = re.compile(r"^(\s*(?:\"[^\"]+\"|[A-Za-z_][\w$]*)(?:\s*\.\s*(?:\"[^\"]+\"|[A-Za-z_][\w$]*))?\s*\(\s*)"
                            r"'((?:[^']|'')*)'")
CHUNK = 500  # base rows expanded per statement when a view is created over existing rows


# --- catalog ------------------------------------------------------------------------------------------
def _columns(oid: int) -> list[dict]:
    return list(plpy.execute(plpy.prepare(
        "SELECT attname AS name, format_type(atttypid, atttypmod) AS type FROM pg_attribute "
        "WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped ORDER BY attnum", ["oid"]), [oid]))


def _user(cols: list[dict]) -> list[dict]:
    return [c for c in cols if not c["name"].startswith("_pxt_")]


def _deps(iter_view: str, base: int) -> tuple[list[str], list[int]]:
    """Base columns and functions the iterator view reads (PostgreSQL's own dependencies)."""
    rows_ = plpy.execute(plpy.prepare(
        "SELECT DISTINCT d.refclassid::regclass::text AS cls, d.refobjid::int AS obj, d.refobjsubid AS sub "
        "FROM pg_depend d JOIN pg_rewrite r ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid "
        "WHERE r.ev_class = $1::regclass AND NOT (d.refclassid = 'pg_class'::regclass AND d.refobjid = $1::regclass)",
        ["text"]), [iter_view])
    attnums, funcs = [], []
    for d in rows_:
        if d["cls"] == "pg_class":
            if d["obj"] != base:
                raise ValueError("an iterator may read only columns of its base table")
            if d["sub"]:
                attnums.append(d["sub"])
        elif d["cls"] == "pg_proc":
            funcs.append(d["obj"])
    names = [r["attname"] for r in plpy.execute(plpy.prepare(
        "SELECT attname FROM pg_attribute WHERE attrelid = $1 AND attnum = ANY($2) ORDER BY attnum",
        ["oid", "int2[]"]), [base, attnums])]
    return [n for n in names if n != "_pxt_rowid"], funcs


# --- create / drop -------------------------------------------------------------------------------------
def _normalise_call(call: str, base: int) -> str:
    """Accept ``frame_iterator(...)`` for ``pxt.frame_iterator(...)`` and a first argument
    written as a string literal naming a base column (``pxt.frame_iterator('video', ...)``,
    as Pixeltable spells it) for the column itself."""
    if not isinstance(call, str) or not call.strip():
        _fail("iterator must be the call of a set-returning function over the base's columns, "
                   "e.g. 'pxt.frame_iterator(video, fps => 1)'")
    call = call.strip()
    if _BARE.match(call):
        call = "pxt." + call
    m = _FIRST_LITERAL.match(call)
    if m:
        col = m.group(2).replace("''", "'")
        if one("SELECT 1 AS x FROM pg_attribute WHERE attrelid = $1 AND attname = $2 AND attnum > 0 "
               "AND NOT attisdropped", base, col, types=["oid", "name"]):
            call = m.group(1) + q(col) + call[m.end():]
    return call


def _base_oid(base: str) -> int:
    """The managed table a view reads: a table, or another iterator view's storage."""
    s = iterator_storage(base)
    if s:
        return s
    return managed(base)


def create_view(name: str, base_name: str, call: str, if_exists: str = "error", comment: str | None = None) -> str:
    if if_exists not in ("error", "ignore", "replace"):
        _fail(f"if_exists must be 'error', 'ignore' or 'replace', not {if_exists!r}")
    schema, rel = parse_table_name(name)
    full = f"{q(schema)}.{q(rel)}"
    if one("SELECT to_regclass($1) IS NOT NULL AS e", full)["e"]:
        if if_exists == "ignore":
            return full
        if if_exists == "replace" and iterator_storage(full):
            drop_view(full)
        else:
            _fail(f"relation {name!r} already exists",
                       hint="if_exists => 'ignore' or 'replace'" if iterator_storage(full) else None, sqlstate="42P07")
    base = _base_oid(base_name)
    base_full = qualified(base)
    call = _normalise_call(call, base)
    exprs.scan(call)
    store_rel = f"{rel}_rows"
    store_full = f"{q(schema)}.{q(store_rel)}"
    if len(store_rel.encode()) > 63:
        _fail(f"view name {rel!r} is too long (its storage table {store_rel!r} must fit in 63 bytes)")
    if one("SELECT to_regclass($1) IS NOT NULL AS e", store_full)["e"]:
        _fail(f"cannot create view {name!r}: its storage table {schema}.{store_rel} already exists", sqlstate="42P07")
    ensure_schema(schema)

    # 1. the iterator over the base, typed and dependency-tracked by PostgreSQL
    tmp = f"pxt_internal.{q('iter_new_' + str(one('SELECT nextval(' + lit('pxt_internal.expr_seq') + ') AS n')['n']))}"
    try:
        plpy.execute(plpy.prepare(f"CREATE VIEW {tmp} AS SELECT pxt_row._pxt_rowid AS _pxt_base_rowid, pxt_it.* "
                                  f"FROM ONLY {base_full} pxt_row CROSS JOIN LATERAL {call} AS pxt_it"))
    except plpy.SPIError as e:
        msg = e.args[0] if e.args else str(e)
        _fail(f"invalid iterator {call!r}: {msg}",
                   hint="write the call of a set-returning function over the base's columns as text, e.g. "
                        "iterator => 'pxt.frame_iterator(video, fps => 1)'")
    out = _columns(one("SELECT $1::regclass::oid::int AS o", tmp)["o"])[1:]
    if len(out) == 1 and out[0]["name"] == "pxt_it":  # a scalar-returning function: name its column
        plpy.execute(f"DROP VIEW {tmp}")
        plpy.execute(f"CREATE VIEW {tmp} AS SELECT pxt_row._pxt_rowid AS _pxt_base_rowid, pxt_it.value "
                     f"FROM ONLY {base_full} pxt_row CROSS JOIN LATERAL {call} AS pxt_it(value)")
        out = _columns(one("SELECT $1::regclass::oid::int AS o", tmp)["o"])[1:]
    for c in out:
        if c["name"].startswith("_pxt_"):
            _fail(f"iterator {call!r} returns column {c['name']!r}: names starting with _pxt_ are reserved")
    try:
        deps, funcs = _deps(tmp, base)
    except ValueError as e:
        _fail(f"invalid iterator {call!r}: {e}")
    func = one("SELECT p.oid::regprocedure::text AS f FROM pg_proc p WHERE p.oid = ANY($1) AND p.proretset "
               "ORDER BY p.oid LIMIT 1", funcs, types=["oid[]"])
    # the iterator's own arguments, once, over an all-NULL row: a bad constant (fps => 0) is the
    # view's fault and must be refused now, not blamed on every row inserted later
    try:
        plpy.execute(f"SELECT count(*) FROM (SELECT (NULL::{base_full}).*) pxt_row CROSS JOIN LATERAL {call} AS pxt_it")
    except plpy.SPIError as e:
        plpy.execute(f"DROP VIEW IF EXISTS {tmp}")
        _fail(f"invalid iterator {call!r}: {e.args[0] if e.args else e}")

    # 2. the storage: a managed table
    cols = [f"{q(c['name'])} {c['type']}" for c in out]
    plpy.execute(f"CREATE TABLE {store_full} (_pxt_base_rowid bigint NOT NULL, {', '.join(cols)}, "
                 f"_pxt_rowid bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, _pxt_errors jsonb)")
    plpy.execute(f"CREATE INDEX ON {store_full} (_pxt_base_rowid)")
    storage = one("SELECT $1::regclass::oid::int AS o", store_full)["o"]
    iter_view = f'pxt_internal."iter_{storage}"'
    plpy.execute(f"ALTER VIEW {tmp} RENAME TO {q('iter_' + str(storage))}")
    tables.manage(store_full)
    spec = {"call": call, "function": func["f"] if func else None, "view": f"{schema}.{rel}", "reads": deps}
    plpy.execute(plpy.prepare("UPDATE pxt.tables SET kind = 'view', base = $2, iterator = $3, comment = $4 "
                              "WHERE relid = $1", ["oid", "oid", "jsonb", "text"]),
                 [storage, base, json.dumps(spec), comment])
    plpy.execute(plpy.prepare("INSERT INTO pxt.iterator_views (storage, view_schema, view_name, base, call, iter_view) "
                              "VALUES ($1, $2, $3, $4, $5, $6::regclass)", ["oid", "name", "name", "oid", "text", "text"]),
                 [storage, schema, rel, base, call, iter_view])

    # 3. the joined view users query, the maintenance functions and triggers
    sync(storage)
    if comment:
        plpy.execute(f"COMMENT ON VIEW {full} IS {lit(comment)}")

    # 4. expand the rows the base already has
    expand_existing(storage)
    return full


def expand_existing(storage: int) -> int:
    e = iterator_entry(storage)
    base_full = qualified(e["base"])
    total = one(f"SELECT count(*) AS n FROM ONLY {base_full}")["n"]
    if not total:
        return 0
    fn = f'pxt_internal."view_expand_{storage}"'
    plan = plpy.prepare(f"SELECT {fn}($1) AS n", ["bigint[]"])
    done = rows_ = 0
    cursor = plpy.cursor(f"SELECT _pxt_rowid AS id FROM ONLY {base_full} ORDER BY _pxt_rowid")
    while True:
        batch = cursor.fetch(CHUNK)
        if not batch:
            break
        rows_ += plpy.execute(plan, [[r["id"] for r in batch]])[0]["n"]
        done += len(batch)
        if total > CHUNK:
            view = f"{e['view_schema']}.{e['view_name']}"
            plpy.notice(f"pixelgres: expanding {view}: {done} of {total} rows of {base_full}",
                        detail=json.dumps({"pixelgres_progress": {"op": "expand_view", "table": view, "base": base_full,
                                                                  "done": done, "total": total}}))
    return rows_


def drop_view(name: str) -> None:
    storage = iterator_storage(name)
    if storage is None:
        _fail(f"{name!r} is not an iterator view", hint="drop tables with pxt.drop_table", sqlstate="42809")
    tables.drop_table(qualified(storage))  # the sql_drop event trigger removes the rest


# --- keeping the joined view and the functions in step ----------------------------------------------
def _view_exists(e: dict) -> int | None:
    r = one("SELECT c.oid::int AS o FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind = 'v'", e["view_schema"], e["view_name"],
            types=["name", "name"])
    return r["o"] if r else None


def sync(storage: int) -> None:
    """(Re)build the joined view and the maintenance functions and triggers of a view."""
    e = iterator_entry(storage)
    if e is None:
        return
    if e["view_oid"] and one("SELECT 1 AS x FROM pg_class WHERE oid = $1", e["view_oid"], types=["oid"]):
        cur = one("SELECT n.nspname AS s, c.relname AS r FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                  "WHERE c.oid = $1", e["view_oid"], types=["oid"])
        e["view_schema"], e["view_name"] = cur["s"], cur["r"]  # followed an ALTER VIEW ... RENAME / SET SCHEMA
    base, store_full, base_full = e["base"], qualified(storage), qualified(e["base"])
    iter_cols = {c["name"] for c in _columns(one("SELECT $1::regclass::oid::int AS o", e["iter_view"])["o"])}
    deps, _ = _deps(e["iter_view"], base)
    gone = [d for d in deps if d.startswith("_pxt_dropped_")]
    if gone:
        _fail(f"cannot drop a column of {base_full} that view {e['view_schema']}.{e['view_name']} iterates over "
                   f"({e['call']})", hint="drop the view first (pxt.drop_view)", sqlstate="2BP01")
    s_cols, b_cols = _columns(storage), _columns(base)
    _functions(storage, e, store_full, base_full, [c["name"] for c in _user(s_cols) if c["name"] in iter_cols], deps)
    _joined_view(storage, e, store_full, base_full, s_cols, b_cols)


def _functions(storage: int, e: dict, store_full: str, base_full: str, ins_cols: list[str], deps: list[str]) -> None:
    view_name = f"{e['view_schema']}.{e['view_name']}"
    # media written by pixelgres's own iterators (frames, segments it just encoded) need no
    # validation on insert: pxt_iter.trusted names the storage while they are written
    trusted = bool(one("SELECT bool_or(p.pronamespace = 'pxt'::regnamespace AND p.proretset) AS t FROM pg_depend d "
                       "JOIN pg_rewrite r ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid "
                       "JOIN pg_proc p ON d.refclassid = 'pg_proc'::regclass AND p.oid = d.refobjid "
                       "WHERE r.ev_class = $1::regclass", e["iter_view"])["t"])
    expand = f'pxt_internal."view_expand_{storage}"'
    trig = f'pxt_internal."view_{storage}"'
    guard = f'pxt_internal."view_guard_{storage}"'
    cols = ", ".join(q(c) for c in ins_cols)
    sel = ", ".join(f"v.{q(c)}" for c in ins_cols)
    desc = " || ', ' || ".join(["'_pxt_rowid=' || b._pxt_rowid"] + [
        f"{lit(d + '=')} || coalesce(quote_literal(left(b.{q(d)}::text, 200)), 'NULL')" for d in deps])
    what = f"view {view_name}: {e['call']}"
    body = f"""
DECLARE
  pxt_n bigint;
  pxt_id bigint;
  pxt_row text;
  pxt_prev text := current_setting('pxt_iter.writing', true);
BEGIN
  IF pxt_ids IS NULL OR cardinality(pxt_ids) = 0 THEN RETURN 0; END IF;
  PERFORM set_config('pxt_iter.writing', {lit(str(storage))}, true);
  PERFORM set_config('pxt_iter.trusted', {lit(str(storage) if trusted else '')}, true);
  DELETE FROM ONLY {store_full} WHERE _pxt_base_rowid = ANY(pxt_ids);
  BEGIN
    INSERT INTO {store_full} (_pxt_base_rowid{', ' + cols if cols else ''})
      SELECT v._pxt_base_rowid{', ' + sel if sel else ''} FROM {e['iter_view']} v WHERE v._pxt_base_rowid = ANY(pxt_ids);
    GET DIAGNOSTICS pxt_n = ROW_COUNT;
    PERFORM set_config('pxt_iter.writing', coalesce(pxt_prev, ''), true);
    PERFORM set_config('pxt_iter.trusted', '', true);
    RETURN pxt_n;
  EXCEPTION WHEN OTHERS THEN
    PERFORM set_config('pxt_iter.writing', coalesce(pxt_prev, ''), true);
    PERFORM set_config('pxt_iter.trusted', '', true);
    -- name the base row whose expansion failed: with one row it is that one, with several
    -- find it by running the iterator alone over each (errors of the view's own computed
    -- columns already name their row and are re-raised as they are)
    IF cardinality(pxt_ids) = 1 THEN
      pxt_id := pxt_ids[1];
    ELSIF SQLERRM NOT LIKE 'computed column %' THEN
      FOREACH pxt_id IN ARRAY pxt_ids LOOP
        BEGIN
          PERFORM count(*) FROM {e['iter_view']} v WHERE v._pxt_base_rowid = pxt_id;
          pxt_id := NULL;
        EXCEPTION WHEN OTHERS THEN
          EXIT;
        END;
      END LOOP;
    END IF;
    IF pxt_id IS NULL OR SQLERRM LIKE 'computed column %' THEN RAISE; END IF;
    SELECT {desc} INTO pxt_row FROM ONLY {base_full} b WHERE b._pxt_rowid = pxt_id;
    RAISE EXCEPTION USING ERRCODE = SQLSTATE,
      MESSAGE = format('%s failed for row (%s) of %s: %s', {lit(what)}, pxt_row, {lit(base_full)}, pxt._clean_error(SQLERRM)),
      HINT = 'fix or delete that row of the base table; the whole statement was rolled back';
  END;
END"""
    # SECURITY DEFINER: whoever may write the base gets the view maintained (as its owner would),
    # without rights on the storage; the generated SQL is schema-qualified throughout
    definer = "SECURITY DEFINER SET search_path = pg_catalog, pg_temp"
    plpy.execute(f"CREATE OR REPLACE FUNCTION {expand}(pxt_ids bigint[]) RETURNS bigint LANGUAGE plpgsql {definer} "
                 f"AS {lit(body)}")
    plpy.execute(f"REVOKE EXECUTE ON FUNCTION {expand}(bigint[]) FROM PUBLIC")
    changed = " OR ".join(f"o.{q(d)}::text IS DISTINCT FROM b.{q(d)}::text" for d in deps) or "false"
    body = f"""
DECLARE
  pxt_ids bigint[];
  pxt_prev text;
BEGIN
  IF current_setting('pixelgres.replaying', true) = 'on' THEN RETURN NULL; END IF;
  IF TG_OP = 'INSERT' THEN
    SELECT array_agg(n._pxt_rowid ORDER BY n._pxt_rowid) INTO pxt_ids FROM pxt_new n;
  ELSIF TG_OP = 'UPDATE' THEN
    SELECT array_agg(o._pxt_rowid ORDER BY o._pxt_rowid) INTO pxt_ids
      FROM pxt_old o JOIN ONLY {base_full} b ON b._pxt_rowid = o._pxt_rowid WHERE {changed};
  ELSE
    pxt_prev := current_setting('pxt_iter.writing', true);
    PERFORM set_config('pxt_iter.writing', {lit(str(storage))}, true);
    IF TG_OP = 'DELETE' THEN
      DELETE FROM ONLY {store_full} s USING pxt_old o WHERE s._pxt_base_rowid = o._pxt_rowid;
    ELSE
      DELETE FROM ONLY {store_full};
    END IF;
    PERFORM set_config('pxt_iter.writing', coalesce(pxt_prev, ''), true);
    RETURN NULL;
  END IF;
  PERFORM {expand}(pxt_ids);
  RETURN NULL;
END"""
    plpy.execute(f"CREATE OR REPLACE FUNCTION {trig}() RETURNS trigger LANGUAGE plpgsql {definer} AS {lit(body)}")
    for ev, ref in (("insert", "REFERENCING NEW TABLE AS pxt_new"), ("update", "REFERENCING OLD TABLE AS pxt_old"),
                    ("delete", "REFERENCING OLD TABLE AS pxt_old"), ("truncate", "")):
        plpy.execute(f"CREATE OR REPLACE TRIGGER {q(f'pxt_view_{storage}_{ev}')} AFTER {ev.upper()} ON {base_full} "
                     f"{ref} FOR EACH STATEMENT EXECUTE FUNCTION {trig}()")
    # the storage is written by the functions above (and by revert) only
    fixed = ["_pxt_base_rowid"] + ins_cols
    moved = " OR ".join(f"NEW.{q(c)}::text IS DISTINCT FROM OLD.{q(c)}::text" for c in fixed)
    msg = (f"{view_name} is an iterator view: its rows come from {base_full} through {e['call']}; "
           f"write the base table instead")
    body = f"""
BEGIN
  IF current_setting('pxt_iter.writing', true) = {lit(str(storage))}
     OR current_setting('pixelgres.replaying', true) = 'on' THEN
    RETURN CASE WHEN TG_LEVEL = 'ROW' THEN NEW END;
  END IF;
  IF TG_LEVEL = 'STATEMENT' THEN
    RAISE EXCEPTION USING ERRCODE = '42809', MESSAGE = format('cannot %s %s: %s', lower(TG_OP), {lit(store_full)}, {lit(msg)});
  END IF;
  IF {moved} THEN
    RAISE EXCEPTION USING ERRCODE = '42809', MESSAGE = format('cannot update the iterator columns of %s: %s', {lit(store_full)}, {lit(msg)}),
      HINT = 'computed columns and columns you added can be updated';
  END IF;
  RETURN NEW;
END"""
    plpy.execute(f"CREATE OR REPLACE FUNCTION {guard}() RETURNS trigger LANGUAGE plpgsql AS {lit(body)}")
    plpy.execute(f"CREATE OR REPLACE TRIGGER pxt_view_guard BEFORE INSERT OR DELETE ON {store_full} "
                 f"FOR EACH STATEMENT EXECUTE FUNCTION {guard}()")
    plpy.execute(f"CREATE OR REPLACE TRIGGER pxt_view_guard_row BEFORE UPDATE ON {store_full} "
                 f"FOR EACH ROW EXECUTE FUNCTION {guard}()")


def _joined_view(storage: int, e: dict, store_full: str, base_full: str, s_cols: list[dict], b_cols: list[dict]) -> None:
    """The view users query: storage columns, then the base's (those not shadowed by one)."""
    mine = _user(s_cols)
    names = {c["name"] for c in mine}
    theirs = [c for c in _user(b_cols) if c["name"] not in names]
    want = ([(c["name"], f"s.{q(c['name'])}", c["type"]) for c in mine] +
            [(c["name"], f"b.{q(c['name'])}", c["type"]) for c in theirs] +
            [(n, f"s.{n}", t) for n, t in (("_pxt_rowid", "bigint"), ("_pxt_base_rowid", "bigint"), ("_pxt_errors", "jsonb"))])
    full = f"{q(e['view_schema'])}.{q(e['view_name'])}"
    oid = _view_exists(e)
    order = want
    replace = False
    if oid:
        have = [(c["name"], c["type"]) for c in _columns(oid)]
        by_name = {n: (n, x, t) for n, x, t in want}
        kept = [by_name[n] for n, t in have if n in by_name and by_name[n][2] == t]
        if len(kept) == len(have):  # nothing removed or retyped: CREATE OR REPLACE can append
            order = kept + [w for w in want if w[0] not in {k[0] for k in kept}]
            replace = True
            if [(n, t) for n, _, t in order] == have:
                _remember(storage, oid, e)
                return
    sql = (f"SELECT {', '.join(f'{x} AS {q(n)}' for n, x, _ in order)} FROM ONLY {store_full} s "
           f"LEFT JOIN ONLY {base_full} b ON b._pxt_rowid = s._pxt_base_rowid")
    if oid and not replace:
        plpy.execute("SELECT set_config('pxt_iter.rebuilding', 'on', true)")
        try:
            plpy.execute(f"DROP VIEW {full}")
        except plpy.SPIError as ex:
            plpy.execute("SELECT set_config('pxt_iter.rebuilding', 'off', true)")
            plpy.warning(f"pixelgres: view {full} could not be rebuilt to follow a change of its columns: "
                         f"{ex.args[0] if ex.args else ex}", hint="drop the objects that depend on it and run "
                         f"SELECT pxt.refresh_view({lit(full)})")
            return
        plpy.execute("SELECT set_config('pxt_iter.rebuilding', 'off', true)")
    plpy.execute(f"CREATE OR REPLACE VIEW {full} AS {sql}")
    oid = _view_exists(e)
    note = f"pixelgres iterator view: {base_full} through {e['call']}; rows stored in {store_full}"
    plpy.execute(f"COMMENT ON VIEW {full} IS {lit(note)}")
    if one("SELECT 1 AS x FROM pg_roles WHERE rolname = 'pxt_reader'"):
        plpy.execute(f"GRANT SELECT ON {full} TO pxt_reader")  # as its storage (tables.manage)
    _remember(storage, oid, e)


def _remember(storage: int, oid: int, e: dict) -> None:
    plpy.execute(plpy.prepare("UPDATE pxt.iterator_views SET view_rel = $2, view_schema = $3, view_name = $4 "
                              "WHERE storage = $1 AND (view_rel IS DISTINCT FROM $2::regclass OR view_schema <> $3 "
                              "OR view_name <> $4)",
                              ["oid", "oid", "name", "name"]), [storage, oid, e["view_schema"], e["view_name"]])


# --- event triggers ----------------------------------------------------------------------------------
def on_ddl(objids: list[int]) -> None:
    """After ALTER TABLE / ALTER VIEW: rebuild what reads the altered relations."""
    if not objids:
        return
    for r in plpy.execute(plpy.prepare(
            "SELECT storage::oid::int AS s FROM pxt.iterator_views WHERE storage::oid = ANY($1) OR base::oid = ANY($1) "
            "OR view_rel::oid = ANY($1) ORDER BY storage::oid", ["oid[]"]), [objids]):
        if one("SELECT 1 AS x FROM pg_class WHERE oid = $1", r["s"], types=["oid"]):
            sync(r["s"])


def on_drop(objids: list[int], tag: str) -> None:
    """sql_drop: a dropped storage takes its functions along; a dropped base, iterator view,
    or (by DROP VIEW) joined view takes the whole iterator view along."""
    if one("SELECT current_setting('pxt_iter.rebuilding', true) = 'on' AS x")["x"]:
        return
    dropped = set(objids)
    level = one("SELECT current_setting('client_min_messages') AS l")["l"]
    plpy.execute("SELECT set_config('client_min_messages', 'warning', true)")  # no "drop cascades to" noise
    try:
        _dropped(objids, dropped, tag)
    finally:
        plpy.execute(plpy.prepare("SELECT set_config('client_min_messages', $1, true)", ["text"]), [level])


def _dropped(objids: list[int], dropped: set, tag: str) -> None:
    for e in plpy.execute(plpy.prepare(
            "SELECT storage::oid::int AS s, base::oid::int AS b, view_rel::oid::int AS v, iter_view::oid::int AS i "
            "FROM pxt.iterator_views WHERE storage::oid = ANY($1) OR base::oid = ANY($1) OR view_rel::oid = ANY($1) "
            "OR iter_view::oid = ANY($1)", ["oid[]"]), [objids]):
        s = e["s"]
        if s in dropped:
            for fn in (f'"view_{s}"()', f'"view_guard_{s}"()', f'"view_expand_{s}"(bigint[])'):
                plpy.execute(f"DROP FUNCTION IF EXISTS pxt_internal.{fn} CASCADE")
            plpy.execute(f"DROP VIEW IF EXISTS pxt_internal.{q('iter_' + str(s))}")
            if e["v"] and one("SELECT 1 AS x FROM pg_class WHERE oid = $1", e["v"], types=["oid"]):
                plpy.execute(f"DROP VIEW IF EXISTS {one('SELECT $1::regclass::text AS n', e['v'], types=['oid'])['n']}")
            plpy.execute(plpy.prepare("DELETE FROM pxt.iterator_views WHERE storage = $1", ["oid"]), [s])
        elif e["b"] in dropped or e["i"] in dropped or (e["v"] in dropped and tag == "DROP VIEW"):
            if one("SELECT 1 AS x FROM pg_class WHERE oid = $1", s, types=["oid"]):
                plpy.execute(f"DROP TABLE {qualified(s)} CASCADE")
