"""Deepseek through its OpenAI-compatible API (SQL ``pxt.chat_completions(..., provider => 'deepseek')``):
key ``pixelgres.deepseek_api_key`` or the server's ``DEEPSEEK_API_KEY``."""
from .openai import compatible

chat_completions, embeddings = compatible("deepseek")
