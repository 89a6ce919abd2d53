"""The notebook API (``import pixelgres as pxt``): Pixeltable's calls over pixelgres's SQL.

Thin by design: every call builds SQL (sqlglot ASTs, ``dialect.Pixelgres``) for the ``pxt``
SQL API or plain DML; the database computes. Depends on psycopg and sqlglot, never on the
server package.
"""
from __future__ import annotations

from .catalog import (create_dir, create_snapshot, create_table, create_view, drop_dir, drop_table, get_table,
                      list_dirs, list_tables)
from .errors import Error
from .exprs import Expr
from .query import Query
from .resultset import ResultSet
from .session import Session, init
from .table import Table, UpdateStatus
from .types import (Audio, Bool, Bytes, ColumnType, Date, Document, Float, Image, Int, Json, String, Timestamp,
                    Type, Video)
from .udf import SqlFunction, Udf, udf
from .work import process_pending


def function(name: str, returns=None, *, schema: str = "pxt") -> SqlFunction:
    """Any SQL function as a callable for expressions: ``pxt.function('upper', pxt.String, schema=None)``."""
    from .types import from_python

    return SqlFunction(name, from_python(returns) if returns is not None else None, schema=schema)


def store_media(data: bytes, ext: str = "bin") -> str:
    """Upload bytes into the server's media store; returns ``media://<sha256>.<ext>``."""
    from .session import get

    return get().fetchone("SELECT pxt.store_media(%s, %s)", (data, ext))[0]


def media_value(value) -> str:
    """A path / URL / bytes / PIL image as a media reference the server can read (uploads if needed)."""
    from .session import get

    return get().media_value(value)


__all__ = [
    "init", "Session", "create_table", "get_table", "drop_table", "list_tables", "create_dir", "drop_dir",
    "list_dirs", "create_view", "create_snapshot", "process_pending", "Table", "Query", "ResultSet", "Expr", "UpdateStatus", "Error",
    "udf", "Udf", "SqlFunction", "function", "store_media", "media_value", "ColumnType", "Type",
    "Image", "Video", "Audio", "Document", "String", "Int", "Float", "Bool", "Json", "Timestamp", "Date", "Bytes",
]
