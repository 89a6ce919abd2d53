"""The SQL of managed tables and computed columns (server/ddl: tables, exprs, triggers),
generated from plain data.

Pure functions: the ddl modules read the catalog (names, column definitions, the types whose
``=`` is pg_catalog's) and pass what they found; these return Composables (``.as_string()``
is the text) and never touch a database. Relations are ``Identifier`` objects or
``(schema, name)`` tuples; a name read back from PostgreSQL in its quote_ident form
(``format('%I.%I', ...)``, ``regclass::text``) becomes one with ``parse_name``. Column names
are str and always quoted; values are Literals. A plain str where SQL is expected raises.

Three kinds of text reach SQL without being an identifier or a literal, each through its own
composable, whose constructor is the check:

* ``ColumnType``: a column type as users write it (``int``, ``varchar(20)``, ``DOUBLE
  PRECISION``), after ``tables.resolve_type`` found it with to_regtype: a name, the words of
  PostgreSQL's type grammar, ``(n[, m])`` and ``[]``, nothing else. Types PostgreSQL wrote
  (``format_type``) are ``TypeName``.
* ``Expression``: a user's computed-column expression, accepted only if ``scan_expression``
  (a strict lexer of a subset of PostgreSQL's expression syntax) accepts it. It only ever
  goes into the probe view that PostgreSQL parses and types (``create_expression_view``).
* ``Deparsed``: PostgreSQL's own deparse of such a view. That, never the user's text, is
  what the generated trigger functions contain.

The statements and their order are those the ddl modules ran before they used this module;
only the quoting of identifiers differs (always double-quoted here).
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .compose import SQL, Composable, Composed, Identifier, Literal, TrustedExpression, TypeName, written_name

Relation = Identifier | tuple[str, str]

FN_SCHEMA = "pxt_internal"  # generated trigger functions and expression views live here


# --- inputs ------------------------------------------------------------------------------------
def relation(r: Relation) -> Identifier:
    if isinstance(r, Identifier):
        return r
    if isinstance(r, tuple) and len(r) == 2:
        return Identifier(*r)
    raise TypeError(f"a relation is an Identifier or a (schema, name) tuple, not {r!r}")


def _int(v, what: str) -> int:
    if type(v) is not int:
        raise TypeError(f"{what} must be an int, not {type(v).__name__}: {v!r}")
    return v


def _name(v, what: str = "column name") -> str:
    if type(v) is not str:
        raise TypeError(f"{what} must be a str, not {type(v).__name__}: {v!r}")
    return v


parse_name = written_name  # a relation's name as PostgreSQL writes it back, as an Identifier


# Column types as pxt.create_table and pxt.add_column accept them (tables.resolve_type also asks
# to_regtype): a (qualified) name, optional (n) or (n, m), optional [].
TYPE_SPEC = re.compile(r"^[A-Za-z_][A-Za-z0-9_ .]*(\(\s*\d+\s*(,\s*\d+\s*)?\))?(\[\])?$")
# the words after the first that PostgreSQL's grammar spells type names with
_TYPE_SPEC_WORDS = {"precision", "varying", "character", "char", "with", "without", "time", "zone", "to",
                    "year", "month", "day", "hour", "minute", "second", "array"}


class ColumnType(Composable):
    """A column type as a user wrote it (``int``, ``varchar( 20 )``, ``DOUBLE PRECISION``,
    ``pxt.image``, ``text[]``), once ``TYPE_SPEC`` matches it: letters, digits, ``_``, dots and
    spaces, then ``(n)`` or ``(n, m)``, then ``[]`` — no quote, semicolon, comment or operator
    can occur. The words after the first must be words of PostgreSQL's type grammar
    (``double precision``, ``character varying``, ``timestamp with time zone``, ``int array``),
    so no column constraint (``NOT NULL``, ``REFERENCES ...``) can ride along either."""

    def __init__(self, text: str):
        m = TYPE_SPEC.match(text) if type(text) is str else None
        if not m or m.end() != len(text):  # ($ would let a final newline through)
            raise ValueError(f"not a column type: {text!r}")
        head = re.sub(r"\s*\.\s*", ".", re.split(r"[(\[]", text, maxsplit=1)[0]).split()
        if not head or any(w.lower() not in _TYPE_SPEC_WORDS for w in head[1:]):
            raise ValueError(f"not a column type: {text!r}")
        self.text = text

    def as_string(self) -> str:
        return self.text


def _type(t) -> Composable:
    if not isinstance(t, (ColumnType, TypeName)):
        raise TypeError(f"a column type is a ColumnType or TypeName, not {type(t).__name__}: {t!r}")
    return t


# --- computed-column expressions -------------------------------------------------------------
FORBIDDEN_WORDS = {"select", "from", "with", "into", "insert", "update", "delete", "merge",
                   "returning", "union", "intersect", "except", "table", "values", "lateral",
                   "create", "drop", "alter", "grant", "revoke", "copy", "do", "call", "execute"}


class ExpressionError(ValueError):
    """``scan_expression`` refused an expression; the message says why."""


def scan_expression(expr: str) -> None:
    """Accept only a subset of PostgreSQL's expression syntax (exprs.py explains why): plain
    '...' strings and "..." identifiers (no E'', U&'' or $$ quoting, no backslashes), no ';',
    no comments, parentheses that never close more than they open, and no SELECT/FROM/...
    keywords (no subqueries). Raises ExpressionError otherwise."""
    if not isinstance(expr, str) or not expr.strip():
        raise ExpressionError("computed column expression must be non-empty SQL text")
    if len(expr) > 100_000:
        raise ExpressionError("computed column expression is too long")
    depth, i, n = 0, 0, len(expr)
    while i < n:
        c = expr[i]
        if c in "'\"":
            j = i + 1
            while True:
                j = expr.find(c, j)
                if j < 0:
                    raise ExpressionError(f"unterminated {'string' if c == chr(39) else 'identifier'} in expression")
                if j + 1 < n and expr[j + 1] == c:  # doubled quote
                    j += 2
                    continue
                break
            if i > 0 and expr[i - 1] in "eEuU&" and c == "'" and (i < 2 or not (expr[i - 2].isalnum() or expr[i - 2] == "_")):
                raise ExpressionError("E'' and U&'' strings are not accepted in expressions; use plain '...' strings")
            i = j + 1
            continue
        if c == ";":
            raise ExpressionError("';' is not allowed in an expression")
        if c == "\\" or c == "$":
            raise ExpressionError(f"{c!r} is not allowed in an expression (use plain '...' strings)")
        if expr.startswith("--", i) or expr.startswith("/*", i):
            raise ExpressionError("comments are not allowed in an expression")
        if c == "(" or c == "[":
            depth += 1
        elif c == ")" or c == "]":
            depth -= 1
            if depth < 0:
                raise ExpressionError("unbalanced parentheses in expression")
        elif c.isalpha() or c == "_":
            j = i
            while j < n and (expr[j].isalnum() or expr[j] in "_$"):
                j += 1
            if expr[i:j].lower() in FORBIDDEN_WORDS:
                raise ExpressionError(f"{expr[i:j]!r}: subqueries and statements are not allowed in a computed "
                                      "column expression")
            i = j
            continue
        i += 1
    if depth != 0:
        raise ExpressionError("unbalanced parentheses in expression")


class Expression(Composable):
    """A user's computed-column expression, as typed, once ``scan_expression`` accepted it
    (the constructor scans; ExpressionError otherwise). Its only use is the probe view
    (``create_expression_view``), inside parentheses, where PostgreSQL parses and types it:
    the scan makes sure PostgreSQL's lexer and ours agree on where it ends, and the view's
    statement is prepared alone (plpy.prepare refuses a second statement)."""

    def __init__(self, text: str):
        scan_expression(text)
        self.text = text

    def as_string(self) -> str:
        return self.text


class Deparsed(Composable):
    """An expression as PostgreSQL itself deparsed it: the select-list item of
    ``pg_get_viewdef`` of a computed column's probe view (exprs.analyze; only it builds one).

    Trusted SQL, and the only text the generated trigger functions hold that is neither ours
    nor an identifier or a literal. It is safe because PostgreSQL wrote it, not a user: the
    user's text (an ``Expression``) was parsed into a view, and what comes back is
    PostgreSQL's rendering of that parse tree — one expression, every name quoted where it
    must be and schema-qualified (deparsed with only pg_catalog on the search_path), every
    constant a quoted literal — which PostgreSQL reads back as the same tree. Never give it
    anything else: it checks only that it holds text."""

    def __init__(self, text: str):
        if type(text) is not str:
            raise TypeError(f"Deparsed takes the text pg_get_viewdef wrote, not {type(text).__name__}")
        if not text.strip():
            raise ValueError("empty deparsed expression")
        if "\0" in text:
            raise ValueError("deparsed expression with a NUL character")
        self.text = text

    def as_string(self) -> str:
        return self.text


def cast_to_text(expr: Deparsed) -> Composed:
    """An expression of type unknown (a bare string constant) as text."""
    if not isinstance(expr, Deparsed):
        raise TypeError(f"cast_to_text takes a Deparsed expression, not {type(expr).__name__}")
    return SQL("({})::text").format(expr)


def expression_view(seq: int) -> Identifier:
    """The probe view of a computed column's expression (``seq``: from pxt_internal.expr_seq)."""
    return Identifier(FN_SCHEMA, "expr_" + str(_int(seq, "seq")))


def create_expression_view(view: Relation, table: Relation, expr: Expression) -> Composed:
    """The probe view: ``expr`` over the table aliased ``pxt_row`` (exprs.py). The VALUES
    probe is the marker exprs._strip finds in the deparse."""
    if not isinstance(expr, Expression):
        raise TypeError(f"create_expression_view takes an Expression, not {type(expr).__name__}")
    return SQL("CREATE VIEW {} AS SELECT ({}) AS pxt_value FROM ONLY {} pxt_row, "
               "(VALUES (1)) pxt_probe(pxt_probe_unused)").format(relation(view), expr, relation(table))


# --- tables ------------------------------------------------------------------------------------
def create_table(table: Relation, columns: Sequence[tuple[str, ColumnType | TypeName]]) -> Composed:
    """A managed table: the user's columns (name, type), then rowid, errors and version."""
    defs = [SQL("{} {}").format(Identifier(_name(n)), _type(t)) for n, t in columns]
    defs.append(SQL("_pxt_rowid bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, _pxt_errors jsonb, "
                    "_pxt_v integer NOT NULL DEFAULT 0"))
    return SQL("CREATE TABLE {} ({})").format(relation(table), SQL(", ").join(defs))


def manage_table(table: Relation, have: Iterable[str]) -> list[Composed]:
    """Make an existing table managed: the system columns it lacks (``have``: its column
    names)."""
    table, have = relation(table), set(have)
    out = []
    if "_pxt_rowid" not in have:
        out.append(SQL("ALTER TABLE {} ADD COLUMN _pxt_rowid bigint GENERATED ALWAYS AS IDENTITY").format(table))
        out.append(SQL("CREATE UNIQUE INDEX ON {} (_pxt_rowid)").format(table))
    if "_pxt_errors" not in have:
        out.append(SQL("ALTER TABLE {} ADD COLUMN _pxt_errors jsonb").format(table))
    if "_pxt_v" not in have:
        out.append(SQL("ALTER TABLE {} ADD COLUMN _pxt_v integer NOT NULL DEFAULT 0").format(table))
    # No index on _pxt_v: revert finds a version's inserted rows through the primary key
    # (sqlgen.versioning.inserted_rows). A btree cost inserts 0.38x, a BRIN still 0.13x inserts
    # and 0.15x updates (W5); tables managed before keep theirs.
    return out


def grant_reader(table: Relation) -> Composed:
    return SQL("GRANT SELECT ON {} TO pxt_reader").format(relation(table))


def drop_table(table: Relation) -> Composed:
    return SQL("DROP TABLE {} CASCADE").format(relation(table))


def drop_view(view: Relation, if_exists: bool = False) -> Composed:
    if if_exists:
        return SQL("DROP VIEW IF EXISTS {}").format(relation(view))
    return SQL("DROP VIEW {}").format(relation(view))


def add_column(table: Relation, name: str, type_: ColumnType | TypeName) -> Composed:
    return SQL("ALTER TABLE {} ADD COLUMN {} {}").format(relation(table), Identifier(_name(name)), _type(type_))


def rename_column(table: Relation, old: str, new: str) -> Composed:
    return SQL("ALTER TABLE {} RENAME COLUMN {} TO {}").format(
        relation(table), Identifier(_name(old)), Identifier(_name(new)))


def dropped_column_name(attnum: int) -> str:
    """A dropped column keeps its data under this name until vacuum_history drops it."""
    return "_pxt_dropped_" + str(_int(attnum, "attnum"))


def soft_drop_column(table: Relation, name: str, attnum: int) -> Composed:
    return rename_column(table, name, dropped_column_name(attnum))


def undrop_column(table: Relation, attnum: int, name: str) -> Composed:
    return rename_column(table, dropped_column_name(attnum), name)


def errors_query(table: Relation) -> Composed:
    """Per row and computed column, the error recorded in ``_pxt_errors``."""
    return SQL("""
        SELECT t._pxt_rowid AS rowid, e.key AS "column", e.value->>'type' AS error_type,
               e.value->>'message' AS message, e.value->>'sqlstate' AS sqlstate
        FROM ONLY {} t, jsonb_each(t._pxt_errors) e
        WHERE t._pxt_errors IS NOT NULL ORDER BY 1, 2""").format(relation(table))


def status_query(table: Relation, columns: Sequence[str]) -> Composed:
    """One bigint[] ``a``: for each computed column, its pending (NULL, no error), computed
    and error counts, in that order."""
    aggs = []
    for c in columns:
        col, key = Identifier(_name(c)), Literal(c)
        aggs.append(SQL("count(*) FILTER (WHERE {col} IS NULL AND NOT coalesce(_pxt_errors ? {key}, false)), "
                        "count({col}), count(*) FILTER (WHERE _pxt_errors ? {key})").format(col=col, key=key))
    return SQL("SELECT ARRAY[{}]::bigint[] AS a FROM ONLY {}").format(SQL(", ").join(aggs), relation(table))


# --- computed-column triggers ------------------------------------------------------------------
# triggers.py's module docstring describes the two functions generated here.
@dataclass(frozen=True)
class ColumnDef:
    """A live column of a managed table as pxt.column_defs describes it (in its order:
    plain columns first, then computed ones by position, which is a dependency order).
    ``sql`` is a computed column's expression as PostgreSQL deparsed it (``Deparsed``, or a
    Composable built from one); ``deps`` the columns it reads."""
    name: str
    computed: bool = False
    sql: Composable | None = None
    deps: tuple[str, ...] = ()
    batched: bool = False
    deferred: bool = False
    on_error: str | None = None
    media_type: str | None = None
    destination: str | None = None  # a bucket prefix for the media it produces
    check_on_write: bool = True     # a media input's values are opened on insert (media_validation)

    def __post_init__(self):
        Identifier(_name(self.name))
        if self.sql is not None and not isinstance(self.sql, Composable):
            raise TypeError(f"a column's expression is Deparsed SQL, not {type(self.sql).__name__}: {self.sql!r}")
        if self.computed and self.sql is None:
            raise ValueError(f"computed column {self.name!r} has no expression")
        if isinstance(self.deps, str) or not all(type(d) is str for d in self.deps):
            raise TypeError(f"deps of {self.name!r} are column names: {self.deps!r}")
        object.__setattr__(self, "deps", tuple(self.deps))
        object.__setattr__(self, "batched", bool(self.batched))
        object.__setattr__(self, "deferred", bool(self.deferred))
        if self.media_type is not None:
            _name(self.media_type, "media type")

    @property
    def ident(self) -> Identifier:
        return Identifier(self.name)

    @property
    def ignores_errors(self) -> bool:
        return self.on_error == "ignore"

    @property
    def value(self) -> Composable:
        """The SQL of the value stored: the expression, put in the column's destination if it has one."""
        if self.destination is None:
            return self.sql
        return SQL("pxt._to_destination(({})::text, {}, {})").format(
            self.sql, Literal(self.destination), Literal(f"column {self.name}"))


@dataclass(frozen=True)
class TriggerTable:
    """What the trigger functions of a managed table are generated from: the table (for SQL),
    its name as users read it (for messages), its oid (iterators mark the media they write
    with it), its vkey (names the functions), its columns, and the names of those whose type
    compares with a pg_catalog ``=`` (the others are compared as text: the functions do not
    pin search_path)."""
    table: Relation
    name: str
    relid: int
    vkey: str
    columns: tuple[ColumnDef, ...]
    plain_eq: frozenset[str] = frozenset()

    def __post_init__(self):
        object.__setattr__(self, "table", relation(self.table))
        _name(self.name, "table name")
        _int(self.relid, "relid")
        if type(self.vkey) is not str or not self.vkey:
            raise ValueError(f"invalid vkey {self.vkey!r}")
        cols = tuple(self.columns)
        if not all(isinstance(c, ColumnDef) for c in cols):
            raise TypeError("columns are ColumnDef values")
        object.__setattr__(self, "columns", cols)
        object.__setattr__(self, "plain_eq", frozenset(self.plain_eq))

    @property
    def computed(self) -> list[ColumnDef]:
        return [c for c in self.columns if c.computed]

    @property
    def media_inputs(self) -> list[ColumnDef]:
        return [c for c in self.columns if not c.computed and c.media_type and c.check_on_write]

    @property
    def batched(self) -> list[ColumnDef]:
        return [c for c in self.computed if c.batched]

    def pending(self) -> set[str]:
        """Computed columns the row trigger leaves to the statement trigger (or the worker):
        batched or deferred ones, and those downstream of one."""
        out = set()
        for c in self.computed:  # position order is a topological order
            if c.batched or c.deferred or any(d in out for d in c.deps):
                out.add(c.name)
        return out

    def records_errors(self) -> bool:
        """May any column record an error in _pxt_errors (on_error => 'ignore')?"""
        return any(c.ignores_errors for c in self.computed)

    def late_errors(self) -> bool:
        """Do batched columns record errors after the rows were captured (for the version trigger)?"""
        return any(c.batched and c.ignores_errors for c in self.computed)


def row_function(vkey: str) -> Identifier:
    return Identifier(FN_SCHEMA, "row_" + _name(vkey, "vkey"))


def statement_function(vkey: str) -> Identifier:
    return Identifier(FN_SCHEMA, "stmt_" + _name(vkey, "vkey"))


def function_exists(fn: Identifier) -> Composed:
    """One row, ``e``: does the function ``fn()`` exist?"""
    if not isinstance(fn, Identifier):
        raise TypeError(f"a function is an Identifier, not {fn!r}")
    return SQL("SELECT to_regprocedure({}) IS NOT NULL AS e").format(Literal(fn.as_string() + "()"))


def drop_function(fn: Identifier) -> Composed:
    """Drop ``fn()`` and the triggers using it."""
    if not isinstance(fn, Identifier):
        raise TypeError(f"a function is an Identifier, not {fn!r}")
    return SQL("DROP FUNCTION {}() CASCADE").format(fn)


def _changed(col: str, plain: frozenset[str]) -> Composed:
    c = Identifier(col)
    if col in plain:
        return SQL("pxt_row.{c} IS DISTINCT FROM OLD.{c}").format(c=c)
    return SQL("pxt_row.{c}::text IS DISTINCT FROM OLD.{c}::text").format(c=c)


def _row_desc(deps: Sequence[str]) -> Composed:
    """SQL text giving a short description of the row: rowid and the column's inputs."""
    parts = [SQL("'_pxt_rowid=' || coalesce(pxt_row._pxt_rowid::text, '?')")]
    for d in deps:
        parts.append(SQL("{} || coalesce(quote_literal(left(pxt_row.{}::text, 200)), 'NULL')").format(
            Literal(d + "="), Identifier(d)))
    return SQL(" || ', ' || ").join(parts)


_HINT_IGNORE = SQL("HINT = 'add the column with on_error => ''ignore'' to record per-row errors instead';")
_HINT_COMPUTED_END_IF = SQL("HINT = 'computed columns are evaluated by pixelgres; write their input columns'; END IF;\n")


def _compute_block(t: TriggerTable, c: ColumnDef) -> Composed:
    """Evaluate one computed column into the row, in its own exception block."""
    col, key = c.ident, Literal(c.name)
    if c.ignores_errors:
        handler = SQL("pxt_row.{col} := NULL; pxt_row._pxt_errors := coalesce(pxt_row._pxt_errors, '{{}}'::jsonb) || "
                      "jsonb_build_object({key}, pxt._error_info(SQLSTATE, SQLERRM));").format(col=col, key=key)
    else:
        handler = SQL("RAISE EXCEPTION USING ERRCODE = SQLSTATE, MESSAGE = format('computed column %s of %s failed "
                      "for row (%s): %s', {key}, {table}, {row}, pxt._clean_error(SQLERRM)), {hint}").format(
            key=key, table=Literal(t.name), row=_row_desc(c.deps), hint=_HINT_IGNORE)
    return SQL("    BEGIN\n      pxt_row.{col} := {expr};\n    EXCEPTION WHEN OTHERS THEN\n      {handler}\n"
               "    END;\n").format(col=col, expr=c.value, handler=handler)


def _media_check(t: TriggerTable, m: ColumnDef) -> Composed:
    return SQL("      BEGIN PERFORM pxt._validate_media(pxt_row.{col}, {mt});\n"
               "      EXCEPTION WHEN OTHERS THEN RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = "
               "format('invalid %s in column %s of %s, row _pxt_rowid=%s: %s', {mt}, {key}, {table}, "
               "pxt_row._pxt_rowid, pxt._clean_error(SQLERRM)); END;\n").format(
        col=m.ident, mt=Literal(m.media_type), key=Literal(m.name), table=Literal(t.name))


_ROW_BODY = SQL("""
DECLARE
  pxt_row ALIAS FOR NEW;
  pxt_force text[];
  -- pxt_work.defer (pxt.recompute_column(..., mode => 'deferred')): clear deferred cells, compute none
  pxt_asked text[] := CASE WHEN current_setting('pxt_work.defer', true) = 'on' THEN NULL
                      ELSE string_to_array(nullif(current_setting('pixelgres.recompute', true), ''), ',') END;
  pxt_depth int := pg_trigger_depth();
BEGIN
  IF current_setting('pixelgres.replaying', true) = 'on' THEN RETURN NEW; END IF;
  IF pxt_depth <= 1 THEN  -- a recompute applies to the statement that asked for it only
    pxt_force := string_to_array(nullif(current_setting('pixelgres.recompute', true), ''), ',');
  END IF;
  IF TG_OP = 'INSERT' THEN
{ins}  ELSE
{upd}  END IF;
  RETURN NEW;
END""")


def row_trigger_body(t: TriggerTable) -> Composed:
    """The plpgsql body of the BEFORE INSERT OR UPDATE row trigger function: media checks,
    refusal of direct writes to computed columns, then each computed column not pending,
    in order (on UPDATE, only if one of its inputs changed or a recompute names it)."""
    plain, computed, pending = t.plain_eq, t.computed, t.pending()
    ins, upd = [], []
    for m in t.media_inputs:
        check = _media_check(t, m)
        # pixelgres's own iterators write media they produced: pxt_iter.trusted names the table
        ins.append(SQL("    IF pxt_row.{col} IS NOT NULL AND coalesce(current_setting('pxt_iter.trusted', true), '') "
                       "<> {relid} THEN\n{check}    END IF;\n").format(
            col=m.ident, relid=Literal(str(t.relid)), check=check))
        upd.append(SQL("    IF pxt_row.{col} IS NOT NULL AND {changed} THEN\n{check}    END IF;\n").format(
            col=m.ident, changed=_changed(m.name, plain), check=check))
    for c in computed:
        ins.append(SQL("    IF pxt_row.{col} IS NOT NULL THEN RAISE EXCEPTION USING ERRCODE = '428C9', "
                       "MESSAGE = format('cannot write computed column %s of %s', {key}, {table}), {hint}").format(
            col=c.ident, key=Literal(c.name), table=Literal(t.name), hint=_HINT_COMPUTED_END_IF))
    ins.append(SQL("    pxt_row._pxt_errors := NULL;\n"))
    for c in computed:
        if c.name not in pending:
            ins.append(_compute_block(t, c))
    guard = [SQL("      IF {changed} THEN RAISE EXCEPTION USING ERRCODE = '428C9', MESSAGE = "
                 "format('cannot write computed column %s of %s', {key}, {table}), {hint}").format(
        changed=_changed(c.name, plain), key=Literal(c.name), table=Literal(t.name), hint=_HINT_COMPUTED_END_IF)
        for c in computed]
    if guard:
        upd.insert(0, SQL("    IF pxt_depth <= 1 THEN\n{}    END IF;\n").format(Composed(guard)))
    for c in computed:
        key = Literal(c.name)
        changed = SQL(" OR ").join([SQL("{} = ANY(pxt_force)").format(key)] + [_changed(d, plain) for d in c.deps])
        if c.batched:
            body = SQL("      IF pxt_depth <= 1 THEN pxt_row.{} := NULL; END IF;\n").format(c.ident)
        elif c.deferred:  # computed only when the worker asks (pixelgres.recompute names it)
            body = SQL("      IF {key} = ANY(pxt_asked) THEN\n{block}      ELSE pxt_row.{col} := NULL; END IF;\n").format(
                key=key, block=_compute_block(t, c), col=c.ident)
        else:
            body = _compute_block(t, c)
        upd.append(SQL("    IF {changed} THEN\n      pxt_row._pxt_errors := pxt_row._pxt_errors - {key};\n"
                       "{body}    END IF;\n").format(changed=changed, key=key, body=body))
    return _ROW_BODY.format(ins=Composed(ins), upd=Composed(upd))


UPLOAD_TRIGGERS = ("pxt_uploads_begin", "pxt_uploads_end")


def upload_triggers(t: TriggerTable) -> list[Composed]:
    """The statement triggers that make a statement's uploads to destinations concurrent and
    finished before it ends (media.uploads), if a computed column has a destination; else
    none (and drop_upload_triggers if they exist)."""
    if not any(c.destination for c in t.computed):
        return []
    return [SQL("CREATE OR REPLACE TRIGGER {} {} INSERT OR UPDATE ON {} FOR EACH STATEMENT "
                "EXECUTE FUNCTION pxt._media_uploads()").format(Identifier(name), when, t.table)
            for name, when in zip(UPLOAD_TRIGGERS, (SQL("BEFORE"), SQL("AFTER")))]


def drop_upload_triggers(t: TriggerTable) -> list[Composed]:
    return [SQL("DROP TRIGGER IF EXISTS {} ON {}").format(Identifier(name), t.table) for name in UPLOAD_TRIGGERS]


def row_trigger(t: TriggerTable) -> list[Composed]:
    """Statements (re)creating the row trigger function and its trigger; none if the table
    has neither computed columns nor media inputs (versions need no row trigger: see
    triggers.py), and then drop_function(row_function(vkey)) if it exists."""
    if not (t.computed or t.media_inputs):
        return []
    fn = row_function(t.vkey)
    return [SQL("CREATE OR REPLACE FUNCTION {}() RETURNS trigger LANGUAGE plpgsql AS {}").format(
                fn, Literal(row_trigger_body(t).as_string())),
            SQL("CREATE OR REPLACE TRIGGER pxt_compute BEFORE INSERT OR UPDATE ON {} "
                "FOR EACH ROW EXECUTE FUNCTION {}()").format(t.table, fn)]


_BATCH_STEP = SQL("""
  SELECT array_agg(n._pxt_rowid ORDER BY n._pxt_rowid) INTO pxt_ids FROM pxt_new n
   WHERE n.{col} IS NULL AND NOT coalesce(n._pxt_errors ? {key}, false){asked};
  IF pxt_ids IS NOT NULL THEN
    BEGIN
      PERFORM pxt._batch_begin();
      BEGIN
        PERFORM ({expr}) FROM ONLY {table} pxt_row WHERE pxt_row._pxt_rowid = ANY(pxt_ids);
      EXCEPTION WHEN OTHERS THEN
        -- a row whose expression fails outside any batched call (a cast out of range) is left
        -- out; the write-back below gives it its own error, or records it (on_error 'ignore')
        FOREACH pxt_id IN ARRAY pxt_ids LOOP
          BEGIN
            PERFORM ({expr}) FROM ONLY {table} pxt_row WHERE pxt_row._pxt_rowid = pxt_id;
          EXCEPTION WHEN OTHERS THEN
            CONTINUE;
          END;
        END LOOP;
      END;
      PERFORM pxt._batch_run();
    EXCEPTION WHEN OTHERS THEN PERFORM pxt._batch_end(); RAISE;
    END;
    PERFORM set_config('pxt_v.internal', 'on', true);  -- write-back is part of this version
    -- one set-based UPDATE; if any row fails, it is undone and the rows are written one by one,
    -- so that the failing row gets its own error (its results are served again, not recomputed)
    BEGIN
      UPDATE ONLY {table} pxt_row SET {col} = {value} WHERE pxt_row._pxt_rowid = ANY(pxt_ids);
    EXCEPTION WHEN OTHERS THEN
      FOREACH pxt_id IN ARRAY pxt_ids LOOP
        BEGIN
          UPDATE ONLY {table} pxt_row SET {col} = {value} WHERE pxt_row._pxt_rowid = pxt_id;
        EXCEPTION WHEN OTHERS THEN
          {handler}
        END;
      END LOOP;
    END;
    PERFORM set_config('pxt_v.internal', 'off', true);
    PERFORM pxt._batch_end();
  END IF;""")

_STATEMENT_BODY = SQL("""
DECLARE
  pxt_ids bigint[];
  pxt_id bigint;
BEGIN
  -- not for our own write-back (below) nor replays; rows written by other triggers (e.g. an
  -- iterator view's expansion) are evaluated like any others
  IF current_setting('pxt_v.internal', true) = 'on' OR current_setting('pixelgres.replaying', true) = 'on' THEN
    RETURN NULL;
  END IF;
{steps}
  RETURN NULL;
END""")


def statement_trigger_body(t: TriggerTable) -> Composed:
    """The plpgsql body of the AFTER INSERT / UPDATE statement trigger function: for each
    batched column, the statement's rows still missing it are computed as one batch, then
    written back in one UPDATE (row by row if a row fails, for its own error)."""
    steps = []
    for c in t.batched:
        key = Literal(c.name)
        if c.ignores_errors:
            handler = SQL("UPDATE ONLY {table} pxt_row SET _pxt_errors = coalesce(pxt_row._pxt_errors, '{{}}'::jsonb) || "
                          "jsonb_build_object({key}, pxt._error_info(SQLSTATE, SQLERRM)) "
                          "WHERE pxt_row._pxt_rowid = pxt_id;").format(table=t.table, key=key)
        else:
            # the row described as the row trigger does: its rowid and the column's inputs
            handler = SQL("PERFORM pxt._batch_end(); PERFORM set_config('pxt_v.internal', 'off', true); "
                          "RAISE EXCEPTION USING ERRCODE = SQLSTATE, MESSAGE = format('computed column %s of %s "
                          "failed for row (%s): %s', {key}, {name}, (SELECT {row} FROM ONLY {table} pxt_row "
                          "WHERE pxt_row._pxt_rowid = pxt_id), pxt._clean_error(SQLERRM)), {hint}").format(
                key=key, name=Literal(t.name), row=_row_desc(c.deps), table=t.table, hint=_HINT_IGNORE)
        if c.deferred:
            asked = SQL(" AND {} = ANY(string_to_array(current_setting('pixelgres.recompute', true), ','))"
                        " AND coalesce(current_setting('pxt_work.defer', true), '') <> 'on'").format(key)
        else:
            asked = SQL("")
        steps.append(_BATCH_STEP.format(col=c.ident, key=key, asked=asked, expr=c.sql, value=c.value,
                                        table=t.table, handler=handler))
    return _STATEMENT_BODY.format(steps=Composed(steps))


def statement_trigger(t: TriggerTable) -> list[Composed]:
    """Statements (re)creating the statement trigger function and its two triggers; none if
    no column is batched (and then drop_function(statement_function(vkey)) if it exists)."""
    if not t.batched:
        return []
    fn = statement_function(t.vkey)
    out = [SQL("CREATE OR REPLACE FUNCTION {}() RETURNS trigger LANGUAGE plpgsql AS {}").format(
        fn, Literal(statement_trigger_body(t).as_string()))]
    for trigger in (SQL("pxt_batch_insert AFTER INSERT"), SQL("pxt_batch_update AFTER UPDATE")):
        out.append(SQL("CREATE OR REPLACE TRIGGER {} ON {} "
                       "REFERENCING NEW TABLE AS pxt_new FOR EACH STATEMENT EXECUTE FUNCTION {}()").format(
            trigger, t.table, fn))
    return out


def insert_json_rows(table: Identifier, columns: Sequence[str]) -> Composed:
    """INSERT the rows of a jsonb array ($1) into ``columns`` of ``table`` (an import's batch:
    each key read as its column's type would read it)."""
    if not isinstance(table, Identifier):
        raise TypeError(f"a table is an Identifier, not {table!r}")
    if not columns:
        raise ValueError("no columns to insert")
    cols = SQL(", ").join(Identifier(_name(c)) for c in columns)
    return SQL("INSERT INTO {t} ({cols}) SELECT {cols} FROM jsonb_populate_recordset(NULL::{t}, $1)").format(
        t=table, cols=cols)


def create_temp_view(view: Identifier, query: TrustedExpression) -> Composed:
    """A temporary view over a query (an export's): PostgreSQL accepts only a query as its body."""
    if not isinstance(view, Identifier) or not isinstance(query, TrustedExpression):
        raise TypeError("create_temp_view takes an Identifier and a TrustedExpression")
    return SQL("CREATE TEMP VIEW {} AS {}").format(view, query)


def select_all(rel: Identifier) -> Composed:
    if not isinstance(rel, Identifier):
        raise TypeError(f"a relation is an Identifier, not {rel!r}")
    return SQL("SELECT * FROM {}").format(rel)
