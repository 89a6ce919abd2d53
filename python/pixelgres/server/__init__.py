"""Server-side pixelgres: the code plpython3u functions call inside the backend.

Imported only through pxt._boot(), from the private directory. Keep this module light:
heavy dependencies (Pillow, PyAV, numpy) are imported by the modules that use them, through
``deps.need`` so a missing one is a clear SQL error, not a traceback.
"""
import json
import sys

from .._version import __version__


def _check_extension_version() -> None:
    """The SQL of an older release calling this code: say how to fix it (pg_extension already
    holds the new version while ALTER EXTENSION ... UPDATE runs its script)."""
    try:
        import plpy
    except ImportError:  # outside a backend: tools and tests importing pure helpers
        return
    rows = plpy.execute("SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'pixelgres'")
    ext = rows[0]["extversion"] if rows else __version__
    if ext == __version__:
        return
    try:
        newer = tuple(map(int, __version__.split("."))) > tuple(map(int, ext.split(".")))
    except ValueError:
        newer = False
    fix = ("run ALTER EXTENSION pixelgres UPDATE" if newer else
           f"install pixelgres {ext}'s server Python (make install), or update the extension")
    raise RuntimeError(f"the pixelgres extension in this database is version {ext} and its server Python "
                       f"is version {__version__}: {fix}")


_check_extension_version()


def server_info() -> str:
    from . import deps

    mods = {name: deps.need(name) for name in ("PIL", "av", "numpy", "sqlglot")}
    return json.dumps({
        "pixelgres": __version__,
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "python_dir": sys.path[0],
        "packages": {name: {"version": getattr(m, "__version__", None), "path": m.__file__}
                     for name, m in mods.items()},
    })


def guard(fn, *args):
    """Call ``fn``; a MediaError becomes an SQL error, SQLSTATE 22023, reported by PL/Python as
    "MediaError: <message>" (raising a builtins-named plpy.Error subclass avoids the usual
    "plpy.Error: " prefix)."""
    from .media import MediaError

    try:
        return fn(*args)
    except MediaError as e:
        raise _sql_media_error(str(e)) from None


def _sql_media_error(message: str):
    import plpy

    cls = _SQL_ERRORS.get("MediaError")
    if cls is None:
        cls = _SQL_ERRORS["MediaError"] = type("MediaError", (plpy.Error,), {"__module__": "builtins"})
    err = cls(message)
    err.sqlstate = "22023"
    return err


_SQL_ERRORS: dict = {}


def validate_media(value: str, kind: str) -> None:
    from . import media

    if kind == "image":
        from . import image

        image.validate(value)
    else:
        media.local_path(value)


def __getattr__(name: str):
    """Submodules on first use (``srv.image``, ``srv.tables``...), keeping the boot light."""
    import importlib

    if name in ("media", "image", "tables", "triggers", "exprs", "batch", "sqlutil", "versioning",
                "openai_fns", "embeddings", "video", "documents", "audio", "iterators"):
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(name)
