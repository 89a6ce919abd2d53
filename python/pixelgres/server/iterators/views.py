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

This module reads the catalog and runs SQL that ``sqlgen/iterators.py`` generates (the
maintenance functions' plpgsql bodies are its template ``sqlgen/templates/iterator_view.sql``).
"""
from __future__ import annotations

import json

import plpy

from ..catalog import display_name, ensure_schema, iterator_entry, iterator_storage, managed, vkey
from ..core.errors import fail as _fail
from ..core.spi import one, parse_table_name, q, qualified
from ..ddl import exprs, tables, triggers
from ..sqlgen import iterators as gen
from ..sqlgen.compose import Composable, Identifier, clip, written_name

CHUNK = 500  # base rows expanded per statement when a view is created over existing rows


def _execute(stmt: Composable):
    return plpy.execute(stmt.as_string())


def _relation(oid: int) -> tuple[str, Identifier]:
    """A managed relation's name as messages show it (a table's face's) and its storage's Identifier."""
    return display_name(oid), written_name(qualified(oid))


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
    call = gen.qualify_known(call.strip())
    found = gen.first_literal(call)
    if found:
        head, col, tail = found
        if one("SELECT 1 AS x FROM pg_attribute WHERE attrelid = $1 AND attname = $2 AND attnum > 0 "
               "AND NOT attisdropped", base, col, types=["oid", "name"]):
            call = gen.with_column(head, q(clip(col)), tail)  # as PostgreSQL truncates it
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
    full = f"{q(schema)}.{q(rel)}"  # the name as returned and shown (PostgreSQL's quoting)
    view = Identifier(clip(schema), clip(rel))  # over-long names truncated, as PostgreSQL does
    if one("SELECT to_regclass($1) IS NOT NULL AS e", full)["e"]:
        if if_exists == "ignore":
            return full
        if if_exists == "replace" and iterator_storage(full):
            drop_view(full)
        else:
            _fail(f"relation {name!r} already exists",
                       hint="if_exists => 'ignore' or 'replace'" if iterator_storage(full) else None, sqlstate="42P07")
    base = _base_oid(base_name)
    base_full, base_rel = _relation(base)
    call = _normalise_call(call, base)
    exprs.scan(call)
    it = gen.call(call)
    store_rel = f"{rel}_rows"
    if len(store_rel.encode()) > 63:
        _fail(f"view name {rel!r} is too long (its storage table {store_rel!r} must fit in 63 bytes)")
    store_full = f"{q(schema)}.{q(store_rel)}"
    store = Identifier(clip(schema), store_rel)
    if one("SELECT to_regclass($1) IS NOT NULL AS e", store_full)["e"]:
        _fail(f"cannot create view {name!r}: its storage table {schema}.{store_rel} already exists", sqlstate="42P07")
    ensure_schema(schema)

    # 1. the iterator over the base, typed and dependency-tracked by PostgreSQL
    tmp_rel = gen.new_iterator_view(one(gen.NEXT_ITERATOR_VIEW)["n"])
    tmp = tmp_rel.as_string()
    try:
        # prepare() refuses more than one statement: a second guard after scan()
        plpy.execute(plpy.prepare(gen.create_iterator_view(tmp_rel, base_rel, it).as_string()))
    except plpy.SPIError as e:
        msg = e.args[0] if e.args else str(e)
        _fail(f"invalid iterator {call!r}: {msg}",
                   hint="write the call of a set-returning function over the base's columns as text, e.g. "
                        "iterator => 'pxt.frame_iterator(video, fps => 1)'")
    out = _columns(one("SELECT $1::regclass::oid::int AS o", tmp)["o"])[1:]
    if len(out) == 1 and out[0]["name"] == "pxt_it":  # a scalar-returning function: name its column
        _execute(gen.drop_view(tmp_rel))
        _execute(gen.create_iterator_view(tmp_rel, base_rel, it, scalar=True))
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
        _execute(gen.check_arguments(base_rel, it))
    except plpy.SPIError as e:
        _execute(gen.drop_view(tmp_rel, if_exists=True))
        _fail(f"invalid iterator {call!r}: {e.args[0] if e.args else e}")

    # 2. the storage: a managed table
    for stmt in gen.create_storage(store, [(c["name"], c["type"]) for c in out]):
        _execute(stmt)
    storage = one("SELECT $1::regclass::oid::int AS o", store_full)["o"]
    iter_view = gen.iterator_view(storage).as_string()
    _execute(gen.rename_iterator_view(tmp_rel, storage))
    tables.manage(store_full, face=False)  # users query the joined view
    spec = {"call": call, "function": func["f"] if func else None, "view": f"{schema}.{rel}", "reads": deps}
    plpy.execute(plpy.prepare("UPDATE pxt.tables SET kind = 'view', base = $2, iterator = $3, comment = $4 "
                              "WHERE relid = $1", ["oid", "oid", "jsonb", "text"]),
                 [storage, base, json.dumps(spec), comment])
    plpy.execute(plpy.prepare("INSERT INTO pxt.iterator_views (storage, view_schema, view_name, base, call, iter_view) "
                              "VALUES ($1, $2, $3, $4, $5, $6::regclass)", ["oid", "name", "name", "oid", "text", "text"]),
                 [storage, schema, rel, base, call, iter_view])
    triggers.regenerate(storage)  # as a view now: its versions record the base's version that caused them

    # 3. the joined view users query, the maintenance functions and triggers
    sync(storage)
    if comment:
        _execute(gen.comment_on_view(view, comment))

    # 4. expand the rows the base already has
    expand_existing(storage)
    return full


def expand_existing(storage: int) -> int:
    e = iterator_entry(storage)
    base_full, base_rel = _relation(e["base"])
    total = one(gen.count_rows(base_rel).as_string())["n"]
    if not total:
        return 0
    plan = plpy.prepare(gen.expand_rows(storage).as_string(), ["bigint[]"])
    done = rows_ = 0
    cursor = plpy.cursor(gen.row_ids(base_rel).as_string())
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
    _execute(gen.drop_view(gen.rows_view(vkey(storage)), if_exists=True))  # quietly: pxt_internal's
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
    base = e["base"]
    (store_full, store_rel), (base_full, base_rel) = _relation(storage), _relation(base)
    iter_cols = {c["name"] for c in _columns(one("SELECT $1::regclass::oid::int AS o", e["iter_view"])["o"])}
    deps, _ = _deps(e["iter_view"], base)
    gone = [d for d in deps if d.startswith("_pxt_dropped_")]
    if gone:
        _fail(f"cannot drop a column of {base_full} that view {e['view_schema']}.{e['view_name']} iterates over "
                   f"({e['call']})", hint="drop the view first (pxt.drop_view)", sqlstate="2BP01")
    s_cols, b_cols = _columns(storage), _columns(base)
    _functions(storage, e, (store_full, store_rel), (base_full, base_rel),
               [c["name"] for c in _user(s_cols) if c["name"] in iter_cols], deps)
    _joined_view(storage, e, (store_full, store_rel), (base_full, base_rel), s_cols, b_cols)


def _functions(storage: int, e: dict, store: tuple[str, Identifier], base: tuple[str, Identifier],
               ins_cols: list[str], deps: list[str]) -> None:
    view_name = f"{e['view_schema']}.{e['view_name']}"
    # media written by pixelgres's own iterators (frames, segments it just encoded) need no
    # validation on insert: pxt_iter.trusted names the storage while they are written
    trusted = bool(one("SELECT bool_or(p.pronamespace = 'pxt'::regnamespace AND p.proretset) AS t FROM pg_depend d "
                       "JOIN pg_rewrite r ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid "
                       "JOIN pg_proc p ON d.refclassid = 'pg_proc'::regclass AND p.oid = d.refobjid "
                       "WHERE r.ev_class = $1::regclass", e["iter_view"])["t"])
    (store_full, store_rel), (base_full, base_rel) = store, base
    for stmt in gen.maintenance(storage, view_name, e["call"], store_rel, store_full, base_rel, base_full,
                                written_name(e["iter_view"]), ins_cols, deps, trusted):
        _execute(stmt)


def _joined_view(storage: int, e: dict, store: tuple[str, Identifier], base: tuple[str, Identifier],
                 s_cols: list[dict], b_cols: list[dict]) -> None:
    """The view users query: storage columns, then the base's (those not shadowed by one)."""
    mine = _user(s_cols)
    names = {c["name"] for c in mine}
    theirs = [c for c in _user(b_cols) if c["name"] not in names]
    # (name, (side, column), type): side s for the storage, b for the base
    want = ([(c["name"], ("s", c["name"]), c["type"]) for c in mine] +
            [(c["name"], ("b", c["name"]), c["type"]) for c in theirs])
    (store_full, store_rel), (base_full, base_rel) = store, base
    _rows_view(storage, store_rel, base_rel, [x for _, x, _ in want])
    view = Identifier(e["view_schema"], e["view_name"])
    full = f"{q(e['view_schema'])}.{q(e['view_name'])}"  # for messages
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
    select = gen.joined_view_select(store_rel, base_rel, [x for _, x, _ in order])
    if oid and not replace:
        plpy.execute("SELECT set_config('pxt_iter.rebuilding', 'on', true)")
        try:
            _execute(gen.drop_view(view))
        except plpy.SPIError as ex:
            plpy.execute("SELECT set_config('pxt_iter.rebuilding', 'off', true)")
            plpy.warning(f"pixelgres: view {full} could not be rebuilt to follow a change of its columns: "
                         f"{ex.args[0] if ex.args else ex}", hint="drop the objects that depend on it and run "
                         + gen.refresh_hint(full))
            return
        plpy.execute("SELECT set_config('pxt_iter.rebuilding', 'off', true)")
    _execute(gen.create_joined_view(view, select))
    oid = _view_exists(e)
    note = f"pixelgres iterator view: {base_full} through {e['call']}; rows stored in {store_full}"
    _execute(gen.comment_on_view(view, note))
    if one("SELECT 1 AS x FROM pg_roles WHERE rolname = 'pxt_reader'"):
        _execute(gen.grant_reader(view))  # as its storage (tables.manage)
    _remember(storage, oid, e)


def _rows_view(storage: int, store: Identifier, base: Identifier, user: list[tuple[str, str]]) -> None:
    """The joined rows with the bookkeeping columns, for pxt.internal_relation (the client's
    insertion order and errors): made again whenever its columns change; nothing of the
    user's may depend on it."""
    cols = user + [("s", n) for n in ("_pxt_rowid", "_pxt_base_rowid", "_pxt_errors")]
    rows = gen.rows_view(vkey(storage))
    have = one("SELECT to_regclass($1)::oid::int AS o", rows.as_string())["o"]
    if have and [c["name"] for c in _columns(have)] == [n for _, n in cols]:
        return
    if have:
        _execute(gen.drop_view(rows))
    _execute(gen.create_joined_view(rows, gen.joined_view_select(store, base, cols)))
    if one("SELECT 1 AS x FROM pg_roles WHERE rolname = 'pxt_reader'"):
        _execute(gen.grant_reader(rows))


def sync_all() -> None:
    """ALTER EXTENSION UPDATE (sql/functions/95_faces.sql): every view's relations as this release makes them."""
    for r in plpy.execute("SELECT storage::oid::int AS s FROM pxt.iterator_views ORDER BY 1"):
        sync(r["s"])


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
            for stmt in gen.drop_functions(s):
                _execute(stmt)
            if e["v"] and one("SELECT 1 AS x FROM pg_class WHERE oid = $1", e["v"], types=["oid"]):
                joined = one("SELECT $1::regclass::text AS n", e["v"], types=["oid"])["n"]
                _execute(gen.drop_view(written_name(joined), if_exists=True))
            plpy.execute(plpy.prepare("DELETE FROM pxt.iterator_views WHERE storage = $1", ["oid"]), [s])
        elif e["b"] in dropped or e["i"] in dropped or (e["v"] in dropped and tag == "DROP VIEW"):
            if one("SELECT 1 AS x FROM pg_class WHERE oid = $1", s, types=["oid"]):
                _execute(gen.drop_table_cascade(written_name(qualified(s))))
