"""``Table``: a managed table (or view, snapshot, past version) and Pixeltable's methods on it.

Every method is one or a few calls of the ``pxt`` SQL API (``pxt.add_computed_column``,
``pxt.drop_column``, ``pxt.history``...) or plain DML built with sqlglot; the database does
the work. Columns come from ``pxt.describe``, which works alike for tables, views, snapshots
and time-travel views.
"""
from __future__ import annotations

import dataclasses

from sqlglot import exp

from . import types as T
from .dialect import to_sql
from .errors import Error
from .exprs import ColumnRef, Ctx, Expr, JsonPath, func, ident, lift, literal
from .insert import insert as _insert_rows
from .insert import insert_from_bucket
from .media import _OBJECTS
from .query import Query
from .resultset import ResultSet
from .status import UpdateStatus


@dataclasses.dataclass
class _Col:
    name: str
    col_type: T.ColumnType
    computed: bool
    expr: str | None


class Table:
    def __init__(self, session, schema: str, name: str, kind: str = "table", *, base=None, version=None):
        self._session, self._schema, self._name, self._kind = session, schema, name, kind
        self._base, self._version = base, version  # version: (base path, N) for time travel
        self._cols: dict[str, _Col] | None = None
        self._rowid: bool | None = None
        self._storage: exp.Table | None = None

    # -- identity -------------------------------------------------------------------------------
    def _name_ast(self) -> exp.Table:
        return exp.Table(this=ident(self._name), db=ident(self._schema))

    def _from_ast(self) -> exp.Table:
        """The relation queries and writes go to (pxt.internal_relation): a table's storage, an
        iterator view's joined rows, with the bookkeeping columns (_pxt_rowid...) that the
        name, a view of the user's columns, leaves out."""
        if self._storage is None:
            row = None
            if self._kind in ("table", "view"):
                row = self._session.fetchone("SELECT parse_ident(pxt.internal_relation(%s)::text)", (self._path,))
            parts = row[0] if row and row[0] else None
            self._storage = (exp.Table(this=ident(parts[-1]), db=ident(parts[0] if len(parts) == 2 else self._schema))
                             if parts else self._name_ast())
        return self._storage.copy()

    @property
    def _path(self) -> str:
        """``"schema"."name"``: how the pxt.* SQL functions take a table name."""
        return to_sql(self._name_ast())

    def __repr__(self) -> str:
        cols = ", ".join(f"{c.name}: {c.col_type!r}{' (computed)' if c.computed else ''}"
                         for c in self._columns().values())
        return f"<pxt.Table {self._schema}.{self._name} [{self._kind}] {cols}>"

    def _repr_html_(self) -> str:
        """In a notebook: the schema, computed expressions and the current version."""
        from .display import table_html

        version = None
        try:
            row = self._session.fetchone('SELECT version FROM pxt.list_tables() WHERE "schema" = %s AND relname = %s',
                                         (self._schema, self._name))
            version = row[0] if row else None
        except Exception:  # an older extension, or no right to the catalog: the schema alone
            version = None
        return table_html(self._kind, f"{self._schema}.{self._name}", version, list(self._columns().values()))

    def _setup_statements(self) -> list:
        if self._version:
            return [("SELECT pxt.at_version(%s, %s)", self._version)]
        return []

    # -- columns --------------------------------------------------------------------------------
    def _columns(self) -> dict[str, _Col]:
        if self._cols is None:
            rows = self._session.fetchall(
                "SELECT name, type, media_type, is_computed, expr, is_system FROM pxt.describe(%s)", (self._path,))
            self._rowid = any(r[0] == "_pxt_rowid" for r in rows)
            self._cols = {r[0]: _Col(r[0], T.from_pg(r[1], r[2]), r[3], r[4]) for r in rows if not r[5]}
        return self._cols

    def _refresh(self) -> None:
        self._cols = None

    def _has_rowid(self) -> bool:
        self._columns()
        return bool(self._rowid)

    def columns(self) -> list[str]:
        return list(self._columns())

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        cols = self._columns()
        if name in cols:
            c = cols[name]
            return ColumnRef(self, name, c.col_type, c.computed)
        raise AttributeError(f"{self._schema}.{self._name} has no column {name!r} (columns: {', '.join(cols)})")

    def __getitem__(self, name: str) -> ColumnRef:
        if not isinstance(name, str):
            raise TypeError("index a table with a column name")
        try:
            return self.__getattr__(name)
        except AttributeError as e:
            raise KeyError(str(e)) from None

    def _colname(self, c) -> str:
        if isinstance(c, ColumnRef):
            return c.name
        if isinstance(c, str):
            return c
        raise TypeError(f"a column is given by name or as t.column, not {c!r}")

    def _writable(self, what: str) -> None:
        if self._kind in ("snapshot", "version"):
            raise Error(f"{self._schema}.{self._name} is a {self._kind}: it is read-only ({what})")

    # -- queries --------------------------------------------------------------------------------
    def _query(self) -> Query:
        return Query(self)

    def select(self, *a, **k): return self._query().select(*a, **k)
    def where(self, p): return self._query().where(p)
    def order_by(self, *a, asc: bool = True): return self._query().order_by(*a, asc=asc)
    def limit(self, n, offset=None): return self._query().limit(n, offset)
    def group_by(self, *a): return self._query().group_by(*a)
    def head(self, n: int = 10): return self._query().head(n)
    def tail(self, n: int = 10): return self._query().tail(n)
    def collect(self): return self._query().collect()
    def show(self, n: int = 20): return self._query().show(n)
    def count(self) -> int: return self._query().count()
    def to_pandas(self): return self._query().to_pandas()
    def cursor(self, batch_size: int = 1000): return self._query().cursor(batch_size)
    def to_parquet(self, destination, *, embed_media: bool = False): return self._query().to_parquet(destination, embed_media=embed_media)

    def to_pytorch_dataset(self, image_format: str = "pt", **kw):
        return self._query().to_pytorch_dataset(image_format, **kw)

    # -- data -----------------------------------------------------------------------------------
    def insert(self, source=None, /, *, on_error: str = "abort", print_stats: bool = False,
               batch_size: int | None = None, show_progress: bool | None = None, **row) -> UpdateStatus:
        """Insert rows: a list of dicts, a pandas DataFrame, a CSV/Parquet path, a bucket URI of a
        Parquet/CSV/JSON-lines file (read by the server), or one row as kwargs."""
        self._writable("insert")
        if on_error != "abort":
            raise Error("insert(on_error=...) is not per insert in pixelgres: each computed column has its own "
                        "on_error, set by add_computed_column(..., on_error='ignore')")
        if source is None:
            if not row:
                raise TypeError("insert() needs rows (a list of dicts, a DataFrame, a file) or column=value arguments")
            source = [row]
        elif row:
            raise TypeError("insert() takes rows or column=value arguments, not both")
        if isinstance(source, str) and source.startswith(_OBJECTS):
            status = insert_from_bucket(self, source)
        else:
            status = _insert_rows(self, source, batch_size=batch_size, show_progress=show_progress)
        if print_stats:
            print(status)
        return status

    def _value_ast(self, col: _Col, v, ctx) -> exp.Expr:
        if isinstance(v, Expr):
            return v.ast(ctx)
        if col.col_type.media and v is not None:
            v = self._session.media_value(v)
        if col.col_type == T.Json and v is not None:
            import json

            return exp.Cast(this=exp.Literal.string(json.dumps(v)), to=exp.DataType.build("jsonb"))
        return literal(v)

    def update(self, value_spec: dict, where: Expr | None = None, cascade: bool = True) -> UpdateStatus:
        """``UPDATE ... SET col = value-or-expression [WHERE ...]``; computed columns follow."""
        self._writable("update")
        cols = self._columns()
        ctx = Ctx(self._session)
        sets = []
        for k, v in value_spec.items():
            name = self._colname(k)
            if name not in cols:
                raise Error(f"{self._schema}.{self._name} has no column {name!r}")
            if cols[name].computed:
                raise Error(f"cannot update computed column {name!r}: it is computed from other columns",
                            column=name)
            sets.append(exp.EQ(this=exp.Column(this=ident(name)), expression=self._value_ast(cols[name], v, ctx)))
        node = exp.Update(this=self._from_ast(), expressions=sets)
        if where is not None:
            node.set("where", exp.Where(this=where.ast(ctx)))
        n = self._session.execute(node).rowcount
        return UpdateStatus(num_rows=n, updated_cols=[self._colname(k) for k in value_spec])

    def delete(self, where: Expr | None = None) -> UpdateStatus:
        self._writable("delete")
        node = exp.Delete(this=self._from_ast())
        if where is not None:
            node.set("where", exp.Where(this=where.ast(Ctx(self._session))))
        return UpdateStatus(num_rows=self._session.execute(node).rowcount, verb="Deleted")

    # -- schema ---------------------------------------------------------------------------------
    def _call(self, fname: str, *args, **kwargs):
        """``SELECT "pxt"."fname"(%s, ..., key => %s)``: values travel as parameters."""
        items = [exp.Placeholder() for _ in args] + [exp.Kwarg(this=exp.Var(this=k), expression=exp.Placeholder())
                                                     for k in kwargs]
        call = exp.Dot(this=ident("pxt"), expression=exp.Anonymous(this=ident(fname), expressions=items))
        return self._session.fetchone(exp.Select(expressions=[call]), (*args, *kwargs.values()))

    def add_column(self, *, if_exists: str = "error", **kwargs) -> UpdateStatus:
        """``t.add_column(name=pxt.Int)``: a new input column (NULL in existing rows)."""
        self._writable("add_column")
        if len(kwargs) != 1:
            raise TypeError("add_column() takes exactly one name=type argument (see add_columns)")
        return self.add_columns(kwargs, if_exists=if_exists)

    def add_columns(self, schema: dict, *, if_exists: str = "error") -> UpdateStatus:
        self._writable("add_columns")
        for name, t in schema.items():
            if isinstance(t, Expr):
                raise TypeError(f"{name}: an expression makes a computed column; use add_computed_column")
            ct = T.from_python(t) if not isinstance(t, str) else None
            if name in self._columns():
                if if_exists == "ignore":
                    continue
                raise Error(f"column {name!r} already exists in {self._schema}.{self._name}")
            if self._session.has_function("add_column"):
                self._call("add_column", self._path, name, ct.name if ct and ct in T.ALL else (ct.pg if ct else t))
            else:
                coldef = exp.ColumnDef(this=ident(name), kind=exp.DataType.build(
                    ct.pg if ct else t, dialect="postgres", udt=True))
                self._session.execute(exp.Alter(this=self._from_ast(), kind="TABLE", actions=[coldef]))
            self._refresh()
        return UpdateStatus(num_rows=self.count(), updated_cols=list(schema), verb="Added")

    def add_computed_column(self, *, on_error: str = "abort", if_exists: str = "error", stored=None,
                            destination: str | None = None, **kwargs) -> UpdateStatus:
        """``t.add_computed_column(thumb=t.image.resize((256, 256)))``; backfills existing rows.

        ``destination='s3://bucket/prefix/'`` puts the media the column produces in a bucket
        (the server's ``pixelgres.allowed_buckets`` must allow it); the values are then URIs.

        A bare JSON path (``t.response.choices[0].message.content``) is stored as text, as
        ``->>`` reads it; ``.astype(pxt.Json)`` keeps JSON, ``.astype(pxt.Int)`` etc. cast."""
        from .progress import backfill

        self._writable("add_computed_column")
        if stored is False:
            raise Error("stored=False is not supported: pixelgres stores every computed column")
        if len(kwargs) != 1:
            raise TypeError("add_computed_column() takes exactly one name=expression argument")
        (name, e), = kwargs.items()
        e = lift(e)
        if isinstance(e, JsonPath):
            e = e.astype(T.String)
        sql = to_sql(e.ast(Ctx(self._session)))
        with backfill(self._session, f"computing {name}"):
            opts = {"destination": destination} if destination is not None else {}
            self._call("add_computed_column", self._path, name, sql, on_error=on_error, if_exists=if_exists, **opts)
        self._refresh()
        return self._status_of(name, "Computed")

    def _status_of(self, name: str, verb: str) -> UpdateStatus:
        cnt = exp.Count(this=exp.Star(), big_int=True)
        failed = exp.Filter(this=cnt.copy(), expression=exp.Where(
            this=_json_has_key(exp.Column(this=ident("_pxt_errors")), exp.Literal.string(name))))
        n, errs = self._session.fetchone(exp.Select(expressions=[cnt, failed]).from_(self._from_ast()))
        return UpdateStatus(num_rows=n, num_excs=errs, updated_cols=[name], cols_with_excs=[name] if errs else [],
                            errors_by_column={name: errs} if errs else {}, verb=verb)

    def drop_column(self, column, if_not_exists: str = "error") -> None:
        self._writable("drop_column")
        name = self._colname(column)
        if name not in self._columns() and if_not_exists == "ignore":
            return
        self._call("drop_column", self._path, name)
        self._refresh()

    def rename_column(self, old_name: str, new_name: str) -> None:
        self._writable("rename_column")
        if self._session.has_function("rename_column"):
            self._call("rename_column", self._path, old_name, new_name)
        else:
            self._session.execute(exp.Alter(this=self._from_ast(), kind="TABLE", actions=[
                exp.RenameColumn(this=exp.Column(this=ident(old_name)), to=exp.Column(this=ident(new_name)))]))
        self._refresh()

    def recompute_columns(self, *columns, errors_only: bool = False, cascade: bool = True) -> UpdateStatus:
        from .progress import backfill

        self._writable("recompute_columns")
        names = [self._colname(c) for c in columns]
        with backfill(self._session, f"recomputing {', '.join(names)}"):
            n = self._call("recompute_columns", self._path, names, errors_only)[0]
        return UpdateStatus(num_rows=n, updated_cols=names, verb="Recomputed")

    def describe(self) -> None:
        print(self._describe_text())

    def _describe_text(self) -> str:
        lines = [f"{self._kind} {self._schema}.{self._name}"]
        for c in self._columns().values():
            lines.append(f"  {c.name:24} {c.col_type!r:24} {('= ' + c.expr) if c.computed else ''}")
        return "\n".join(lines)

    def get_metadata(self) -> dict:
        return {"name": self._name, "schema": self._schema, "kind": self._kind,
                "columns": {c.name: {"type": repr(c.col_type), "computed_with": c.expr}
                            for c in self._columns().values()}}

    def errors(self) -> ResultSet:
        """Per-cell errors of computed columns with on_error='ignore' (``pxt.errors``)."""
        return self._sql_rows("errors", "rowid", "column", "error_type", "message", "sqlstate")

    def _sql_rows(self, fname: str, *cols: str, args=None) -> ResultSet:
        args = args if args is not None else (self._path,)
        call = exp.Dot(this=ident("pxt"), expression=exp.Anonymous(
            this=ident(fname), expressions=[exp.Placeholder() for _ in args]))
        node = exp.Select(expressions=[exp.Star()]).from_(exp.Table(this=call))
        cur = self._session.execute(node, args)
        names = [d.name for d in cur.description]
        return ResultSet(names, [None] * len(names), cur.fetchall(), self._session)

    # -- versioning (pxt.history / pxt.revert / pxt.create_snapshot: the versioning issue) -----------
    def history(self) -> ResultSet:
        self._session.require_function("history", "versioning")
        return self._sql_rows("history")

    def revert(self, *, if_pinned: str = "materialize") -> None:
        """Undo the latest version. A snapshot showing it keeps its rows (``'materialize'``), or
        ``if_pinned='error'`` refuses, as Pixeltable does."""
        self._writable("revert")
        self._session.require_function("revert", "versioning")
        self._call("revert", self._path, if_pinned=if_pinned)
        self._refresh()

    def get_versions(self) -> list[dict]:
        return list(self.history())

    # -- embedding indexes (pxt.add_embedding_index: the embedding-index issue) -------------------
    def add_embedding_index(self, column, *, idx_name: str | None = None, embedding=None, string_embed=None,
                            image_embed=None, metric: str = "cosine", if_exists: str = "error") -> None:
        from .progress import backfill
        from .udf import SqlFunction

        self._writable("add_embedding_index")
        self._session.require_function("add_embedding_index", "embedding indexes")
        fn = embedding or string_embed or image_embed
        if not isinstance(fn, SqlFunction):
            raise TypeError("add_embedding_index needs embedding= (or string_embed=/image_embed=): a pixelgres "
                            "embedding function such as embeddings.using(model=...) or "
                            "sentence_transformer.using(model='all-MiniLM-L6-v2')")
        kw = {"embedding": fn.partial_sql(), "metric": metric}
        if fn.query_partial_sql():
            kw["query_embedding"] = fn.query_partial_sql()
        if idx_name:
            kw["name"] = idx_name
        if if_exists != "error":
            kw["if_exists"] = if_exists
        with backfill(self._session, "embedding"):
            self._call("add_embedding_index", self._path, self._colname(column), **kw)
        self._refresh()

    def drop_embedding_index(self, *, column=None, idx_name: str | None = None) -> None:
        self._writable("drop_embedding_index")
        self._session.require_function("drop_embedding_index", "embedding indexes")
        if idx_name is None:
            if column is None:
                raise TypeError("drop_embedding_index() needs column= or idx_name=")
            idx_name = self._session.embedding_index(self, self._colname(column))["name"]
            if idx_name is None:
                raise Error(f"the embedding index on {self._colname(column)!r} has no name to drop it by")
        self._call("drop_embedding_index", self._path, idx_name)
        self._refresh()


def _json_has_key(node, key):
    """``node ? key`` (jsonb key exists), as the function jsonb_exists: sqlglot has no '?' operator
    for PostgreSQL and psycopg would read '?'-free text anyway."""
    return func("jsonb_exists", [node, key], schema=None)
