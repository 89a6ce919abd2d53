"""Functions callable in expressions: existing SQL functions and ``@pxt.udf`` Python functions.

``@pxt.udf`` compiles a typed Python function into a plpython3u function in the database
(``CREATE OR REPLACE FUNCTION <schema>.<name>(...) LANGUAGE plpython3u``): its source is stored
there (``pg_proc.prosrc``, readable by any client), psql users can call it, and computed
columns built from it are evaluated by the database like any other. The function is created
on first use in a session, so decorating needs no connection.

The body is the function's own source, decorators and annotations removed (annotations would
name client-side types the server does not have), then a call converting arguments: images
arrive as PIL images (loaded by the server's image module, EXIF-upright), JSON as Python
values, and an image result is written to the media store. The function must be
self-contained: import what it needs inside its body.

plpython3u is an untrusted language: only superusers may create its functions. A role that
may not gets a ``pxt.Error`` saying so before anything is attempted.
"""
from __future__ import annotations

import ast
import inspect
import textwrap
import typing

from sqlglot import exp

from . import types as T
from .dialect import to_sql
from .errors import Error
from .exprs import FuncCall, datatype, func, ident, literal

# the same preamble extension/build_sql.py gives the extension's own plpython3u functions
_PREAMBLE = ("if 'pxt_srv' not in GD: plpy.execute('SELECT pxt._boot()')\n"
             "srv = GD.get('pxt_srv') or plpy.error(**GD.pop('pxt_boot_error'))\n")


class SqlFunction:
    """An existing SQL function (default schema pxt): calling it builds an expression;
    ``.using(**options)`` binds named arguments (as ``add_embedding_index`` takes them)."""

    def __init__(self, name: str, col_type=None, *, schema: str = "pxt", doc: str = "", aliases=None,
                 query_function: str | None = None):
        self.name, self.col_type, self.schema, self.aliases = name, col_type, schema, aliases or {}
        self.query_function = query_function  # embeds queries into the same space (CLIP: text)
        self.bound: dict = {}
        self.__doc__ = doc

    def _kw(self, kwargs):
        return {self.aliases.get(k, k): v for k, v in {**self.bound, **kwargs}.items()}

    def __call__(self, *args, **kwargs):
        return FuncCall(self.name, args, self._kw(kwargs), col_type=self.col_type, schema=self.schema)

    def using(self, **kwargs) -> "SqlFunction":
        f = SqlFunction(self.name, self.col_type, schema=self.schema, doc=self.__doc__, aliases=self.aliases,
                        query_function=self.query_function)
        f.bound = self._kw(kwargs)
        return f

    def partial_sql(self, name: str | None = None) -> str:
        """``"pxt"."fn"(opt => value, ...)``: the function with its bound options, no input."""
        return to_sql(func(name or self.name, [], {k: literal(v) for k, v in self.bound.items()}, schema=self.schema))

    def query_partial_sql(self) -> str | None:
        """The query function with the same options, for a two-tower model (CLIP), else None."""
        return self.partial_sql(self.query_function) if self.query_function else None

    def __repr__(self) -> str:
        return f"<pxt function {self.schema}.{self.name}{' ' + str(self.bound) if self.bound else ''}>"


class Udf(SqlFunction):
    def __init__(self, fn, *, name: str | None = None, schema: str | None = None, replace: bool = True):
        self.fn = fn
        self.py_name = fn.__name__
        super().__init__(name or fn.__name__, None, schema=schema or "public", doc=fn.__doc__ or "")
        hints = typing.get_type_hints(fn)
        sig = inspect.signature(fn)
        self.params = []
        for p in sig.parameters.values():
            if p.kind not in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
                raise TypeError(f"@pxt.udf {fn.__name__}: *args/**kwargs/keyword-only parameters are not supported")
            if p.name not in hints:
                raise TypeError(f"@pxt.udf {fn.__name__}: parameter {p.name!r} needs a type annotation")
            self.params.append((p.name, T.from_python(hints[p.name]), _optional(hints[p.name])))
        if "return" not in hints:
            raise TypeError(f"@pxt.udf {fn.__name__}: the return type needs an annotation")
        self.col_type = T.from_python(hints["return"])
        self.replace = replace
        self.source = self._body()
        self._created: set = set()

    def __call__(self, *args, **kwargs):
        bound = inspect.signature(self.fn).bind(*args, **kwargs)
        bound.apply_defaults()
        return FuncCall(self.name, list(bound.arguments.values()), col_type=self.col_type, schema=self.schema,
                        udf=self)

    def using(self, **kwargs):
        raise TypeError("@pxt.udf functions take all their arguments in the call")

    # -- compiling -----------------------------------------------------------------------------
    def _body(self) -> str:
        try:
            src = textwrap.dedent(inspect.getsource(self.fn))
        except (OSError, TypeError) as e:
            raise TypeError(f"@pxt.udf {self.py_name}: its source is not available ({e}); define it in a file "
                            "or a notebook cell") from e
        tree = ast.parse(src)
        fdef = next((n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))), None)
        if not isinstance(fdef, ast.FunctionDef):
            raise TypeError(f"@pxt.udf {self.py_name}: not a plain function definition")
        fdef.decorator_list = []
        fdef.returns = None
        for a in fdef.args.posonlyargs + fdef.args.args + fdef.args.kwonlyargs:
            a.annotation = None
        fn_src = ast.unparse(fdef)
        needs_srv = self.col_type == T.Image or any(t == T.Image for _, t, _ in self.params)
        lines = [f"# pixelgres @pxt.udf {self.fn.__module__}.{self.fn.__qualname__}"]
        if needs_srv:
            lines.append(_PREAMBLE.rstrip("\n"))
        lines.append(fn_src)
        required = [n for n, _, opt in self.params if not opt]
        if required:  # Pixeltable's rule: a NULL for a non-Optional parameter gives NULL, no call
            lines.append(f"if {' or '.join(f'{n} is None' for n in required)}:\n    return None")
        call_args = []
        for name, t, _ in self.params:
            if t == T.Image:
                call_args.append(f"(None if {name} is None else srv.image.load({name})[0])")
            elif t == T.Json:
                call_args.append(f"(None if {name} is None else __import__('json').loads({name}))")
            else:
                call_args.append(name)
        lines.append(f"_pxt_result = {self.py_name}({', '.join(call_args)})")
        if self.col_type == T.Image:
            lines.append("if _pxt_result is not None and not isinstance(_pxt_result, str):\n"
                         "    import io\n"
                         "    _pxt_buf = io.BytesIO()\n"
                         "    _pxt_result.save(_pxt_buf, format='PNG')\n"
                         "    _pxt_result = srv.store.store_bytes(_pxt_buf.getvalue(), 'png')")
        elif self.col_type == T.Json:
            lines.append("_pxt_result = None if _pxt_result is None else __import__('json').dumps(_pxt_result)")
        lines.append("return _pxt_result")
        return "\n".join(lines) + "\n"

    def create_ast(self) -> exp.Create:
        args = [exp.ColumnDef(this=ident(n), kind=datatype(t)) for n, t, _ in self.params]
        udf = exp.UserDefinedFunction(this=exp.Table(this=ident(self.name), db=ident(self.schema)),
                                      expressions=args, wrapped=True)
        props = exp.Properties(expressions=[exp.ReturnsProperty(this=datatype(self.col_type), is_table=False),
                                            exp.LanguageProperty(this=exp.Var(this="plpython3u"))])
        return exp.Create(this=udf, kind="FUNCTION", replace=self.replace, expression=exp.Literal.string(self.source),
                          properties=props)

    def create_sql(self) -> str:
        """The CREATE FUNCTION statement (e.g. for an administrator to run)."""
        return to_sql(self.create_ast())

    def ensure(self, session) -> None:
        key = session.key
        if key in self._created:
            return
        row = session.fetchone(
            "SELECT r.rolsuper, current_user FROM pg_roles r WHERE r.rolname = current_user")
        if not row or not row[0]:
            raise Error(f"@pxt.udf {self.py_name}: role {row[1] if row else '?'!r} may not create it. A UDF becomes a "
                        "plpython3u function, an untrusted language whose functions only superusers can create.",
                        hint="connect as a superuser, or have an administrator run udf.create_sql() "
                             f"(CREATE FUNCTION {self.schema}.{self.name}) and GRANT EXECUTE on it")
        session.execute(self.create_ast())  # the body's first line records the Python origin
        self._created.add(key)


def _optional(hint) -> bool:
    return type(None) in typing.get_args(hint)


def udf(fn=None, *, name: str | None = None, schema: str | None = None):
    """Decorator: ``@pxt.udf`` or ``@pxt.udf(name=..., schema=...)``."""
    if fn is None:
        return lambda f: Udf(f, name=name, schema=schema)
    return Udf(fn)
