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


def error(message, detail=None, hint=None, sqlstate="22023") -> PixelgresError:
    e = PixelgresError(message)
    e.sqlstate = sqlstate
    if detail is not None:
        e.detail = detail
    if hint is not None:
        e.hint = hint
    return e


def fail(message, detail=None, hint=None, sqlstate="22023"):
    raise error(message, detail, hint, sqlstate)


class MediaError(Exception):
    """A media value that cannot be used; the message names the value."""


def sql_media_error(message: str):
    """A MediaError as an SQL error, SQLSTATE 22023, reported by PL/Python as
    "MediaError: <message>" (a builtins-named plpy.Error subclass avoids the usual
    "plpy.Error: " prefix)."""
    err = _SqlMediaError(message)
    err.sqlstate = "22023"
    return err


class _SqlMediaError(plpy.Error):
    pass


_SqlMediaError.__name__ = _SqlMediaError.__qualname__ = "MediaError"
_SqlMediaError.__module__ = "builtins"


def as_sql(e: BaseException) -> BaseException:
    """A row's error as ``guard`` would raise it (for batched functions, which return errors):
    MediaError and ValueError with SQLSTATE 22023, others unchanged."""
    if isinstance(e, MediaError):
        return sql_media_error(str(e))
    if isinstance(e, ValueError):
        return error(str(e))
    return e


def guard(fn, *args):
    """Call ``fn`` for an SQL function: a MediaError (a bad media value) and a ValueError (a bad
    argument) become SQL errors with SQLSTATE 22023 and their message, not tracebacks."""
    try:
        return fn(*args)
    except MediaError as e:
        raise sql_media_error(str(e)) from None
    except ValueError as e:
        fail(str(e))


def rows(fn, *args) -> list:
    """``guard`` for a set-returning function: its rows, collected before returning (the
    function scan materialises them anyway, and an error raised while PostgreSQL pulls rows
    from a generator loses its message)."""
    try:
        return list(fn(*args))
    except MediaError as e:
        raise sql_media_error(str(e)) from None
    except ValueError as e:
        fail(str(e))
