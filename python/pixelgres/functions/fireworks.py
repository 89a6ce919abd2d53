"""Fireworks through its OpenAI-compatible API (SQL ``pxt.chat_completions(..., provider => 'fireworks')``):
key ``pixelgres.fireworks_api_key`` or the server's ``FIREWORKS_API_KEY``."""
from .openai import compatible

chat_completions, embeddings = compatible("fireworks")
