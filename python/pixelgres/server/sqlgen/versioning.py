"""The SQL of versioning (server/versioning: history, revert, vacuum), generated from plain data.

Pure functions: the versioning modules read the catalog (names, columns, versions) and pass
what they found; these return Composables (``.as_string()`` is the text) and never touch a
database. Relations are ``Identifier`` objects or ``(schema, name)`` tuples, columns are
``Column`` values (``Column.of`` takes a catalog row), versions are ints — a version given as
text or float raises TypeError rather than being pasted.

Every identifier is quoted and every value is a Literal, so a column named ``a"b; DROP`` is
just a column. The fixed names (``_pxt_rowid``, ``_pxt_v``, ``pxt.tables``...) are written
out in the SQL text. The statements and their order are those the versioning modules ran
before they used this module; only the quoting of identifiers differs.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from .compose import SQL, Composable, Composed, Identifier, Literal, TypeName

Relation = Identifier | tuple[str, str]


# --- inputs ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Column:
    """A column of a managed table: its name, its type as format_type() writes it and, for a
    column of the live table, its attnum (which names its history column ``c<attnum>``)."""
    name: str
    type: str | None = None
    attnum: int | None = None

    def __post_init__(self):
        Identifier(self.name)  # refuses what PostgreSQL could not name
        if self.attnum is not None:
            _int(self.attnum, "attnum")
        # the type is checked where SQL uses it (type_sql): most statements do not

    @classmethod
    def of(cls, row: Mapping) -> Column:
        """From a catalog row with ``name`` and, if known, ``type`` and ``attnum``."""
        return cls(row["name"], row.get("type"), row.get("attnum"))

    @property
    def ident(self) -> Identifier:
        return Identifier(self.name)

    @property
    def hist(self) -> Identifier:
        """Its column in the history table."""
        if self.attnum is None:
            raise ValueError(f"column {self.name!r} has no attnum: it has no history column")
        return history_column(self.attnum)

    @property
    def type_sql(self) -> TypeName:
        if self.type is None:
            raise ValueError(f"column {self.name!r} has no type")
        return TypeName(self.type)


def relation(r: Relation) -> Identifier:
    if isinstance(r, Identifier):
        return r
    if isinstance(r, tuple) and len(r) == 2:
        return Identifier(*r)
    raise TypeError(f"a relation is an Identifier or a (schema, name) tuple, not {r!r}")


def _int(v, what: str = "version") -> Literal:
    if type(v) is not int:
        raise TypeError(f"{what} must be an int, not {type(v).__name__}: {v!r}")
    return Literal(v)


def _each(prefix: SQL, parts: Iterable[Composable]) -> Composed:
    """``prefix`` before each part: ", a, b" for optional tails of column lists."""
    return Composed([prefix + p for p in parts])


# --- generated objects' names (pxt.tables.vkey keys them; see catalog.hist_name) ----------------
def _vkey(vkey: str) -> str:
    if type(vkey) is not str or not vkey:
        raise ValueError(f"invalid vkey {vkey!r}")
    return vkey


def history_table(vkey: str) -> Identifier:
    return Identifier("pxt_internal", "hist_" + _vkey(vkey))


def overlay_table(snapshot_vkey: str) -> Identifier:
    """A snapshot's own rows, once a revert took them from its base's history."""
    return Identifier("pxt_internal", "snap_" + _vkey(snapshot_vkey))


def version_function(vkey: str) -> Identifier:
    return Identifier("pxt_internal", "ver_" + _vkey(vkey))


def version_setting(vkey: str) -> str:
    """The transaction setting holding the version the current statement writes."""
    return "pxt_v." + _vkey(vkey)


def history_column_name(attnum: int) -> str:
    _int(attnum, "attnum")
    return "c" + str(attnum)


def history_column(attnum: int) -> Identifier:
    return Identifier(history_column_name(attnum))


# --- history table -------------------------------------------------------------------------
def create_history_table(h: Relation) -> list[Composed]:
    h = relation(h)
    return [
        SQL("CREATE TABLE {} (_pxt_rowid bigint NOT NULL, _pxt_v integer NOT NULL, "
            "_pxt_v_to integer NOT NULL)").format(h),
        SQL("CREATE INDEX ON {} USING brin (_pxt_v_to)").format(h),  # revert; time travel scans
        SQL("GRANT SELECT ON {} TO pxt_reader").format(h),
    ]


def add_history_columns(h: Relation, columns: Sequence[Column], existing: Iterable[str]) -> list[Composed]:
    """A history column for each live column that has none yet (``existing``: its column names)."""
    have = set(existing)
    return [SQL("ALTER TABLE {} ADD COLUMN {} {}").format(relation(h), c.hist, c.type_sql)
            for c in columns if history_column_name(c.attnum) not in have]


# --- version triggers ------------------------------------------------------------------------
# The body of a table's version trigger function (history.py's module docstring explains it).
_TRIGGER_BODY = SQL("""
DECLARE
  v integer := nullif(current_setting({setting}, true), '')::integer;
  n bigint;
  e bigint := 0;
  caused integer;
BEGIN
  IF current_setting('pixelgres.replaying', true) = 'on' OR \
coalesce(current_setting('pixelgres.recompute', true), '') <> '' OR \
current_setting('pxt_v.internal', true) = 'on' THEN RETURN NULL; END IF;
  IF TG_WHEN = 'BEFORE' THEN
    UPDATE pxt.tables SET version = version + 1 WHERE relid = TG_RELID RETURNING version INTO v;
    PERFORM set_config({setting}, v::text, true);
    {before_insert}
    RETURN NULL;
  END IF;
  IF TG_OP = 'INSERT' THEN
    {count_inserts}
  ELSIF TG_OP = 'UPDATE' THEN
    INSERT INTO {h} (_pxt_rowid, _pxt_v, _pxt_v_to{hcols})
      SELECT o._pxt_rowid, o._pxt_v, v{ocols} FROM pxt_old o WHERE o._pxt_v < v;
    GET DIAGNOSTICS n = ROW_COUNT;
    {count_update_errors}
  ELSE
    INSERT INTO {h} (_pxt_rowid, _pxt_v, _pxt_v_to{hcols})
      SELECT o._pxt_rowid, o._pxt_v, v{ocols} FROM pxt_old o WHERE o._pxt_v < v;
    GET DIAGNOSTICS n = ROW_COUNT;
  END IF;
  IF n = 0 THEN  -- nothing changed: give the version number back (we hold the row lock)
    UPDATE pxt.tables SET version = version - 1 WHERE relid = TG_RELID AND version = v;
  ELSE
    {caused_by}
    INSERT INTO pxt.versions (relid, version, change_type, inserts, updates, deletes, errors, caused_by)
    VALUES (TG_RELID, v, 'data', CASE WHEN TG_OP = 'INSERT' THEN n ELSE 0 END,
            CASE WHEN TG_OP = 'UPDATE' THEN n ELSE 0 END, CASE WHEN TG_OP = 'DELETE' THEN n ELSE 0 END, e, caused);
  END IF;
  RETURN NULL;
END""")

# event, trigger name suffix, transition tables of its AFTER trigger
_EVENTS = (
    (SQL("INSERT"), "insert", SQL("NEW TABLE AS pxt_new")),
    (SQL("UPDATE"), "update", SQL("OLD TABLE AS pxt_old NEW TABLE AS pxt_new")),
    (SQL("DELETE"), "delete", SQL("OLD TABLE AS pxt_old")),
)


# an iterator view's rows are written by its base's statement: remember which version
_CAUSED_BY = SQL("""SELECT nullif(current_setting('pxt_v.' || b.vkey, true), '')::integer INTO caused
      FROM pxt.tables s JOIN pxt.tables b ON b.relid = s.base WHERE s.relid = TG_RELID AND s.kind = 'view';""")
_UPDATE_ERRORS = SQL("SELECT count(*) INTO e FROM pxt_new t WHERE t._pxt_errors IS NOT NULL;")


def trigger_body(table: Relation, vkey: str, columns: Sequence[Column], late_errors: bool,
                 records_errors: bool = True, iterator_view: bool = True) -> Composed:
    """The plpgsql body of the version trigger function. ``late_errors``: batched columns
    record errors after the rows were captured, so count them in the table.
    ``records_errors``: some column may record errors (on_error => 'ignore'). When none can,
    an insert's rows are counted from the transaction's insert counter, read before and
    after the statement, instead of from a transition table that copies every row, and an
    update has no NEW TABLE to count errors in (W5). ``iterator_view``: the table may be an
    iterator view, whose versions record the base's version that caused them (a query per
    statement that other tables skip)."""
    caused = _CAUSED_BY if iterator_view else SQL("")
    if not records_errors:
        started = Literal(version_setting(vkey) + "_ins")
        return _TRIGGER_BODY.format(
            setting=Literal(version_setting(vkey)), h=history_table(vkey), caused_by=caused,
            count_update_errors=SQL(""),
            before_insert=SQL("IF TG_OP = 'INSERT' THEN "
                              "IF NOT current_setting('track_counts')::boolean THEN RAISE EXCEPTION USING "
                              "ERRCODE = '55000', MESSAGE = 'pixelgres: inserts into a versioned table need "
                              "track_counts = on (the version log counts their rows with it)'; END IF; "
                              "PERFORM set_config({}, pg_stat_get_xact_tuples_inserted(TG_RELID)::text, true); "
                              "END IF;").format(started),
            count_inserts=SQL("n := pg_stat_get_xact_tuples_inserted(TG_RELID) - current_setting({})::bigint;").format(
                started),
            hcols=_each(SQL(", "), [c.hist for c in columns]),
            ocols=_each(SQL(", o."), [c.ident for c in columns]))
    if late_errors:
        errors = SQL("(SELECT t._pxt_errors IS NOT NULL FROM {} t WHERE t._pxt_rowid = n._pxt_rowid)").format(
            relation(table))
    else:
        errors = SQL("n._pxt_errors IS NOT NULL")
    return _TRIGGER_BODY.format(
        setting=Literal(version_setting(vkey)), h=history_table(vkey), before_insert=SQL(""),
        caused_by=caused, count_update_errors=_UPDATE_ERRORS,
        count_inserts=SQL("SELECT count(*), count(*) FILTER (WHERE {}) INTO n, e FROM pxt_new n;").format(errors),
        hcols=_each(SQL(", "), [c.hist for c in columns]),
        ocols=_each(SQL(", o."), [c.ident for c in columns]))


def trigger_statements(table: Relation, vkey: str, columns: Sequence[Column], late_errors: bool,
                       records_errors: bool = True, iterator_view: bool = True) -> list[Composed]:
    """Statements (re)creating a table's version trigger function and its triggers, in order."""
    table, fn = relation(table), version_function(vkey)
    body = trigger_body(table, vkey, columns, late_errors, records_errors, iterator_view)
    # SECURITY DEFINER: anyone allowed to write the table gets its versions recorded (history
    # table, version log) as the table's owner; the body is fixed, schema-qualified SQL.
    out = [SQL("CREATE OR REPLACE FUNCTION {}() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER "
               "SET search_path = pg_catalog, pg_temp AS {}").format(fn, Literal(body.as_string())),
           # inserted rows take the statement's version from a default: no row trigger needed
           SQL("ALTER TABLE {} ALTER COLUMN _pxt_v SET DEFAULT "
               "pxt._version_of({})").format(
               table, Literal(version_setting(vkey)))]
    for event, suffix, transition in _EVENTS:
        out.append(SQL("CREATE OR REPLACE TRIGGER {} BEFORE {} ON {} FOR EACH STATEMENT EXECUTE FUNCTION {}()").format(
            Identifier("pxt_version_begin_" + suffix), event, table, fn))
        if suffix == "update" and not records_errors:  # no errors to count in the new rows
            transition = SQL("OLD TABLE AS pxt_old")
        if suffix == "insert" and not records_errors:  # counted, not captured (trigger_body)
            out.append(SQL("CREATE OR REPLACE TRIGGER {} AFTER {} ON {} "
                           "FOR EACH STATEMENT EXECUTE FUNCTION {}()").format(
                Identifier("pxt_version_end_" + suffix), event, table, fn))
            continue
        out.append(SQL("CREATE OR REPLACE TRIGGER {} AFTER {} ON {} REFERENCING {} "
                       "FOR EACH STATEMENT EXECUTE FUNCTION {}()").format(
            Identifier("pxt_version_end_" + suffix), event, table, transition, fn))
    out.append(SQL("CREATE OR REPLACE TRIGGER pxt_guard_version BEFORE UPDATE OF _pxt_v ON {} "
                   "FOR EACH STATEMENT EXECUTE FUNCTION pxt._guard_version()").format(table))
    return out


# --- time travel and snapshots ---------------------------------------------------------------
def version_select(table: Relation, h: Relation, schema: Sequence[Column], physical: Mapping[int, str],
                   n: int) -> Composed:
    """SELECT of the rows and columns (as named then) live at version ``n``. ``schema``: the
    columns the version log records for ``n`` (attnum, name, type); ``physical``: attnum ->
    name of the table's attributes now (a column vacuumed since is NULL of its type)."""
    table, h, ns = relation(table), relation(h), _int(n)
    live, hist = [SQL("_pxt_rowid")], [SQL("_pxt_rowid")]
    for c in schema:
        if c.attnum in physical:
            live.append(SQL("{} AS {}").format(Identifier(physical[c.attnum]), c.ident))
            hist.append(SQL("{} AS {}").format(c.hist, c.ident))
        else:  # physically gone (vacuumed): keep the column, without values
            gone = SQL("NULL::{} AS {}").format(c.type_sql, c.ident)
            live.append(gone)
            hist.append(gone)
    # live rows inserted by n and not replaced since; history entries live at n (a row version
    # starts where the row's previous entry ended, or at its insert)
    return SQL("SELECT {live} FROM ONLY {table} t WHERE t._pxt_v <= {n} AND NOT EXISTS "
               "(SELECT 1 FROM {h} x WHERE x._pxt_rowid = t._pxt_rowid AND x._pxt_v_to > {n}) UNION ALL "
               "SELECT {hist} FROM (SELECT *, coalesce(lag(_pxt_v_to) OVER (PARTITION BY _pxt_rowid "
               "ORDER BY _pxt_v_to), _pxt_v) AS pxt_start FROM {h} WHERE _pxt_v <= {n}) s "
               "WHERE s.pxt_start <= {n} AND s._pxt_v_to > {n}").format(
        live=SQL(", ").join(live), table=table, n=ns, h=h, hist=SQL(", ").join(hist))


def snapshot_comment(table: str, n: int) -> str:
    """The comment on a snapshot view (``table`` as the user reads it)."""
    _int(n)
    return "pixelgres snapshot of " + table + " at version " + str(n)


def create_snapshot(view: Relation, select: Composable, comment: str) -> list[Composed]:
    view = relation(view)
    return [SQL("CREATE VIEW {} AS {}").format(view, select),
            SQL("GRANT SELECT ON {} TO pxt_reader").format(view),
            SQL("COMMENT ON VIEW {} IS {}").format(view, Literal(comment))]


def drop_snapshot(view: Relation) -> Composed:
    return SQL("DROP VIEW {}").format(relation(view))


def drop_overlay(overlay: Relation) -> Composed:
    """A dropped snapshot's overlay table, when the drop's event trigger left it."""
    return SQL("DROP TABLE {}").format(relation(overlay))


def create_temp_view(name: str, select: Composable) -> Composed:
    """Time travel's ``<table>@<version>`` view."""
    return SQL("CREATE OR REPLACE TEMP VIEW {} AS {}").format(Identifier(name), select)


# --- revert ----------------------------------------------------------------------------------
def inserted_rows(table: Relation, v: int, k: int | None = None) -> Composed:
    """The rowids of the live rows version ``v`` inserted (``_pxt_v = v``). With ``k``, the
    number the version log recorded, among the ``k`` highest rowids only, through the primary
    key: rowids come from the table's sequence, so the rows of the latest version have the
    highest (revert checks that all ``k`` are found there, and scans the table if not).
    No index on ``_pxt_v`` is needed, so inserts and updates maintain none (W5)."""
    table, vs = relation(table), _int(v)
    if k is None:
        return SQL("SELECT _pxt_rowid FROM ONLY {} WHERE _pxt_v = {}").format(table, vs)
    return SQL("SELECT r._pxt_rowid FROM (SELECT _pxt_rowid, _pxt_v FROM ONLY {} ORDER BY _pxt_rowid DESC "
               "LIMIT {}) r WHERE r._pxt_v = {}").format(table, _int(k, "row count"), vs)


def count_rows(select: Composable) -> Composed:
    return SQL("SELECT count(*) AS n FROM ({}) s").format(select)


def revert_data(table: Relation, h: Relation, columns: Sequence[Column], v: int,
                inserted: Composable | None) -> list[Composed]:
    """Undo data version ``v``: delete the rows it inserted (``inserted``: their rowids, from
    ``inserted_rows``; None when it inserted none), restore the rows it updated (from their
    history entries ending at ``v``) and re-insert those it deleted; drop those entries."""
    table, h, vs = relation(table), relation(h), _int(v)
    out = []
    if inserted is not None:
        out.append(SQL("DELETE FROM ONLY {t} t WHERE t._pxt_rowid IN ({ins}) AND NOT EXISTS "
                       "(SELECT 1 FROM {h} h WHERE h._pxt_rowid = t._pxt_rowid AND h._pxt_v_to = {v})").format(
            t=table, ins=inserted, h=h, v=vs))
    if columns:  # without columns no row has anything to restore (and SET would have nothing)
        sets = SQL(", ").join(SQL("{} = h.{}").format(c.ident, c.hist) for c in columns)
        out.append(SQL("UPDATE ONLY {t} t SET {sets} FROM {h} h "
                       "WHERE h._pxt_rowid = t._pxt_rowid AND h._pxt_v_to = {v}").format(t=table, sets=sets, h=h, v=vs))
    names = SQL(", ").join([c.ident for c in columns] + [SQL("_pxt_rowid"), SQL("_pxt_v")])
    vals = SQL(", ").join([SQL("h.") + c.hist for c in columns] + [SQL("h._pxt_rowid"), SQL("h._pxt_v")])
    out.append(SQL("INSERT INTO {t} ({names}) OVERRIDING SYSTEM VALUE SELECT {vals} FROM {h} h "
                   "WHERE h._pxt_v_to = {v} AND NOT EXISTS (SELECT 1 FROM ONLY {t} t WHERE t._pxt_rowid = h._pxt_rowid)"
                   ).format(t=table, names=names, vals=vals, h=h, v=vs))
    out.append(SQL("DELETE FROM {} WHERE _pxt_v_to = {}").format(h, vs))
    return out


def revert_add_column(table: Relation, h: Relation, column: str, attnum: int,
                      expr_view: Relation | None = None) -> list[Composed]:
    """Undo an added column: its expression view (if any), the column, its history column."""
    out = [SQL("DROP VIEW {}").format(relation(expr_view))] if expr_view is not None else []
    out.append(SQL("ALTER TABLE {} DROP COLUMN {} CASCADE").format(relation(table), Identifier(column)))
    out.append(SQL("ALTER TABLE {} DROP COLUMN IF EXISTS {}").format(relation(h), history_column(attnum)))
    return out


def rename_column(table: Relation, old: str, new: str) -> Composed:
    return SQL("ALTER TABLE {} RENAME COLUMN {} TO {}").format(relation(table), Identifier(old), Identifier(new))


def create_overlay(overlay: Relation, columns: Sequence[Column], snapshot: str, owner: str) -> list[Composed]:
    """A snapshot's overlay table, with the snapshot's columns (``snapshot``: its name as the
    user reads it, for the comment), owned by the snapshot's owner."""
    overlay = relation(overlay)
    defs = _each(SQL(", "), [SQL("{} {}").format(c.ident, c.type_sql) for c in columns])
    return [SQL("CREATE TABLE {} (_pxt_rowid bigint PRIMARY KEY, _pxt_present boolean NOT NULL{})").format(overlay, defs),
            SQL("COMMENT ON TABLE {} IS {}").format(
                overlay, Literal("pixelgres: rows of snapshot " + snapshot + " no longer in its base history")),
            SQL("ALTER TABLE {} OWNER TO {}").format(overlay, Identifier(owner))]


def overlay_missing_ids(table: Relation, h: Relation, overlay: Relation, v: int, inserted: Composable | None) -> Composed:
    """Rows version ``v`` changed (inserted: ``inserted_rows``, or ended a history entry) that
    the overlay lacks."""
    ins = SQL("{} UNION ").format(inserted) if inserted is not None else SQL("")
    return SQL("SELECT id FROM ({ins}SELECT _pxt_rowid FROM {h} WHERE _pxt_v_to = {v}) d(id) "
               "WHERE NOT EXISTS (SELECT 1 FROM {o} o WHERE o._pxt_rowid = d.id)").format(
        ins=ins, v=_int(v), h=relation(h), o=relation(overlay))


def overlay_take_rows(overlay: Relation, snapshot: Relation, columns: Sequence[Column]) -> Composed:
    """Copy the rows ``$1`` (bigint[]) into the overlay as the snapshot shows them, and a
    tombstone for each it does not show. A statement to prepare with one bigint[] parameter."""
    overlay = relation(overlay)
    return SQL("INSERT INTO {o} (_pxt_rowid, _pxt_present{names}) "
               "SELECT d.id, s._pxt_rowid IS NOT NULL{values} "
               "FROM unnest($1::bigint[]) d(id) LEFT JOIN (SELECT * FROM {s} WHERE _pxt_rowid = ANY($1)) s "
               "ON s._pxt_rowid = d.id").format(
        o=overlay, names=_each(SQL(", "), [c.ident for c in columns]),
        values=_each(SQL(", s."), [c.ident for c in columns]), s=relation(snapshot))


def overlay_take_all(overlay: Relation, snapshot: Relation, columns: Sequence[Column]) -> Composed:
    """Copy every row of the snapshot that the overlay lacks."""
    overlay = relation(overlay)
    return SQL("INSERT INTO {o} (_pxt_rowid, _pxt_present{names}) "
               "SELECT s._pxt_rowid, true{values} FROM {s} s "
               "WHERE NOT EXISTS (SELECT 1 FROM {o} o WHERE o._pxt_rowid = s._pxt_rowid)").format(
        o=overlay, names=_each(SQL(", "), [c.ident for c in columns]),
        values=_each(SQL(", s."), [c.ident for c in columns]), s=relation(snapshot))


def snapshot_over_overlay(snapshot: Relation, overlay: Relation, columns: Sequence[Column],
                          pinned: Composable | None) -> Composed:
    """Redefine a snapshot as its overlay's present rows, plus, when it still reads its base,
    the rows of ``pinned`` (the base at the version it now pins) the overlay does not hold."""
    overlay = relation(overlay)
    own = SQL("SELECT _pxt_rowid{} FROM {} WHERE _pxt_present").format(
        _each(SQL(", "), [c.ident for c in columns]), overlay)
    if pinned is not None:
        own = SQL("SELECT b.* FROM ({}) b WHERE NOT EXISTS "
                  "(SELECT 1 FROM {} o WHERE o._pxt_rowid = b._pxt_rowid) UNION ALL {}").format(pinned, overlay, own)
    return SQL("CREATE OR REPLACE VIEW {} AS {}").format(relation(snapshot), own)


# --- retention ---------------------------------------------------------------------------------
def delete_history_through(h: Relation, cutoff: int) -> Composed:
    """Forget the row versions that ended at or before ``cutoff``."""
    return SQL("DELETE FROM {} WHERE _pxt_v_to <= {}").format(relation(h), _int(cutoff, "cutoff"))


def drop_dropped_column(table: Relation, attnum: int) -> Composed:
    """Drop for good the soft-dropped column of attnum ``attnum`` (``_pxt_dropped_<attnum>``)."""
    _int(attnum, "attnum")
    return SQL("ALTER TABLE {} DROP COLUMN IF EXISTS {}").format(relation(table), Identifier("_pxt_dropped_" + str(attnum)))


def media_references(table: Relation, h: Relation | None, column: Column) -> Composed:
    """Distinct ``media://`` and object-store values of a column, in the live table and (given
    ``h``) its history."""
    parts = [SQL("SELECT {}::text AS r FROM ONLY {}").format(column.ident, relation(table))]
    if h is not None:
        parts.append(SQL("SELECT {}::text FROM {}").format(column.hist, relation(h)))
    return SQL("SELECT DISTINCT r FROM ({}) s WHERE r LIKE 'media://%' OR r ~ '^(s3|gs|az|abfss?|r2)://'").format(
        SQL(" UNION ALL ").join(parts))


def overlay_media_references(overlay: Relation, column: str) -> Composed:
    """Distinct ``media://`` and object-store values of a column of a snapshot's overlay."""
    c = Identifier(column)
    return SQL("SELECT DISTINCT {c}::text AS r FROM {o} WHERE {c}::text LIKE 'media://%' "
               "OR {c}::text ~ '^(s3|gs|az|abfss?|r2)://'").format(c=c, o=relation(overlay))
