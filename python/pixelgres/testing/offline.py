"""Server modules imported outside a backend, for tests of their pure parts."""
import importlib
import importlib.util
import sys
import types


def server_module(name: str):
    """``pixelgres.server.<name>``. core.errors subclasses plpy.Error, so outside a backend a
    stand-in plpy is put in place while it is imported (and removed again, for other suites)."""
    import pixelgres.server  # noqa: F401  (first, with no plpy importable: it skips its database check)
    full = f"pixelgres.server.{name}"
    if "plpy" in sys.modules or importlib.util.find_spec("plpy"):
        return importlib.import_module(full)
    sys.modules["plpy"] = types.SimpleNamespace(Error=type("Error", (Exception,), {}))
    try:
        return importlib.import_module(full)
    finally:
        del sys.modules["plpy"]
