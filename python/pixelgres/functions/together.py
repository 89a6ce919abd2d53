"""Together through its OpenAI-compatible API (SQL ``pxt.chat_completions(..., provider => 'together')``):
key ``pixelgres.together_api_key`` or the server's ``TOGETHER_API_KEY``."""
from .openai import compatible

chat_completions, embeddings = compatible("together")
