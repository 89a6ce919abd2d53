"""String functions as methods of string columns: ``t.s.upper()``, ``t.s.contains('dog')``...
Each maps to a PostgreSQL built-in; ``string_splitter`` is the iterator of the iterator issue."""
from __future__ import annotations

from ..client import types as T
from ..client.exprs import FuncCall, lift, register_members
from ..client.iterators import Iterator


def _f(name, *args, t=T.String):
    return FuncCall(name, list(args), col_type=t, schema=None)


def upper(s): return _f("upper", s)
def lower(s): return _f("lower", s)
def len(s): return _f("char_length", s, t=T.Int)  # noqa: A001 - Pixeltable's name
def strip(s): return _f("btrim", s)
def lstrip(s): return _f("ltrim", s)
def rstrip(s): return _f("rtrim", s)
def replace(s, old, new): return _f("replace", s, old, new)
def startswith(s, prefix): return _f("starts_with", s, prefix, t=T.Bool)
def endswith(s, suffix): return _f("right", s, _f("char_length", lift(suffix), t=T.Int)) == suffix
def contains(s, sub): return _f("strpos", s, sub, t=T.Int) > 0
def slice(s, start: int, stop: int):  # noqa: A001
    return _f("substr", s, start + 1, stop - start)


def string_splitter(text, separators: str = "sentence"):
    """Iterator: one row per piece of ``text`` (SQL ``pxt.string_splitter``)."""
    return Iterator("string_splitter", text, separators=separators)


MEMBERS = {name: ("method", fn) for name, fn in {
    "upper": upper, "lower": lower, "len": len, "strip": strip, "lstrip": lstrip, "rstrip": rstrip,
    "replace": replace, "startswith": startswith, "endswith": endswith, "contains": contains,
    "slice": slice}.items()}
register_members(T.String, MEMBERS)
