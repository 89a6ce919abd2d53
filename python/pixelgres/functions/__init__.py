"""SQL functions as Pixeltable-style Python callables: aggregates here; ``image``, ``string``,
``video`` (frame_iterator and other iterators), ``openai``, ``huggingface`` in submodules.

Every function builds an expression; the database evaluates it. Importing this package
imports the client (sqlglot), so server code never imports it.
"""
from __future__ import annotations

from ..client.exprs import Agg, lift
from . import image, string  # noqa: F401 - register their expression members


def count(expr=None):
    """``count(*)`` or ``count(expr)`` (non-NULL values)."""
    return Agg("count", None if expr is None else lift(expr))


def sum(expr):  # noqa: A001 - Pixeltable's name
    return Agg("sum", lift(expr))


def min(expr):  # noqa: A001
    return Agg("min", lift(expr))


def max(expr):  # noqa: A001
    return Agg("max", lift(expr))


def mean(expr):
    return Agg("mean", lift(expr))


__all__ = ["count", "sum", "min", "max", "mean"]
