"""OpenAI calls as computed columns (SQL ``pxt.openai_chat_completions`` and
``pxt.openai_embeddings``, the AI-functions issue). The server makes the calls, batched and
concurrent; the client's OPENAI_API_KEY / OPENAI_BASE_URL reach it as session settings.

``messages`` may hold expressions anywhere: ``{'type': 'image_url', 'image_url': t.image}``
puts the image's reference in the message, which the server sends as a data URI."""
from __future__ import annotations

from . import _remote

_CHAT_ARGS = ("temperature", "max_tokens", "response_format")


def chat_completions(messages, *, model: str, model_kwargs: dict | None = None, **kwargs):
    """The full chat completion response (JSON): ``.choices[0].message.content`` is the text."""
    return _remote.chat("openai_chat_completions", messages, _CHAT_ARGS, model_kwargs, dict(model=model, **kwargs))


embeddings = _remote.Embeddings("openai_embeddings", doc="Embedding vector of a text")


def compatible(provider: str):
    """``chat_completions`` and ``embeddings`` of an OpenAI-compatible service (SQL
    ``pxt.chat_completions(..., provider => ...)``); ``base_url=`` reaches any other server."""
    def chat_completions(messages, *, model: str, model_kwargs: dict | None = None, **kwargs):
        return _remote.chat("chat_completions", messages, _CHAT_ARGS, model_kwargs,
                            dict(model=model, provider=provider, **kwargs))
    chat_completions.__doc__ = f"A chat completion from {provider} (the full response, JSON)."
    return chat_completions, _remote.Embeddings("embeddings", {"provider": provider},
                                                doc=f"Embedding vector of a text from {provider}")
