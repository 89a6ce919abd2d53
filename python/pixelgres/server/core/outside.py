"""A stand-in for PL/Python's ``plpy`` in processes that run outside PostgreSQL (the model server).

Most server modules import ``plpy`` at the top, since most of what they do needs the
database. The model server runs the parts that never call it (provider clients and wire
formats, the request runner, local inference) but imports their modules whole. This stand-in
lets them import; its exception classes exist so ``except plpy.SPIError`` clauses still read
right, and calling any of its functions fails loudly instead of doing half a database
operation.
"""
from __future__ import annotations

import sys
import types


class Error(Exception):
    """plpy.Error: the base of pixelgres's SQL errors (core/errors.py subclasses it)."""


class Fatal(Error):
    """plpy.Fatal."""


class SPIError(Error):
    """plpy.SPIError: never raised here, but ``except plpy.SPIError`` clauses name it."""


def _absent(name: str):
    def call(*args, **kwargs):
        raise RuntimeError(f"plpy.{name}() was called outside PostgreSQL (in the model server)")
    return call


def install() -> None:
    """Make ``import plpy`` work in this process, unless the real one is there."""
    if "plpy" in sys.modules:
        return
    m = types.ModuleType("plpy", "outside PostgreSQL: see pixelgres.server.core.outside")
    m.Error, m.Fatal, m.SPIError = Error, Fatal, SPIError
    m.__getattr__ = _absent  # PEP 562: every other name is a function that refuses
    sys.modules["plpy"] = m
