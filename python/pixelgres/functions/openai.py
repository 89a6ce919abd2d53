"""OpenAI-compatible calls as computed columns (SQL ``pxt.openai_chat_completions`` and
``pxt.openai_embeddings``, the AI-functions issue). The server makes the calls, batched and
concurrent; the client's OPENAI_API_KEY / OPENAI_BASE_URL reach it as session settings.

``messages`` may hold expressions anywhere: ``{'type': 'image_url', 'image_url': t.image}``
puts the image's reference in the message, which the server sends as a data URI."""
from __future__ import annotations

from ..client import types as T
from ..client.exprs import FuncCall, JsonBuild, Lit
from ..client.udf import SqlFunction


def chat_completions(messages, *, model: str, model_kwargs: dict | None = None, **kwargs):
    """The full chat completion response (JSON): ``.choices[0].message.content`` is the text."""
    msgs = JsonBuild(messages) if not hasattr(messages, "ast") else messages
    kw = dict(model=model, **kwargs)
    extra = dict(model_kwargs or {})
    for k in _CHAT_ARGS:  # the SQL function has named parameters for these; the rest go in params
        if k in extra:
            kw[k] = extra.pop(k)
    if extra:
        kw["params"] = Lit(extra)
    return FuncCall("openai_chat_completions", [msgs], kw, col_type=T.Json)


_CHAT_ARGS = ("temperature", "max_tokens", "response_format")


class _Embeddings(SqlFunction):
    """``embeddings(input, model=..., dimensions=...)``; Pixeltable's ``model_kwargs`` go in ``params``."""

    def _kw(self, kwargs):
        kw = super()._kw(kwargs)
        extra = dict(kw.pop("model_kwargs", None) or {})
        if "dimensions" in extra:
            kw["dimensions"] = extra.pop("dimensions")
        if extra:
            kw["params"] = extra
        return kw

    def using(self, **kwargs):
        f = _Embeddings(self.name, self.col_type, schema=self.schema, doc=self.__doc__)
        f.bound = self._kw(kwargs)
        return f


embeddings = _Embeddings("openai_embeddings", T.Type("vector"), doc="Embedding vector of a text")
