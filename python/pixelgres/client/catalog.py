"""Module-level catalog calls: create_table, get_table, drop_table, list_tables, dirs, views,
snapshots. Pixeltable's directories are PostgreSQL schemas: ``'ml.images'`` is table
``images`` in schema ``ml``; a name without a directory lives in ``public``. Paths with more
than one directory level have no schema to map to and are refused.
"""
from __future__ import annotations

import re

from psycopg.types.json import Json
from sqlglot import exp

from . import session as _session
from . import types as T
from .errors import Error
from .exprs import ident
from .iterators import Iterator
from .table import Table

_VERSION = re.compile(r"^(?P<path>.+):(?P<v>\d+)$")
_SYSTEM_SCHEMAS = ("pxt", "pxt_internal", "information_schema", "public")


def _split(path: str) -> tuple[str, str]:
    if not isinstance(path, str) or not path.strip():
        raise Error("a table path is a non-empty string such as 'dir.table'")
    s = _session.get()
    parts = s.fetchone("SELECT parse_ident(%s)", (path,))[0]
    if len(parts) == 1:
        return "public", parts[0]
    if len(parts) == 2:
        return parts[0], parts[1]
    raise Error(f"invalid path {path!r}: pixelgres maps directories to PostgreSQL schemas, so a path is "
                "'table' or 'dir.table' (no nested directories)")


def _pxt_path(schema: str, name: str) -> str:
    return name if schema == "public" else f"{schema}.{name}"


def _type_spec(t) -> str:
    if isinstance(t, str):
        return t
    ct = T.from_python(t)
    return ct.name if ct in T.ALL else ct.pg


def _kind(s, schema: str, name: str) -> str | None:
    return s.fetchone("SELECT pxt.table_kind(%s)", (_q(schema, name),))[0]


def create_table(path: str, schema: dict | None = None, *, source=None, if_exists: str = "error",
                 comment: str | None = None, primary_key=None, media_validation: str = "on_write") -> Table:
    """``pxt.create_table('ml.images', {'image': pxt.Image, 'category': pxt.String})``.

    ``media_validation='on_read'`` leaves the media columns' check to the first read (very
    large remote files); by default every value is opened on insert."""
    s = _session.get()
    if media_validation not in ("on_write", "on_read"):
        raise Error(f"media_validation must be 'on_write' or 'on_read', not {media_validation!r}")
    if primary_key is not None:
        raise Error("primary_key is not supported: every managed table is keyed by _pxt_rowid")
    if if_exists not in ("error", "ignore", "replace", "replace_force"):
        raise Error(f"if_exists must be 'error', 'ignore', 'replace' or 'replace_force', not {if_exists!r}")
    if schema is None and source is None:
        raise Error("create_table needs a schema (column -> type) or a source to infer it from")
    if schema is None:
        schema = _infer_schema(source)
    sch, name = _split(path)
    spec = {c: _type_spec(t) for c, t in schema.items()}
    s.execute("SELECT pxt.create_table(%s, %s, if_exists => %s)",
              (_q(sch, name), Json(spec), "replace" if if_exists == "replace_force" else if_exists))
    t = Table(s, sch, name)
    if media_validation == "on_read":
        for c, col in t._columns().items():
            if col.col_type.media and not col.computed:
                s.execute("SELECT pxt.set_media_validation(%s, %s, 'on_read')", (t._path, c))
    if source is not None:
        t.insert(source)
    return t


def _infer_schema(source) -> dict:
    from .insert import _rows

    rows, _, _, _ = _rows(source)
    rows = list(rows)
    if not rows:
        raise Error("cannot infer a schema from an empty source")
    out = {}
    for k in rows[0]:
        vals = [r.get(k) for r in rows if r.get(k) is not None and r.get(k) == r.get(k)]
        ts = {T.of_value(v.item() if hasattr(v, "item") else v) for v in vals[:1000]}
        if ts <= {T.Int}:
            out[k] = T.Int if ts else T.String
        elif ts <= {T.Int, T.Float}:
            out[k] = T.Float
        elif len(ts) == 1:
            out[k] = ts.pop()
        else:
            out[k] = T.String
    return out


def get_table(path: str) -> Table:
    """A table, view or snapshot by path; ``'dir.table:N'`` is the table as of version N."""
    s = _session.get()
    m = _VERSION.match(path) if isinstance(path, str) else None
    if m:
        base = get_table(m.group("path"))
        s.require_function("at_version", "time travel (versioning)")
        # a temporary view: in pg_temp, its name is the regclass's last part
        rel = s.fetchone("SELECT x[array_length(x, 1)] FROM parse_ident(pxt.at_version(%s, %s)::text) x",
                         (base._path, int(m.group("v"))))[0]
        return Table(s, "pg_temp", rel, "version", base=base, version=(base._path, int(m.group("v"))))
    sch, name = _split(path)
    kind = _kind(s, sch, name)
    if kind is None:
        raise Error(f"table {path!r} does not exist")
    if kind == "unmanaged":
        raise Error(f"table {path!r} is not managed by pixelgres", hint="adopt it with SELECT pxt.manage(...)")
    return Table(s, sch, name, kind)


def drop_table(table, *, if_not_exists: str = "error", force: bool = False) -> None:
    s = _session.get()
    if isinstance(table, Table):
        path = table._path
        sch, name = table._schema, table._name
    else:
        sch, name = _split(table)
        path = _q(sch, name)
    kind = _kind(s, sch, name)
    if kind is None:
        if if_not_exists == "ignore":
            return
        raise Error(f"table {sch}.{name} does not exist")
    if kind == "snapshot":
        s.require_function("drop_snapshot", "snapshots")
        s.execute("SELECT pxt.drop_snapshot(%s)", (path,))
    elif kind == "view":
        s.require_function("drop_view", "iterator views")
        s.execute("SELECT pxt.drop_view(%s)", (path,))
    elif force:
        s.execute("SELECT pxt.drop_table(%s, force => true)", (path,))
    else:
        s.execute("SELECT pxt.drop_table(%s)", (path,))


def _q(sch: str, name: str) -> str:
    from .dialect import to_sql

    return to_sql(exp.Table(this=ident(name), db=ident(sch)))


def list_tables(dir_path: str = "", recursive: bool = True) -> list[str]:
    """Paths of managed tables, views and snapshots (in one directory if given)."""
    s = _session.get()
    rows = s.fetchall("SELECT schema, relname FROM pxt.list_tables() WHERE %s = '' OR schema = %s",
                      (dir_path, dir_path or ""))
    return [_pxt_path(a, b) for a, b in rows]


def create_dir(path: str, *, if_exists: str = "error") -> None:
    s = _session.get()
    if "." in path.strip('"'):
        raise Error(f"invalid directory {path!r}: directories are PostgreSQL schemas and do not nest")
    if _dir_exists(s, path):
        if if_exists in ("ignore", "replace"):
            return
        raise Error(f"directory {path!r} already exists")
    s.execute(exp.Create(this=exp.Table(db=ident(path)), kind="SCHEMA"))


def drop_dir(path: str, *, force: bool = False, if_not_exists: str = "error") -> None:
    s = _session.get()
    if path in _SYSTEM_SCHEMAS:
        raise Error(f"{path!r} cannot be dropped")
    if not _dir_exists(s, path):
        if if_not_exists == "ignore":
            return
        raise Error(f"directory {path!r} does not exist")
    tables = list_tables(path)
    if tables and not force:
        raise Error(f"directory {path!r} is not empty ({', '.join(tables)})", hint="drop_dir(..., force=True)")
    for t in tables:
        drop_table(t, if_not_exists="ignore", force=True)
    s.execute(exp.Drop(tables=[exp.Table(db=ident(path))], kind="SCHEMA", cascade=force))


def list_dirs() -> list[str]:
    s = _session.get()
    return [r[0] for r in s.fetchall("SELECT pxt.list_dirs()")]


def _dir_exists(s, path: str) -> bool:
    return s.fetchone("SELECT to_regnamespace(quote_ident(%s)) IS NOT NULL", (path,))[0]


def create_view(path: str, base, *, iterator: Iterator | None = None, additional_columns: dict | None = None,
                if_exists: str = "error") -> Table:
    """An iterator view (``pxt.create_view``: the iterator-views issue): rows expanded from
    each base row by ``iterator`` (``frame_iterator(videos.video, fps=1)``), kept in step."""
    from .query import Query

    s = _session.get()
    if isinstance(base, Query):
        raise Error("views over a filtered query are not supported yet; pixelgres views take an iterator")
    if not isinstance(base, Table):
        base = get_table(base)
    if iterator is None:
        raise Error("create_view needs iterator=... (e.g. frame_iterator(videos.video, fps=1))")
    s.require_function("create_view", "iterator views")
    from .dialect import to_sql

    sch, name = _split(path)
    s.execute("SELECT pxt.create_view(%s, %s, iterator => %s, if_exists => %s)",
              (_q(sch, name), base._path, to_sql(iterator.ast()), if_exists))
    v = Table(s, sch, name, "view", base=base)
    for col, e in (additional_columns or {}).items():
        v.add_computed_column(**{col: e})
    return v


def create_snapshot(path: str, base, *, if_exists: str = "error") -> Table:
    """A read-only snapshot of ``base`` as it is now (``pxt.create_snapshot``: the versioning issue)."""
    s = _session.get()
    if not isinstance(base, Table):
        base = get_table(base)
    s.require_function("create_snapshot", "snapshots (versioning)")
    sch, name = _split(path)
    if if_exists == "ignore" and _kind(s, sch, name):
        return Table(s, sch, name, "snapshot", base=base)
    s.execute("SELECT pxt.create_snapshot(%s, %s)", (_q(sch, name), base._path))
    return Table(s, sch, name, "snapshot", base=base)
