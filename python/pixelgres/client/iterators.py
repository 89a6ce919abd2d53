"""Iterator descriptions for ``pxt.create_view(..., iterator=...)``.

An iterator is not an expression over rows: it tells ``pxt.create_view`` which
set-returning function expands each base row, over which column, with which options. It
becomes the SQL text ``"pxt"."frame_iterator"("video", fps => 1)``, which ``pxt.create_view``
takes as its ``iterator`` argument (a call over the base table's columns).
"""
from __future__ import annotations

from sqlglot import exp

from .exprs import ColumnRef, func, ident, literal


class Iterator:
    def __init__(self, name: str, column, **options):
        if isinstance(column, ColumnRef):
            self.base, column = column.table, column.name
        else:
            self.base = None
        if not isinstance(column, str):
            raise TypeError(f"{name}: the first argument is a column of the base table, not {column!r}")
        self.name, self.column = name, column
        self.options = {k: v for k, v in options.items() if v is not None}

    def ast(self) -> exp.Expr:
        return func(self.name, [exp.Column(this=ident(self.column))], {k: literal(v) for k, v in self.options.items()})

    def __repr__(self) -> str:
        from .dialect import to_sql

        return f"<pxt.Iterator {to_sql(self.ast())}>"
