"""Pixeltable-style expressions that become sqlglot ASTs.

``t.a + 1``, ``t.response.choices[0].message.content``, ``t.image.resize((256, 256))``,
``t.caption.similarity(string=...)``: each is an ``Expr`` whose ``ast(ctx)`` builds a sqlglot
expression; ``dialect.to_sql`` generates the text (identifiers quoted, literals escaped by
sqlglot). Nothing here evaluates anything: the database does.

Operand rules: a non-atomic operand is wrapped in parentheses, so the generated SQL never
depends on operator precedence (PostgreSQL's and sqlglot's differ for pgvector and JSON
operators) and parsing it back gives the same AST. JSON values compared with, or used in
arithmetic with, a typed operand are extracted as that type (``(j ->> 'n')::float8 > 3``).
"""
from __future__ import annotations

import datetime as _dt
import json
import math

from sqlglot import exp

from . import types as T
from .dialect import DIALECT, OPERATORS, to_sql

_ATOMIC = (exp.Column, exp.Literal, exp.Null, exp.Boolean, exp.Paren, exp.Cast, exp.Dot, exp.Anonymous,
           exp.Array, exp.Star, exp.Count, exp.Sum, exp.Min, exp.Max, exp.Avg, exp.Placeholder)


class Ctx:
    """Rendering context: the session (catalog lookups for similarity, creating UDFs)."""

    def __init__(self, session=None):
        self.session = session


def wrap(node: exp.Expr) -> exp.Expr:
    return node if isinstance(node, _ATOMIC) else exp.Paren(this=node)


def ident(name: str) -> exp.Identifier:
    return exp.Identifier(this=name, quoted=True)


def datatype(t: T.ColumnType) -> exp.DataType:
    return exp.DataType.build(t.pg, dialect=DIALECT, udt=True)


def func(name: str, args=(), kwargs=None, schema: str | None = "pxt") -> exp.Expr:
    """``"schema"."name"(args..., key => value)`` with already-built argument ASTs."""
    items = list(args) + [exp.Kwarg(this=exp.Var(this=k), expression=v) for k, v in (kwargs or {}).items()]
    call = exp.Anonymous(this=ident(name), expressions=items)
    return exp.Dot(this=ident(schema), expression=call) if schema else call


def literal(v) -> exp.Expr:
    """A Python value as a SQL literal (sqlglot quotes and escapes it)."""
    if v is None:
        return exp.Null()
    if isinstance(v, bool):
        return exp.Boolean(this=v)
    if isinstance(v, int):
        return exp.Neg(this=exp.Literal.number(-v)) if v < 0 else exp.Literal.number(v)
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            return exp.Cast(this=exp.Literal.string(str(v).replace("inf", "Infinity").replace("nan", "NaN")),
                            to=datatype(T.Float))
        return exp.Neg(this=exp.Literal.number(repr(-v))) if v < 0 else exp.Literal.number(repr(v))
    if isinstance(v, str):
        return exp.Literal.string(v)
    if isinstance(v, _dt.datetime):
        return exp.Cast(this=exp.Literal.string(v.isoformat()), to=datatype(T.Timestamp))
    if isinstance(v, _dt.date):
        return exp.Cast(this=exp.Literal.string(v.isoformat()), to=datatype(T.Date))
    if isinstance(v, (bytes, bytearray, memoryview)):
        return exp.Cast(this=exp.Literal.string("\\x" + bytes(v).hex()), to=datatype(T.Bytes))
    if isinstance(v, (dict, list, tuple)):
        return exp.Cast(this=exp.Literal.string(json.dumps(v)), to=datatype(T.Json))
    if hasattr(v, "item") and callable(v.item):  # numpy scalars
        return literal(v.item())
    raise TypeError(f"cannot use a {type(v).__name__} value in an expression")


def contains_expr(v) -> bool:
    if isinstance(v, Expr):
        return True
    if isinstance(v, dict):
        return any(contains_expr(x) for x in v.values())
    if isinstance(v, (list, tuple)):
        return any(contains_expr(x) for x in v)
    return False


def lift(v) -> "Expr":
    """A Python value or structure (possibly holding expressions) as an Expr."""
    if isinstance(v, Expr):
        return v
    if isinstance(v, (dict, list, tuple)) and contains_expr(v):
        return JsonBuild(v)
    return Lit(v)


class Expr:
    """An expression over a table's columns; build with operators and methods, never evaluated here."""

    col_type: T.ColumnType | None = None

    def ast(self, ctx: Ctx) -> exp.Expr:
        raise NotImplementedError

    def sql(self, session=None) -> str:
        return to_sql(self.ast(Ctx(session)))

    def __repr__(self) -> str:
        try:
            return f"<pxt.Expr {self.sql()} : {self.col_type!r}>"
        except Exception:
            return f"<pxt.Expr {type(self).__name__} : {self.col_type!r}>"

    def __bool__(self):
        raise TypeError("a pixelgres expression has no truth value: use & | ~ instead of and/or/not, "
                        "and .isin() instead of 'in'")

    __hash__ = object.__hash__

    # -- attribute access: JSON paths and type-specific methods ----------------------------
    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        member = _member(self, name)
        if member is not None:
            return member
        if self.col_type == T.Json:
            return JsonPath(self, [name])
        raise AttributeError(f"{type(self).__name__} of type {self.col_type!r} has no attribute {name!r}")

    def __getitem__(self, key):
        if self.col_type != T.Json:
            raise TypeError(f"only JSON values can be indexed, not {self.col_type!r}")
        return JsonPath(self, [key])

    # -- operators -------------------------------------------------------------------------
    def _bin(self, cls, other, result, reverse=False):
        other = lift(other)
        a, b = (other, self) if reverse else (self, other)
        return BinOp(cls, a, b, result)

    def _arith(self, cls, other, reverse=False, div=False):
        o = lift(other)
        if cls is exp.Add and (self.col_type == T.String or o.col_type == T.String):
            return self._bin(exp.DPipe, o, T.String, reverse)
        both_int = self.col_type == T.Int and o.col_type == T.Int
        return self._bin(cls, o, T.Float if div or not both_int else T.Int, reverse)

    def __add__(self, o): return self._arith(exp.Add, o)
    def __radd__(self, o): return self._arith(exp.Add, o, True)
    def __sub__(self, o): return self._arith(exp.Sub, o)
    def __rsub__(self, o): return self._arith(exp.Sub, o, True)
    def __mul__(self, o): return self._arith(exp.Mul, o)
    def __rmul__(self, o): return self._arith(exp.Mul, o, True)
    def __truediv__(self, o): return self._arith(exp.Div, o, div=True)
    def __rtruediv__(self, o): return self._arith(exp.Div, o, True, div=True)
    def __mod__(self, o): return self._arith(exp.Mod, o)
    def __rmod__(self, o): return self._arith(exp.Mod, o, True)
    def __floordiv__(self, o): return FloorDiv(self, lift(o))
    def __rfloordiv__(self, o): return FloorDiv(lift(o), self)
    def __neg__(self): return Unary(exp.Neg, self, self.col_type)
    def __invert__(self): return Unary(exp.Not, self, T.Bool)
    def __and__(self, o): return self._bin(exp.And, o, T.Bool)
    def __rand__(self, o): return self._bin(exp.And, o, T.Bool, True)
    def __or__(self, o): return self._bin(exp.Or, o, T.Bool)
    def __ror__(self, o): return self._bin(exp.Or, o, T.Bool, True)

    def __eq__(self, o):
        return IsNull(self) if o is None else self._bin(exp.EQ, o, T.Bool)

    def __ne__(self, o):
        return IsNull(self, negate=True) if o is None else self._bin(exp.NEQ, o, T.Bool)

    def __lt__(self, o): return self._bin(exp.LT, o, T.Bool)
    def __le__(self, o): return self._bin(exp.LTE, o, T.Bool)
    def __gt__(self, o): return self._bin(exp.GT, o, T.Bool)
    def __ge__(self, o): return self._bin(exp.GTE, o, T.Bool)

    def isin(self, values) -> "Expr":
        return IsIn(self, [lift(v) for v in values])

    def is_null(self) -> "Expr":
        return IsNull(self)

    def astype(self, t) -> "Expr":
        return Cast(self, T.from_python(t))

    def similarity(self, string: str | None = None, image=None, *, idx: str | None = None) -> "Expr":
        """Similarity to a query string or image under this column's embedding index (higher = closer)."""
        if (string is None) == (image is None):
            raise TypeError("similarity() takes exactly one of string= or image=")
        if not isinstance(self, ColumnRef):
            raise TypeError("similarity() applies to a column with an embedding index")
        return Similarity(self, string if string is not None else image, "image" if image is not None else "string", idx)

    def apply(self, fn, *, col_type=None):
        raise NotImplementedError("apply() would run Python in the client; declare the function with "
                                  "@pxt.udf so the database evaluates it")


MEMBERS: dict = {}  # column type -> {name: ("method" | "property", fn)}


def register_members(col_type, members: dict) -> None:
    """Type-specific methods and properties (``img.resize(...)``, ``s.upper()``): the modules of
    pixelgres.functions that define them register them here when they load."""
    MEMBERS.setdefault(col_type, {}).update(members)


def _member(e: Expr, name: str):
    table = MEMBERS.get(e.col_type)
    if table and name in table:
        kind, fn = table[name]
        if kind == "property":
            return fn(e)
        return lambda *a, **k: fn(e, *a, **k)
    return None


# --- nodes ------------------------------------------------------------------------------------
class Lit(Expr):
    def __init__(self, value):
        self.value, self.col_type = value, T.of_value(value)

    def ast(self, ctx):
        return literal(self.value)


class ColumnRef(Expr):
    def __init__(self, table, name: str, col_type: T.ColumnType, computed: bool = False):
        self.table, self.name, self.col_type, self.computed = table, name, col_type, computed

    def ast(self, ctx):
        return exp.Column(this=ident(self.name))


def _json_text(node: exp.Expr) -> exp.Expr:
    """A jsonb AST read as text: last ``->`` step becomes ``->>``, else ``#>> '{}'``."""
    if isinstance(node, exp.JSONExtract):
        return exp.JSONExtractScalar(**node.args)
    return exp.JSONBExtractScalar(this=wrap(node), expression=exp.Literal.string("{}"))


def _as_type(e: Expr, target: T.ColumnType | None, ctx: Ctx) -> exp.Expr:
    """AST of ``e``; a JSON value meeting a typed operand is extracted as that type."""
    node = e.ast(ctx)
    if e.col_type != T.Json or target is None or target == T.Json:
        return node
    text = _json_text(node)
    if target == T.String:
        return text
    if target.is_numeric:
        return exp.Cast(this=text, to=datatype(T.Float))
    return exp.Cast(this=text, to=datatype(target))


class BinOp(Expr):
    def __init__(self, cls, a: Expr, b: Expr, col_type):
        self.cls, self.a, self.b, self.col_type = cls, a, b, col_type

    def ast(self, ctx):
        ta, tb = self.a.col_type, self.b.col_type
        left = _as_type(self.a, tb, ctx)
        right = _as_type(self.b, ta, ctx)
        args = {"this": wrap(left), "expression": wrap(right)}
        if self.cls is exp.Div:
            if ta == T.Int and tb == T.Int:  # Python's / is true division
                args["this"] = exp.Cast(this=left, to=datatype(T.Float))
            args.update(typed=True, safe=False)
        if self.cls is exp.DPipe:
            args["safe"] = True
        return self.cls(**args)


class FloorDiv(Expr):
    def __init__(self, a: Expr, b: Expr):
        self.a, self.b = a, b
        self.col_type = T.Int if a.col_type == T.Int and b.col_type == T.Int else T.Float

    def ast(self, ctx):
        q = exp.Div(this=exp.Cast(this=self.a.ast(ctx), to=datatype(T.Float)), expression=wrap(self.b.ast(ctx)),
                    typed=True, safe=False)
        fl = exp.Floor(this=q)
        return exp.Cast(this=fl, to=datatype(T.Int)) if self.col_type == T.Int else fl


class Unary(Expr):
    def __init__(self, cls, a: Expr, col_type):
        self.cls, self.a, self.col_type = cls, a, col_type

    def ast(self, ctx):
        return self.cls(this=wrap(self.a.ast(ctx)))


class IsNull(Expr):
    col_type = T.Bool

    def __init__(self, a: Expr, negate: bool = False):
        self.a, self.negate = a, negate

    def ast(self, ctx):
        node = exp.Is(this=wrap(self.a.ast(ctx)), expression=exp.Null())
        if self.negate:
            node.set("negate", True)
        return node


class IsIn(Expr):
    col_type = T.Bool

    def __init__(self, a: Expr, values: list):
        self.a, self.values = a, values

    def ast(self, ctx):
        if not self.values:
            return exp.Boolean(this=False)
        t = self.values[0].col_type
        return exp.In(this=wrap(_as_type(self.a, t, ctx)), expressions=[v.ast(ctx) for v in self.values])


class Cast(Expr):
    def __init__(self, a: Expr, t: T.ColumnType):
        self.a, self.col_type = a, t

    def ast(self, ctx):
        if self.a.col_type == T.Json and self.col_type != T.Json:
            text = _json_text(self.a.ast(ctx))
            return text if self.col_type == T.String else exp.Cast(this=text, to=datatype(self.col_type))
        return exp.Cast(this=self.a.ast(ctx), to=datatype(self.col_type))


class JsonPath(Expr):
    """``base.key[0]['other']``: jsonb navigation (``->``); ``.astype(pxt.String)`` reads text."""

    col_type = T.Json

    def __init__(self, base: Expr, steps: list):
        for s in steps:
            if isinstance(s, slice):
                raise TypeError("JSON slices are not supported; index one element at a time")
            if not isinstance(s, (str, int)) or isinstance(s, bool):
                raise TypeError(f"a JSON path step is a key (str) or an index (int), not {s!r}")
        self.base, self.steps = base, steps

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return JsonPath(self.base, self.steps + [name])

    def __getitem__(self, key):
        return JsonPath(self.base, self.steps + [key])

    def ast(self, ctx):
        node = self.base.ast(ctx)
        for s in self.steps:
            if isinstance(s, int) and s < 0:
                node = exp.JSONExtract(this=node, expression=literal(s))
                continue
            step = exp.JSONPathKey(this=s) if isinstance(s, str) else exp.JSONPathSubscript(this=s)
            node = exp.JSONExtract(this=node, expression=exp.JSONPath(expressions=[exp.JSONPathRoot(), step]),
                                   only_json_types=True)
        return node


class JsonBuild(Expr):
    """A dict/list holding expressions: ``jsonb_build_object``/``jsonb_build_array``. An image
    inside is its reference (a JSON string); ``pxt.openai_chat_completions`` sends image parts
    that hold references as data URIs, downscaled."""

    col_type = T.Json

    def __init__(self, value):
        self.value = value

    def ast(self, ctx):
        return self._build(self.value, ctx)

    def _build(self, v, ctx):
        if isinstance(v, dict):
            items = []
            for k, x in v.items():
                if not isinstance(k, str):
                    raise TypeError(f"JSON object keys must be strings, not {k!r}")
                items += [exp.Literal.string(k), self._build(x, ctx)]
            return func("jsonb_build_object", items, schema=None)
        if isinstance(v, (list, tuple)):
            return func("jsonb_build_array", [self._build(x, ctx) for x in v], schema=None)
        if isinstance(v, Expr):
            return v.ast(ctx)
        return literal(v)


class FuncCall(Expr):
    """A call of a SQL function (pxt.* or any schema), positional and named arguments."""

    def __init__(self, name: str, args=(), kwargs=None, col_type=None, schema: str | None = "pxt", udf=None):
        self.name, self.schema, self.col_type, self.udf = name, schema, col_type, udf
        self.args = [lift(a) for a in args]
        self.kwargs = {k: lift(v) for k, v in (kwargs or {}).items() if v is not None}

    def ast(self, ctx):
        if self.udf is not None and ctx.session is not None:
            self.udf.ensure(ctx.session)
        return func(self.name, [a.ast(ctx) for a in self.args], {k: v.ast(ctx) for k, v in self.kwargs.items()},
                    schema=self.schema)


class Agg(Expr):
    """count / sum / min / max / mean, for ``group_by`` queries."""

    CLASSES = {"count": exp.Count, "sum": exp.Sum, "min": exp.Min, "max": exp.Max, "mean": exp.Avg}

    def __init__(self, kind: str, arg: Expr | None):
        self.kind, self.arg = kind, arg
        self.col_type = T.Int if kind == "count" else (T.Float if kind == "mean" else (arg.col_type if arg is not None else None))

    def ast(self, ctx):
        inner = exp.Star() if self.arg is None else self.arg.ast(ctx)
        if self.kind == "count":
            return exp.Count(this=inner, big_int=True)
        return self.CLASSES[self.kind](this=inner)


class Similarity(Expr):
    """Similarity under an embedding index, as ``pxt.search`` scores it: ``1 - (emb <=> q)``
    (cosine), ``-(emb <#> q)`` (inner product), ``1 / (1 + (emb <-> q))`` (L2), with
    ``q = pxt.embed(table, column, query, index => name)``. ``order_by`` uses
    ``distance_ast`` instead, the form the HNSW index serves."""

    col_type = T.Float

    def __init__(self, col: ColumnRef, query, kind: str, idx: str | None):
        self.col, self.query, self.kind, self.idx = col, query, kind, idx

    def _parts(self, ctx):
        if ctx.session is None:
            raise RuntimeError("similarity() needs a session (pxt.init())")
        index = ctx.session.embedding_index(self.col.table, self.col.name, self.idx)
        q = self.query
        if self.kind == "image":
            q = ctx.session.media_value(q)
        args = [exp.Literal.string(self.col.table._path), exp.Literal.string(self.col.name), literal(q)]
        query = func("embed", args, {"index": exp.Literal.string(index["name"])} if index["name"] else None)
        return index, OPERATORS[index["metric"]](this=exp.Column(this=ident(index["column"])), expression=query)

    def distance_ast(self, ctx):
        return self._parts(ctx)[1]

    def ast(self, ctx):
        index, dist = self._parts(ctx)
        if index["metric"] == "cosine":
            return exp.Sub(this=exp.Literal.number(1), expression=exp.Paren(this=dist))
        if index["metric"] == "ip":
            return exp.Neg(this=exp.Paren(this=dist))
        return exp.Div(this=exp.Literal.number(1), expression=exp.Paren(this=exp.Add(
            this=exp.Literal.number(1), expression=exp.Paren(this=dist))), typed=True, safe=False)
