"""Models served by Ollama (SQL ``pxt.ollama_chat``, ``pxt.ollama_embed``): the server at
``pixelgres.ollama_base_url``, else the server's OLLAMA_HOST, else 127.0.0.1:11434."""
from __future__ import annotations

from . import _remote


def chat(messages, *, model: str, options: dict | None = None, format=None, **kwargs):
    """The full response (JSON): ``.message.content`` is the answer."""
    return _remote.chat("ollama_chat", messages, (), None, dict(model=model, options=options, format=format, **kwargs))


embed = _remote.Embeddings("ollama_embed", doc="Embedding vector of a text from Ollama", params=False)
