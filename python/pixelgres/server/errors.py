"""Errors raised by server code for bad requests.

``plpy.error`` reports "plpy.Error: <message>" with SQLSTATE XX000 (internal error), which
reads like a crash. ``fail`` raises a plpy.Error subclass named in builtins, which PL/Python
reports as "PixelgresError: <message>", with a real SQLSTATE (default 22023, invalid
parameter value) and the same detail/hint support.
"""
import plpy


class PixelgresError(plpy.Error):
    pass


PixelgresError.__module__ = "builtins"


def fail(message, detail=None, hint=None, sqlstate="22023"):
    e = PixelgresError(message)
    e.sqlstate = sqlstate
    if detail is not None:
        e.detail = detail
    if hint is not None:
        e.hint = hint
    raise e
