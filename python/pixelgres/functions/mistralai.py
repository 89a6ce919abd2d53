"""Mistral (SQL ``pxt.mistral_chat_completions``, ``pxt.mistral_embeddings``): key
``pixelgres.mistral_api_key`` or the server's MISTRAL_API_KEY."""
from __future__ import annotations

from . import _remote


def chat_completions(messages, *, model: str, model_kwargs: dict | None = None, **kwargs):
    """The full chat completion response (JSON): ``.choices[0].message.content`` is the text."""
    return _remote.chat("mistral_chat_completions", messages, ("temperature", "max_tokens", "response_format"),
                        model_kwargs, dict(model=model, **kwargs))


embeddings = _remote.Embeddings("mistral_embeddings", doc="Embedding vector of a text from Mistral")
