"""The SQL of the work queue of deferred computed columns (server/ddl/work.py).

A worker outside the backend claims rows with ``claim_candidates`` (rows still pending, not
leased, their deferred inputs done; locked SKIP LOCKED only for the claim's own short
transaction, the lease then keeps them), hands their calls out after ``collect_calls``
evaluated the column's expression in collect mode, and writes results back with
``write_back``: an ordinary UPDATE (so triggers, versions and per-row errors apply) of only
the rows whose ``xmin`` is still the one claimed, i.e. no one changed them meanwhile.
Operators are pg_catalog's by name: these run on the caller's search_path (see 20_tables.sql).
"""
from __future__ import annotations

from collections.abc import Sequence

from .compose import SQL, Composable, Composed, Identifier, Literal


def relation(table: Identifier) -> Identifier:
    if not isinstance(table, Identifier):
        raise TypeError(f"a table is an Identifier, not {type(table).__name__}")
    return table


def _pending(col: str) -> Composed:
    return SQL("s.{col} IS NULL AND NOT coalesce(s._pxt_errors OPERATOR(pg_catalog.?) {key}, false)").format(
        col=Identifier(col), key=Literal(col))


def claim_candidates(table: Identifier, col: str, waits_for: Sequence[str]) -> Composed:
    """Rows of ``table`` where ``col`` is pending and every column in ``waits_for`` (its
    deferred inputs) is done; $1 relid, $2 column, $3 how many. Ordered by rowid."""
    conds = [_pending(col)]
    for d in waits_for:
        conds.append(SQL("NOT ({})").format(_pending(d)))
    conds.append(SQL("NOT EXISTS (SELECT 1 FROM pxt.work_leases l WHERE l.relid OPERATOR(pg_catalog.=) $1 "
                     "AND l.col OPERATOR(pg_catalog.=) $2 AND l.rowid OPERATOR(pg_catalog.=) s._pxt_rowid)"))
    return SQL("SELECT s._pxt_rowid AS rowid, s.xmin::pg_catalog.text AS xmin FROM ONLY {table} s WHERE {conds} "
               "ORDER BY s._pxt_rowid LIMIT $3 FOR UPDATE OF s SKIP LOCKED").format(
        table=relation(table), conds=SQL(" AND ").join(conds))


def collect_calls(table: Identifier, expr: Composable) -> Composed:
    """Evaluate a column's expression (its Deparsed SQL, over ``pxt_row``) on the rows $1
    (bigint[]); in collect mode its batched calls only record their arguments."""
    if not isinstance(expr, Composable):
        raise TypeError(f"an expression is Deparsed SQL, not {type(expr).__name__}")
    return SQL("SELECT pg_catalog.count(({expr})) AS n FROM ONLY {table} pxt_row "
               "WHERE pxt_row._pxt_rowid OPERATOR(pg_catalog.=) ANY($1)").format(
        expr=expr, table=relation(table))


def write_back(table: Identifier, col: str) -> Composed:
    """Recompute ``col`` (pixelgres.recompute names it) on the rows $1 (bigint[]) whose xmin is
    still $2 (text[], in the same order) and whose cell is still pending; returns their rowids."""
    return SQL("UPDATE ONLY {table} s SET {col} = s.{col} "
               "FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.int8[]), pg_catalog.unnest($2::pg_catalog.text[])) AS u(r, x) "
               "WHERE s._pxt_rowid OPERATOR(pg_catalog.=) u.r AND s.xmin::pg_catalog.text OPERATOR(pg_catalog.=) u.x "
               "AND {pending} RETURNING s._pxt_rowid AS rowid").format(
        table=relation(table), col=Identifier(col), pending=_pending(col))


def failed_rows(table: Identifier, col: str) -> Composed:
    """How many of the rows $1 (bigint[]) recorded an error for ``col``."""
    return SQL("SELECT pg_catalog.count(*) AS n FROM ONLY {table} s WHERE s._pxt_rowid OPERATOR(pg_catalog.=) ANY($1) "
               "AND coalesce(s._pxt_errors OPERATOR(pg_catalog.?) {key}, false)").format(
        table=relation(table), key=Literal(col))

