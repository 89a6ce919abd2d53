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
    from .core import deps

    mods = {name: deps.need(name) for name in ("PIL", "av", "numpy", "openai")}
    return json.dumps({
        "pixelgres": __version__,
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "python_dir": sys.path[0],
        "packages": {name: {"version": getattr(m, "__version__", None), "path": m.__file__}
                     for name, m in mods.items()},
    })


# The layers, from the bottom up; each imports only from those below it (tests/test_layers.py).
# Hand-written SQL function bodies (and @pxt.udf bodies) reach their module through
# srv.<short name>, loaded on first use so the boot stays light; generated ones import it.
ENTRY = {
    "batch": "core.batch",
    "catalog": "catalog",
    "faces": "faces",
    "store": "media.store",
    "image": "media.image",
    "history": "versioning.history",
    "vacuum": "versioning.vacuum",
    "tables": "ddl.tables",
    "revert": "versioning.revert",
    "work": "ddl.work",
}


def __getattr__(name: str):
    import importlib

    if name in ENTRY:
        return importlib.import_module(f"{__name__}.{ENTRY[name]}")
    raise AttributeError(name)
