"""Groq through its OpenAI-compatible API (SQL ``pxt.chat_completions(..., provider => 'groq')``):
key ``pixelgres.groq_api_key`` or the server's ``GROQ_API_KEY``."""
from .openai import compatible

chat_completions, embeddings = compatible("groq")
