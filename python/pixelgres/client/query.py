"""Queries: ``t.where(...).order_by(...).limit(n).select(...).collect()`` as one SELECT.

A ``Query`` is immutable; each method returns a new one. ``collect`` returns a ``ResultSet``;
``cursor`` streams through a server-side cursor on its own connection; ``to_pytorch_dataset``
returns an IterableDataset that streams the same SELECT in each DataLoader worker.

Similarity ordering is rewritten for the index: ``order_by(t.c.similarity(...), asc=False)``
becomes ``ORDER BY emb <=> q ASC`` (the distance, ascending), the form pgvector's HNSW index
serves with a LIMIT.
"""
from __future__ import annotations

import dataclasses

from sqlglot import exp

from . import types as T
from .errors import Error
from .exprs import Agg, ColumnRef, Ctx, Expr, Similarity, ident, lift
from .resultset import ResultSet


@dataclasses.dataclass(frozen=True)
class _Order:
    expr: Expr
    asc: bool


QUERY_ROWS = 20  # rows a Query shows in a notebook


class Query:
    def __init__(self, table, *, select=None, where=None, group_by=(), order_by=(), limit=None, offset=None):
        self._table = table
        self._select = select  # list of (name, Expr) or None for all columns
        self._where = where
        self._group_by = tuple(group_by)
        self._order_by = tuple(order_by)
        self._limit, self._offset = limit, offset

    def _copy(self, **kw) -> "Query":
        args = dict(select=self._select, where=self._where, group_by=self._group_by, order_by=self._order_by,
                    limit=self._limit, offset=self._offset)
        args.update(kw)
        return Query(self._table, **args)

    # -- building ----------------------------------------------------------------------------------
    def select(self, *exprs, **named) -> "Query":
        items, names = [], set()
        for i, e in enumerate(exprs):
            e = lift(e)
            name = e.name if isinstance(e, ColumnRef) else f"col_{i}"
            while name in names:
                name += "_"
            names.add(name)
            items.append((name, e))
        for name, e in named.items():
            if name in names:
                raise ValueError(f"duplicate output column {name!r}")
            names.add(name)
            items.append((name, lift(e)))
        if not items:
            raise ValueError("select() needs at least one expression")
        return self._copy(select=items)

    def where(self, pred) -> "Query":
        if not isinstance(pred, Expr):
            raise TypeError(f"where() takes a boolean expression, not {pred!r}")
        return self._copy(where=pred if self._where is None else (self._where & pred))

    def order_by(self, *exprs, asc: bool = True) -> "Query":
        return self._copy(order_by=self._order_by + tuple(_Order(lift(e), asc) for e in exprs))

    def limit(self, n: int, offset: int | None = None) -> "Query":
        return self._copy(limit=int(n), offset=offset)

    def group_by(self, *exprs) -> "Query":
        return self._copy(group_by=self._group_by + tuple(lift(e) for e in exprs))

    # -- SQL ----------------------------------------------------------------------------------------
    def _items(self):
        if self._select is not None:
            return self._select
        if self._group_by:
            return [(e.name if isinstance(e, ColumnRef) else f"col_{i}", e) for i, e in enumerate(self._group_by)]
        return [(c, self._table[c]) for c in self._table.columns()]

    def _ast(self, session, *, with_rowid: bool = False) -> tuple[exp.Select, list]:
        ctx = Ctx(session)
        items = self._items()
        q = exp.Select(expressions=[exp.Alias(this=e.ast(ctx), alias=ident(n)) for n, e in items])
        if with_rowid:
            q.append("expressions", exp.Alias(this=exp.Column(this=ident("_pxt_rowid")), alias=ident("_pxt_rowid")))
        q.set("from_", exp.From(this=self._table._from_ast()))
        if self._where is not None:
            q.set("where", exp.Where(this=self._where.ast(ctx)))
        if self._group_by:
            q.set("group", exp.Group(expressions=[e.ast(ctx) for e in self._group_by]))
        orders = []
        for o in self._order_by:
            if isinstance(o.expr, Similarity):  # distance ascending == similarity descending
                orders.append(exp.Ordered(this=o.expr.distance_ast(ctx), desc=o.asc, nulls_first=False))
            else:
                orders.append(exp.Ordered(this=o.expr.ast(ctx), desc=not o.asc, nulls_first=not o.asc))
        if orders:
            q.set("order", exp.Order(expressions=orders))
        if self._limit is not None:
            q.set("limit", exp.Limit(expression=exp.Literal.number(self._limit)))
        if self._offset:
            q.set("offset", exp.Offset(expression=exp.Literal.number(int(self._offset))))
        return q, [(n, e.col_type) for n, e in items]

    @property
    def _aggregating(self) -> bool:
        return bool(self._group_by) or any(isinstance(e, Agg) for _, e in (self._select or []))

    def sql(self) -> str:
        from .dialect import to_sql

        return to_sql(self._ast(self._table._session)[0])

    # -- running -------------------------------------------------------------------------------
    def collect(self) -> ResultSet:
        s = self._table._session
        node, cols = self._ast(s)
        cur = s.execute(node)
        return ResultSet([n for n, _ in cols], [t for _, t in cols], cur.fetchall(), s)

    def show(self, n: int = 20) -> ResultSet:
        return self.limit(n).collect()

    def head(self, n: int = 10) -> ResultSet:
        """The first n rows in insertion order."""
        q = self
        if not self._order_by and self._table._has_rowid():
            q = self._copy(order_by=(_Order(_RowId(), True),))
        return q.limit(n).collect()

    def tail(self, n: int = 10) -> ResultSet:
        """The last n rows in insertion order."""
        if not self._table._has_rowid():
            raise TypeError(f"{self._table._path} has no insertion order (_pxt_rowid)")
        rs = self._copy(order_by=(_Order(_RowId(), False),)).limit(n).collect()
        rs.rows.reverse()
        return rs

    def count(self) -> int:
        s = self._table._session
        if self._aggregating or self._limit is not None:
            inner, _ = self._ast(s)
            node = exp.Select(expressions=[exp.Count(this=exp.Star(), big_int=True)]).from_(
                exp.Subquery(this=inner, alias=exp.TableAlias(this=ident("q"))))
        else:
            node = exp.Select(expressions=[exp.Count(this=exp.Star(), big_int=True)])
            node.set("from_", exp.From(this=self._table._from_ast()))
            if self._where is not None:
                node.set("where", exp.Where(this=self._where.ast(Ctx(s))))
        return s.fetchone(node)[0]

    def to_pandas(self):
        return self.collect().to_pandas()

    def cursor(self, batch_size: int = 1000):
        """Iterate rows (dicts) through a server-side cursor: memory stays flat for any size."""
        s = self._table._session
        node, cols = self._ast(s)
        return _stream(s, node, [n for n, _ in cols], batch_size, self._table._setup_statements())

    def to_parquet(self, destination, *, embed_media: bool = False, batch_size: int = 1000) -> dict:
        """Write these rows to a Parquet file: a bucket URI is written by the server
        (``pxt.export_parquet``: its credentials and allow-list; ``embed_media`` adds each media
        column's bytes); a local path is written here, streaming. Returns {rows, ...}."""
        from .media import _OBJECTS
        from .parquet import write_local

        s = self._table._session
        node, cols = self._ast(s)
        if isinstance(destination, str) and destination.startswith(_OBJECTS):
            from .dialect import to_sql
            from .errors import translated

            conn = s.connect(with_settings=True)
            try:
                with translated():
                    for stmt, params in self._table._setup_statements():
                        conn.execute(stmt, params)
                    return conn.execute("SELECT pxt.export_parquet(%s, %s, %s)",
                                        (to_sql(node), destination, embed_media)).fetchone()[0]
            finally:
                conn.close()
        if embed_media:
            raise Error("embed_media is for bucket destinations (the server reads the media)")
        return write_local(self.cursor(batch_size), [n for n, _ in cols], destination, batch_size)

    def to_pytorch_dataset(self, image_format: str = "pt", *, batch_size: int = 64):
        """A torch IterableDataset streaming these rows; see pixelgres.client.dataset."""
        from .dataset import PixelgresDataset

        s = self._table._session
        shardable = not self._aggregating and self._table._has_rowid()
        node, cols = self._ast(s, with_rowid=shardable)
        setup = self._table._setup_statements()
        return PixelgresDataset(s.dsn, node, cols, image_format=image_format, shardable=shardable,
                                batch_size=batch_size, setup=setup)

    def __iter__(self):
        return iter(self.collect())

    def __repr__(self) -> str:
        try:
            return f"<pxt.Query {self.sql()}>"
        except Exception:
            return "<pxt.Query>"

    def _repr_html_(self) -> str:
        """In a notebook: the first rows (as ``show()``), under the query's SQL."""
        from .display import rows_html

        q = self if self._limit is not None and self._limit <= QUERY_ROWS else self.limit(QUERY_ROWS)
        rs = q.collect()
        more = "" if len(rs) < QUERY_ROWS or q is self else f" (first {QUERY_ROWS} rows)"
        return rows_html(rs.columns, rs.types, rs.rows, rs._session, caption=self.sql() + more)


class _RowId(Expr):
    col_type = T.Int

    def ast(self, ctx):
        return exp.Column(this=ident("_pxt_rowid"))


def _stream(session, node, names, batch_size, setup=()):
    from .dialect import to_sql
    from .errors import translated

    conn = session.connect(with_settings=True)
    try:
        with translated():
            for stmt, params in setup:  # e.g. re-create a time-travel view in this connection
                conn.execute(stmt, params)
            with conn.cursor(name="pxt_stream") as cur:
                cur.itersize = batch_size
                cur.execute(to_sql(node))
                while rows := cur.fetchmany(batch_size):
                    for r in rows:
                        yield dict(zip(names, r))
    finally:
        conn.close()
