"""pixelgres: multimodal AI data infrastructure inside PostgreSQL.

``import pixelgres as pxt`` gives the Pixeltable-style client API. The package also holds
the server-side code (``pixelgres.server``) that the backend imports from its private
directory, where psycopg and sqlglot's client side are not installed: the client API is
therefore loaded lazily, on first access to one of its names (PEP 562), and
``import pixelgres`` itself imports nothing but the version.
"""
from ._version import __version__

_CLIENT_NAMES = frozenset({
    "init", "Session", "create_table", "get_table", "drop_table", "list_tables", "create_dir", "drop_dir",
    "list_dirs", "create_view", "create_snapshot", "process_pending", "Table", "Query", "ResultSet", "Expr", "UpdateStatus", "Error",
    "udf", "Udf", "SqlFunction", "function", "store_media", "media_value", "ColumnType", "Type",
    "Image", "Video", "Audio", "Document", "String", "Int", "Float", "Bool", "Json", "Timestamp", "Date", "Bytes",
})

__all__ = ["__version__", *sorted(_CLIENT_NAMES)]


def __getattr__(name: str):
    if name == "functions":
        import importlib

        return importlib.import_module(f"{__name__}.functions")
    if name in _CLIENT_NAMES:
        from . import client, functions  # noqa: F401 - functions registers expression members

        value = getattr(client, name)
        globals()[name] = value  # later accesses skip this function
        return value
    raise AttributeError(f"module 'pixelgres' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | _CLIENT_NAMES)
