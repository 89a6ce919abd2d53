"""The SQL of iterator views (server/iterators/views.py), generated from plain data.

Pure functions: views.py reads the catalog (names, columns, oids, the stored call) and passes
what it found; these return Composables (``.as_string()`` is the text) and never touch a
database. Relations are ``Identifier`` objects or ``(schema, name)`` tuples, the storage's
oid (which names the generated objects) is an int, columns are names, types are
format_type() text (``TypeName``).

The iterator's call is the one piece of text pasted as it is, as a ``TrustedExpression``
(``call``): the user's call as views.py accepts it (``qualify_known`` and ``with_column``
applied), checked by ``ddl.exprs.scan``, then parsed and typed by PostgreSQL into the
iterator view ``pxt_internal."iter_<oid>"``. The maintenance functions read that view, never
the call (which they hold only inside messages, as a Literal).

The maintenance functions' plpgsql bodies are not in this file: they are the template
``templates/iterator_view.sql`` (issue #15, "move SQL into sql/"). It lives inside the Python
package rather than in the repository's sql/ directory because the server imports this code
from its installed package directory and reads nothing else (``make install`` copies
python/pixelgres/ whole, templates included); ``compose.template`` loads it and its
``{name}`` placeholders take Composables only.

The statements and their order are those views.py ran before it used this module; only the
quoting of identifiers differs (always quoted).
"""
from __future__ import annotations

import re
from collections.abc import Sequence

from .compose import SQL, Composable, Composed, Identifier, Literal, TrustedExpression, TypeName, template, written_name

Relation = Identifier | tuple[str, str]

KNOWN = ("frame_iterator", "document_splitter", "audio_splitter", "string_splitter")
_BARE = re.compile(r"^\s*(" + "|".join(KNOWN) + r")\s*\(", re.I)
# a call whose first argument is a string literal: pxt.frame_iterator('video', fps => 1)
_FIRST_LITERAL = re.compile(r"^(\s*(?:\"[^\"]+\"|[A-Za-z_][\w$]*)(?:\s*\.\s*(?:\"[^\"]+\"|[A-Za-z_][\w$]*))?\s*\(\s*)"
                            r"'((?:[^']|'')*)'")
CALL_SOURCE = "an iterator view's call: checked by exprs.scan, parsed by PostgreSQL into its iterator view"


# --- inputs ------------------------------------------------------------------------------------
def relation(r: Relation) -> Identifier:
    if isinstance(r, Identifier):
        return r
    if isinstance(r, tuple) and len(r) == 2:
        return Identifier(*r)
    raise TypeError(f"a relation is an Identifier or a (schema, name) tuple, not {r!r}")


def _oid(v, what: str = "storage oid") -> str:
    if type(v) is not int or v <= 0:
        raise TypeError(f"{what} must be a positive int, not {v!r}")
    return str(v)


def call(text: str) -> TrustedExpression:
    """The iterator's call as views.py accepted it (_normalise_call, then exprs.scan)."""
    return TrustedExpression(text, CALL_SOURCE)


# --- the call ----------------------------------------------------------------------------------
def qualify_known(text: str) -> str:
    """``frame_iterator(...)`` is ``pxt.frame_iterator(...)`` (pixelgres's own iterators only)."""
    return "pxt." + text if _BARE.match(text) else text


def first_literal(text: str) -> tuple[str, str, str] | None:
    """A call whose first argument is a string literal (as Pixeltable spells a column:
    ``pxt.frame_iterator('video', fps => 1)``): (the text before it, its value, the text after
    it), or None."""
    m = _FIRST_LITERAL.match(text)
    return (m.group(1), m.group(2).replace("''", "'"), text[m.end():]) if m else None


def with_column(head: str, column: str, tail: str) -> str:
    """The call of ``first_literal`` with a base column for its first argument: ``column`` is
    the column's name as PostgreSQL's quote_ident writes it (views.py asks plpy.quote_ident, so
    the recorded call reads as a user would write it: ``pxt.frame_iterator(video, ...)``),
    checked to be exactly one name. A rewrite of the user's text before it is checked
    (exprs.scan) and parsed: the result is still only a candidate call."""
    if len(written_name(column).parts) != 1:
        raise ValueError(f"not one column name: {column!r}")
    return head + column + tail


# --- names -------------------------------------------------------------------------------------
def new_iterator_view(n: int) -> Identifier:
    """The iterator view while it is made (``n``: from pxt_internal.expr_seq)."""
    return Identifier("pxt_internal", "iter_new_" + _oid(n, "sequence value"))


def iterator_view_relname(storage: int) -> str:
    return "iter_" + _oid(storage)


def iterator_view(storage: int) -> Identifier:
    return Identifier("pxt_internal", iterator_view_relname(storage))


def rows_view(vkey: str) -> Identifier:
    """The joined view with the bookkeeping columns (pxt.internal_relation), named by the
    storage's vkey, which survives dump and restore."""
    if not re.fullmatch(r"t[0-9a-f]{16}", vkey):
        raise ValueError(f"not a vkey: {vkey!r}")
    return Identifier("pxt_internal", "rows_" + vkey)


def expand_function(storage: int) -> Identifier:
    return Identifier("pxt_internal", "view_expand_" + _oid(storage))


def trigger_function(storage: int) -> Identifier:
    return Identifier("pxt_internal", "view_" + _oid(storage))


def guard_function(storage: int) -> Identifier:
    return Identifier("pxt_internal", "view_guard_" + _oid(storage))


NEXT_ITERATOR_VIEW = "SELECT nextval('pxt_internal.expr_seq') AS n"


# --- create ------------------------------------------------------------------------------------
def create_iterator_view(view: Relation, base: Relation, call: TrustedExpression, scalar: bool = False) -> Composed:
    """The iterator over the base: ``_pxt_base_rowid`` then the call's columns (a scalar
    function's one column named ``value``)."""
    _trusted_call(call)
    if scalar:
        return SQL("CREATE VIEW {} AS SELECT pxt_row._pxt_rowid AS _pxt_base_rowid, pxt_it.value "
                   "FROM ONLY {} pxt_row CROSS JOIN LATERAL {} AS pxt_it(value)").format(
            relation(view), relation(base), call)
    return SQL("CREATE VIEW {} AS SELECT pxt_row._pxt_rowid AS _pxt_base_rowid, pxt_it.* "
               "FROM ONLY {} pxt_row CROSS JOIN LATERAL {} AS pxt_it").format(relation(view), relation(base), call)


def check_arguments(base: Relation, call: TrustedExpression) -> Composed:
    """The call once over an all-NULL base row: a bad constant argument fails here."""
    _trusted_call(call)
    return SQL("SELECT count(*) FROM (SELECT (NULL::{}).*) pxt_row CROSS JOIN LATERAL {} AS pxt_it").format(
        relation(base), call)


def drop_view(view: Relation, if_exists: bool = False) -> Composed:
    if if_exists:
        return SQL("DROP VIEW IF EXISTS {}").format(relation(view))
    return SQL("DROP VIEW {}").format(relation(view))


def create_storage(storage: Relation, columns: Sequence[tuple[str, str]]) -> list[Composed]:
    """The storage table: the base row's id, the iterator's ``(name, type)`` columns, its own
    row id and error column; indexed on the base row's id."""
    storage = relation(storage)
    defs = [SQL("_pxt_base_rowid bigint NOT NULL")]
    defs += [SQL("{} {}").format(Identifier(name), TypeName(type_)) for name, type_ in columns]
    defs += [SQL("_pxt_rowid bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY"), SQL("_pxt_errors jsonb")]
    return [SQL("CREATE TABLE {} ({})").format(storage, SQL(", ").join(defs)),
            SQL("CREATE INDEX ON {} (_pxt_base_rowid)").format(storage)]


def rename_iterator_view(view: Relation, storage: int) -> Composed:
    return SQL("ALTER VIEW {} RENAME TO {}").format(relation(view), Identifier(iterator_view_relname(storage)))


def comment_on_view(view: Relation, comment: str) -> Composed:
    return SQL("COMMENT ON VIEW {} IS {}").format(relation(view), Literal(comment))


# --- expanding existing rows ------------------------------------------------------------------
def count_rows(base: Relation) -> Composed:
    return SQL("SELECT count(*) AS n FROM ONLY {}").format(relation(base))


def expand_rows(storage: int) -> Composed:
    """Expand the base rows ``$1`` (bigint[]): a statement to prepare."""
    return SQL("SELECT {}($1) AS n").format(expand_function(storage))


def row_ids(base: Relation) -> Composed:
    return SQL("SELECT _pxt_rowid AS id FROM ONLY {} ORDER BY _pxt_rowid").format(relation(base))


# --- maintenance functions and triggers -------------------------------------------------------
_DEFINER = SQL("SECURITY DEFINER SET search_path = pg_catalog, pg_temp")
# event, trigger name suffix, transition table
_EVENTS = (
    (SQL("INSERT"), "insert", SQL("REFERENCING NEW TABLE AS pxt_new")),
    (SQL("UPDATE"), "update", SQL("REFERENCING OLD TABLE AS pxt_old")),
    (SQL("DELETE"), "delete", SQL("REFERENCING OLD TABLE AS pxt_old")),
    (SQL("TRUNCATE"), "truncate", SQL("")),
)


def _bodies() -> dict[str, SQL]:
    return template("iterator_view")


def _body(section: str, **parts: Composable) -> Literal:
    """A template section filled in, as the string literal CREATE FUNCTION takes. Line 1 of
    the body is empty, as it always was: plpgsql's line numbers in error contexts stay put."""
    return Literal((SQL("\n") + _bodies()[section].format(**parts)).as_string())


def _each(prefix: SQL, parts) -> Composed:
    return Composed([prefix + p for p in parts])


def expand_body(storage: int, store: Relation, base: Relation, iter_view: Relation, columns: Sequence[str],
                reads: Sequence[str], trusted: bool, what: str, base_name: str) -> Literal:
    """The body of ``view_expand_<storage>(pxt_ids bigint[])``: replace the storage rows of
    base rows ``pxt_ids`` by the iterator's rows for them (``columns``: the iterator columns
    the storage holds); on an error, name the failing base row by its id and ``reads`` (the
    base columns the iterator reads). ``trusted``: the iterator is pixelgres's own, its media
    need no validation on insert. ``what`` and ``base_name`` are for the message."""
    w = Literal(_oid(storage))
    cols = [Identifier(c) for c in columns]
    row_text = SQL(" || ', ' || ").join([SQL("'_pxt_rowid=' || b._pxt_rowid")] + [
        SQL("{} || coalesce(quote_literal(left(b.{}::text, 200)), 'NULL')").format(Literal(d + "="), Identifier(d))
        for d in reads])
    return _body("expand", writing=w, trusted=Literal(_oid(storage) if trusted else ""), storage=relation(store),
                 columns=_each(SQL(", "), cols), values=_each(SQL(", v."), cols), iter_view=relation(iter_view),
                 row_text=row_text, base=relation(base), what=Literal(what), base_name=Literal(base_name))


def trigger_body(storage: int, store: Relation, base: Relation, reads: Sequence[str]) -> Literal:
    """The body of ``view_<storage>()``, the base's AFTER statement triggers: expand inserted
    rows, re-expand updated rows whose ``reads`` columns changed, delete the rows of deleted
    ones (all of them on truncate)."""
    changed = SQL(" OR ").join(SQL("o.{c}::text IS DISTINCT FROM b.{c}::text").format(c=Identifier(d))
                               for d in reads) if reads else SQL("false")
    return _body("trigger", base=relation(base), changed=changed, writing=Literal(_oid(storage)),
                 storage=relation(store), expand=expand_function(storage))


def guard_body(storage: int, store_name: str, message: str, fixed: Sequence[str]) -> Literal:
    """The body of ``view_guard_<storage>()``: the storage is written by the functions above
    only, and an update may not change its ``fixed`` columns (the iterator's)."""
    moved = SQL(" OR ").join(SQL("NEW.{c}::text IS DISTINCT FROM OLD.{c}::text").format(c=Identifier(c))
                             for c in fixed)
    return _body("guard", writing=Literal(_oid(storage)), store_name=Literal(store_name), message=Literal(message),
                 moved=moved)


def maintenance(storage: int, view_name: str, call_text: str, store: Relation, store_name: str, base: Relation,
                base_name: str, iter_view: Relation, columns: Sequence[str], reads: Sequence[str],
                trusted: bool) -> list[Composed]:
    """Statements (re)creating an iterator view's functions and triggers, in order.

    ``view_name``, ``store_name``, ``base_name``: the view, storage and base as messages name
    them; ``call_text``: the stored call, for messages only; ``columns``: the iterator columns
    the storage holds; ``reads``: the base columns the iterator reads; ``trusted``: the
    iterator is pixelgres's own."""
    store, base, expand = relation(store), relation(base), expand_function(storage)
    trig, guard = trigger_function(storage), guard_function(storage)
    what = "view " + view_name + ": " + call_text
    out = [
        # SECURITY DEFINER: whoever may write the base gets the view maintained (as its owner
        # would), without rights on the storage; the generated SQL is schema-qualified throughout
        SQL("CREATE OR REPLACE FUNCTION {}(pxt_ids bigint[]) RETURNS bigint LANGUAGE plpgsql {} AS {}").format(
            expand, _DEFINER, expand_body(storage, store, base, iter_view, columns, reads, trusted, what, base_name)),
        SQL("REVOKE EXECUTE ON FUNCTION {}(bigint[]) FROM PUBLIC").format(expand),
        SQL("CREATE OR REPLACE FUNCTION {}() RETURNS trigger LANGUAGE plpgsql {} AS {}").format(
            trig, _DEFINER, trigger_body(storage, store, base, reads)),
    ]
    for event, suffix, ref in _EVENTS:
        out.append(SQL("CREATE OR REPLACE TRIGGER {} AFTER {} ON {} {} FOR EACH STATEMENT "
                       "EXECUTE FUNCTION {}()").format(
            Identifier("pxt_view_" + _oid(storage) + "_" + suffix), event, base, ref, trig))
    # the storage is written by the functions above (and by revert) only
    message = (view_name + " is an iterator view: its rows come from " + base_name + " through " + call_text
               + "; write the base table instead")
    out += [
        SQL("CREATE OR REPLACE FUNCTION {}() RETURNS trigger LANGUAGE plpgsql AS {}").format(
            guard, guard_body(storage, store_name, message, ["_pxt_base_rowid", *columns])),
        SQL("CREATE OR REPLACE TRIGGER pxt_view_guard BEFORE INSERT OR DELETE ON {} "
            "FOR EACH STATEMENT EXECUTE FUNCTION {}()").format(store, guard),
        SQL("CREATE OR REPLACE TRIGGER pxt_view_guard_row BEFORE UPDATE ON {} "
            "FOR EACH ROW EXECUTE FUNCTION {}()").format(store, guard),
    ]
    return out


# --- the joined view ---------------------------------------------------------------------------
_SIDES = {"s": SQL("s."), "b": SQL("b.")}


def joined_view_select(store: Relation, base: Relation, columns: Sequence[tuple[str, str]]) -> Composed:
    """The relation users query: ``columns`` are ``(side, name)``, side ``s`` for a column of
    the storage, ``b`` for one of the base, in the view's order; the base is LEFT JOINed on
    the row's base row id."""
    items = []
    for side, name in columns:
        if side not in _SIDES:
            raise ValueError(f"a column of the joined view comes from 's' (storage) or 'b' (base), not {side!r}")
        items.append(SQL("{}{} AS {}").format(_SIDES[side], Identifier(name), Identifier(name)))
    return SQL("SELECT {} FROM ONLY {} s LEFT JOIN ONLY {} b ON b._pxt_rowid = s._pxt_base_rowid").format(
        SQL(", ").join(items), relation(store), relation(base))


def create_joined_view(view: Relation, select: Composable) -> Composed:
    return SQL("CREATE OR REPLACE VIEW {} AS {}").format(relation(view), select)


def grant_reader(view: Relation) -> Composed:
    return SQL("GRANT SELECT ON {} TO pxt_reader").format(relation(view))


def refresh_hint(view: str) -> str:
    """How to rebuild a joined view by hand (``view``: its name), for a message."""
    return SQL("SELECT pxt.refresh_view({})").format(Literal(view)).as_string()


# --- drop --------------------------------------------------------------------------------------
def drop_functions(storage: int) -> list[Composed]:
    """The functions of a dropped storage (their triggers go with them) and its iterator view."""
    return [SQL("DROP FUNCTION IF EXISTS {}() CASCADE").format(trigger_function(storage)),
            SQL("DROP FUNCTION IF EXISTS {}() CASCADE").format(guard_function(storage)),
            SQL("DROP FUNCTION IF EXISTS {}(bigint[]) CASCADE").format(expand_function(storage)),
            drop_view(iterator_view(storage), if_exists=True)]


def drop_table_cascade(table: Relation) -> Composed:
    return SQL("DROP TABLE {} CASCADE").format(relation(table))


def _trusted_call(c) -> None:
    if not isinstance(c, TrustedExpression):
        raise TypeError(f"the iterator's call is a TrustedExpression (sqlgen.iterators.call), not {type(c).__name__}")
