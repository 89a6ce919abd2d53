"""Anthropic's Messages API (SQL ``pxt.anthropic_messages``): key ``pixelgres.anthropic_api_key``
or the server's ANTHROPIC_API_KEY. Images: ``{'type': 'image_url', 'image_url': t.image}``."""
from __future__ import annotations

from . import _remote


def messages(messages, *, model: str, max_tokens: int = 1024, model_kwargs: dict | None = None, **kwargs):
    """The full Messages response (JSON): ``.content[0].text`` is the answer."""
    return _remote.chat("anthropic_messages", messages, ("temperature", "system"), model_kwargs,
                        dict(model=model, max_tokens=max_tokens, **kwargs))
