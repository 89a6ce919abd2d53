"""Import server dependencies with an error that says what is missing and where to fix it."""
import importlib
import sys


from .errors import fail as _fail


def need(name: str):
    try:
        return importlib.import_module(name)
    except ImportError as e:
        _fail(f"pixelgres server dependency {name!r} cannot be imported: {e}",
                   detail=f"server Python directory: {sys.path[0]}",
                   hint="run 'make install' (scripts/setup.sh) to install requirements-server.txt there")
