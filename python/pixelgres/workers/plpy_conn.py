"""PL/Python's ``plpy``, served by a psycopg connection, for server code run by workers.

A Ray worker runs the same batched function implementations a backend runs
(pixelgres.server.core.batch.REGISTRY). Their database parts — the endpoint and its key, rate
limits, the result cache, interrupt checks — call ``plpy``; here each call becomes a query
on the worker's own connection, as the worker's role, with the database's and role's
settings. Values come back as PL/Python gives them (json, jsonb, timestamps as text;
numeric as Decimal; arrays as lists), and each parameter is sent as text with the type its
``prepare`` declared, so the server reads it exactly as PL/Python's plan would. Each
statement commits on its own (autocommit): what server code writes outside the table's
statement (the result cache) is kept even if the worker dies afterwards.
"""
from __future__ import annotations

import sys
import threading
import types

import psycopg
from psycopg import adapt, pq
from psycopg.types.string import TextLoader

_TEXT_TYPES = ("json", "jsonb", "timestamp", "timestamptz", "date", "time", "timetz", "interval",
               "uuid", "inet", "cidr", "xid", "regclass", "regtype")


class Error(Exception):
    """plpy.Error."""


class Fatal(Error):
    """plpy.Fatal."""


class SPIError(Error):
    """plpy.SPIError: a query failed; ``sqlstate`` as PL/Python gives it."""

    def __init__(self, message: str, sqlstate: str | None = None):
        super().__init__(message)
        self.sqlstate = sqlstate


class Result(list):
    """plpy.execute's result: a list of dict rows with ``nrows()``."""

    def __init__(self, rows, nrows: int):
        super().__init__(rows)
        self._n = nrows

    def nrows(self) -> int:
        return self._n


class Plan:
    __slots__ = ("query", "types")

    def __init__(self, query: str, types_: list):
        self.query, self.types = query, list(types_)


class _Typed:
    """A parameter as the text its declared type reads."""
    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text


def _array_item(v) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, (list, tuple)):
        return _array(v)
    s = _text(v)
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _array(values) -> str:
    return "{" + ",".join(_array_item(v) for v in values) + "}"


def _text(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (bytes, bytearray, memoryview)):
        return "\\x" + bytes(v).hex()
    if isinstance(v, (list, tuple)):
        return _array(v)
    return str(v)


class Shim:
    """The module installed as ``plpy``: one connection, used by one thread at a time."""

    Error, Fatal, SPIError = Error, Fatal, SPIError

    def __init__(self, dsn: str, settings: dict | None = None):
        self.conn = psycopg.connect(dsn, autocommit=True)
        for name in _TEXT_TYPES:
            self.conn.adapters.register_loader(name, TextLoader)
        for k, v in (settings or {}).items():
            self.conn.execute("SELECT pg_catalog.set_config(%s, %s, false)", (k, v))
        self.lock = threading.Lock()
        self._types: dict = {}     # declared type name -> dumper class for its oid
        self.messages: list = []   # (level, message): what plpy.notice/warning would have said

    # -- queries -------------------------------------------------------------------------
    def prepare(self, query: str, types_=None) -> Plan:
        return Plan(query, types_ or [])

    def _dumper(self, type_name: str) -> type:
        cls = self._types.get(type_name)
        if cls is None:
            oid = self.conn.execute("SELECT %s::regtype::oid", (type_name,)).fetchone()[0]
            wrapper = type("Typed_" + str(oid), (_Typed,), {"__slots__": ()})

            class Dumper(adapt.Dumper):
                format = pq.Format.TEXT

                def dump(self, obj):
                    return obj.text.encode()
            Dumper.oid = oid
            self.conn.adapters.register_dumper(wrapper, Dumper)
            cls = self._types[type_name] = wrapper
        return cls

    def execute(self, query, args=None, limit: int = 0) -> Result:
        with self.lock:
            if isinstance(query, Plan):
                params = [None if a is None else self._dumper(t)(_text(a)) for t, a in zip(query.types, args or [])]
                text = query.query
            else:
                params, text = None, query
            try:
                cur = psycopg.RawCursor(self.conn, row_factory=psycopg.rows.dict_row)
                cur.execute(text, params)
                rows = cur.fetchall() if cur.description else []
                return Result(rows[:limit] if limit else rows, cur.rowcount if cur.rowcount >= 0 else len(rows))
            except psycopg.Error as e:
                raise SPIError(str(e).strip(), getattr(e, "sqlstate", None)) from None

    def cursor(self, query, args=None):
        return iter(self.execute(query, args))

    def quote_ident(self, s: str) -> str:
        return psycopg.sql.Identifier(s).as_string(self.conn)

    def quote_literal(self, s: str) -> str:
        return psycopg.sql.Literal(s).as_string(self.conn)

    def quote_nullable(self, s) -> str:
        return "NULL" if s is None else self.quote_literal(s)

    def subtransaction(self):
        raise RuntimeError("plpy.subtransaction() outside PostgreSQL: worker code runs each query on its own")

    # -- messages --------------------------------------------------------------------------
    def _say(self, level: str, msg) -> None:
        self.messages.append((level, str(msg)))
        if level in ("warning", "error"):
            print(f"pixelgres worker: {level}: {msg}", file=sys.stderr, flush=True)

    def debug(self, msg, *a, **k):
        """Dropped, as a backend drops DEBUG messages at the default log levels."""

    def log(self, msg, *a, **k):
        self._say("log", msg)

    def info(self, msg, *a, **k):
        self._say("info", msg)

    def notice(self, msg, *a, **k):
        self._say("notice", msg)

    def warning(self, msg, *a, **k):
        self._say("warning", msg)

    def error(self, msg, *a, **k):
        raise Error(msg)

    def fatal(self, msg, *a, **k):
        raise Fatal(msg)

    def close(self) -> None:
        self.conn.close()


def install(dsn: str, settings: dict | None = None) -> Shim:
    """Make ``import plpy`` in this process give a Shim on a new connection to ``dsn``."""
    shim = Shim(dsn, settings)
    m = types.ModuleType("plpy", __doc__.split("\n\n")[0])
    for name in ("Error", "Fatal", "SPIError"):
        setattr(m, name, getattr(shim, name))
    for name in ("prepare", "execute", "cursor", "quote_ident", "quote_literal", "quote_nullable", "subtransaction",
                 "debug", "log", "info", "notice", "warning", "error", "fatal"):
        setattr(m, name, getattr(shim, name))
    m.shim = shim
    sys.modules["plpy"] = m
    return shim
