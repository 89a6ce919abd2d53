"""Openrouter through its OpenAI-compatible API (SQL ``pxt.chat_completions(..., provider => 'openrouter')``):
key ``pixelgres.openrouter_api_key`` or the server's ``OPENROUTER_API_KEY``."""
from .openai import compatible

chat_completions, embeddings = compatible("openrouter")
