"""Google Gemini (SQL ``pxt.gemini_generate_content``, ``pxt.gemini_embed``): key
``pixelgres.gemini_api_key`` or the server's GEMINI_API_KEY / GOOGLE_API_KEY."""
from __future__ import annotations

from . import _remote


def generate_content(contents, *, model: str, config: dict | None = None, **kwargs):
    """The full response (JSON): ``.candidates[0].content.parts[0].text`` is the answer.
    ``contents``: a string, Gemini contents, or OpenAI-style messages."""
    return _remote.chat("gemini_generate_content", contents, (), None, dict(model=model, config=config, **kwargs))


embed = _remote.Embeddings("gemini_embed", doc="Embedding vector of a text from Gemini", params=False)
