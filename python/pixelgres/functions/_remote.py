"""Builders shared by the provider modules: a chat call whose Pixeltable-style ``model_kwargs``
go to the SQL function's named parameters where it has one and into ``params`` otherwise."""
from __future__ import annotations

from ..client import types as T
from ..client.exprs import FuncCall, JsonBuild, Lit
from ..client.udf import SqlFunction


def json_arg(value):
    """A Python list/dict holding expressions (``t.image``) as a jsonb expression."""
    return value if hasattr(value, "ast") else JsonBuild(value)


def chat(sql_name: str, messages, named: tuple, model_kwargs: dict | None, kwargs: dict, params: bool = True):
    kw = dict(kwargs)
    extra = dict(model_kwargs or {})
    for k in named:
        if k in extra:
            kw[k] = extra.pop(k)
    if extra:
        if not params:
            raise TypeError(f"pxt.{sql_name} takes no further request fields: {', '.join(sorted(extra))}")
        kw["params"] = Lit(extra)
    for k in ("format", "options", "config", "inference_config", "response_format"):
        if isinstance(kw.get(k), (dict, list)):
            kw[k] = Lit(kw[k])
    return FuncCall(sql_name, [json_arg(messages)], kw, col_type=T.Json)


class Embeddings(SqlFunction):
    """``embeddings(input, model=..., dimensions=...)``; ``model_kwargs`` go in ``params``
    (``dimensions`` to its own parameter); ``.using(...)`` for ``add_embedding_index``."""

    def __init__(self, name: str, fixed: dict | None = None, doc: str = "", params: bool = True):
        super().__init__(name, T.Type("vector"), doc=doc)
        self.fixed, self.params = dict(fixed or {}), params

    def _kw(self, kwargs):
        kw = {**self.fixed, **super()._kw(kwargs)}
        extra = dict(kw.pop("model_kwargs", None) or {})
        if "dimensions" in extra:
            kw["dimensions"] = extra.pop("dimensions")
        if extra:
            if not self.params:
                raise TypeError(f"pxt.{self.name} takes no further request fields: {', '.join(sorted(extra))}")
            kw["params"] = extra
        return kw

    def using(self, **kwargs):
        f = Embeddings(self.name, self.fixed, doc=self.__doc__, params=self.params)
        f.bound = self._kw(kwargs)
        return f
