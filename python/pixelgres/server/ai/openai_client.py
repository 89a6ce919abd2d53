"""OpenAI and the services that speak its API (Groq, Together, Fireworks, OpenRouter, DeepSeek,
and local vLLM / Ollama / llama.cpp / LM Studio servers), through the official ``openai`` client.

Only what is OpenAI's own lives here: the providers' settings, the client, its wire format and
its errors. Batching, retries, limits and the cache are remote.py's and calls.py's.
"""
from __future__ import annotations

import json

from ..core import deps
from . import calls, remote
from .remote import Provider, error_class

DEFAULT_BASE_URL = "https://api.openai.com/v1"
IMAGE_TOKENS = 765           # rate-limit estimate of one image (OpenAI: 512px tiles, high detail)


class OpenAIError(remote.RemoteError):
    """A failed OpenAI(-compatible) call; str() is what a row records (HTTP status and message)."""


OpenAIError.__module__ = "builtins"

OPENAI = Provider("openai", DEFAULT_BASE_URL, ("OPENAI_BASE_URL",), ("OPENAI_API_KEY",), error=OpenAIError)
# provider => '...' of pxt.chat_completions / pxt.embeddings: pixelgres.<name>_base_url and
# pixelgres.<name>_api_key, else the server's environment, else the service's public URL
COMPATIBLE = {p.name: p for p in (
    OPENAI,
    Provider("groq", "https://api.groq.com/openai/v1", ("GROQ_BASE_URL",), ("GROQ_API_KEY",),
             error=error_class("GroqError")),
    Provider("together", "https://api.together.xyz/v1", ("TOGETHER_BASE_URL",), ("TOGETHER_API_KEY",),
             error=error_class("TogetherError")),
    Provider("fireworks", "https://api.fireworks.ai/inference/v1", ("FIREWORKS_BASE_URL",), ("FIREWORKS_API_KEY",),
             error=error_class("FireworksError")),
    Provider("openrouter", "https://openrouter.ai/api/v1", ("OPENROUTER_BASE_URL",), ("OPENROUTER_API_KEY",),
             error=error_class("OpenRouterError")),
    Provider("deepseek", "https://api.deepseek.com/v1", ("DEEPSEEK_BASE_URL",), ("DEEPSEEK_API_KEY",),
             error=error_class("DeepSeekError")),
)}


def provider(name: str | None) -> Provider:
    p = COMPATIBLE.get((name or "openai").strip().lower())
    if p is None:
        raise ValueError(f"unknown OpenAI-compatible provider {name!r}: one of {', '.join(sorted(COMPATIBLE))}"
                         " (any other server: base_url => ...)")
    return p


def _error_message(e) -> str:
    body = getattr(e, "body", None)
    msg = None
    if isinstance(body, dict):
        msg = body.get("message") or body.get("error")
        if isinstance(msg, dict):
            msg = msg.get("message")
    if not msg:
        resp = getattr(e, "response", None)
        try:
            msg = resp.text.strip() if resp is not None else ""
        except Exception:
            msg = ""
        msg = msg or getattr(e, "message", "") or str(e)
    return " ".join(str(msg).split())[:1000]


def _make_client(ep):
    openai = deps.need("openai")
    return openai.AsyncOpenAI(api_key=ep.key, base_url=ep.url, max_retries=0, timeout=remote.DEFAULT_TIMEOUT)


def _raw_response():
    try:  # the HTTP library this openai release is built on
        import httpx2 as http
    except ImportError:
        import httpx as http
    return http.Response


class OpenAIAPI(calls.API):
    """Requests go through ``client.post(path, cast_to=<httpx Response>)``, the client's documented
    way to send a raw request: auth, headers and errors as usual, but neither the typed
    transform of the request (which walks every message) nor a pydantic model of the
    response, which we return as JSON anyway: both cost more CPU than the request itself."""
    chat_func = "chat.completions"
    embed_func = "embeddings"

    def provider(self, name):
        return provider(name)

    def classify(self, e):
        openai = deps.need("openai")
        if isinstance(e, openai.APIStatusError):
            return remote.http_failure(e.status_code, _error_message(e), e.response.headers)
        if isinstance(e, openai.APITimeoutError):
            return remote.TIMED_OUT
        if isinstance(e, openai.APIConnectionError):
            return remote.connection_failure(e)
        return None

    def _poster(self, ep, path: str, field: str):
        c, raw = remote.client(ep, _make_client), _raw_response()

        async def send(model, value, opts, timeout):
            extra = {"encoding_format": "float"} if field == "input" else {}
            r = await c.post(path, cast_to=raw, options={"timeout": timeout},
                             body={**opts, "model": model, field: value, **extra})
            return json.loads(r.content), r.headers
        return send

    def chat_sender(self, ep):
        return self._poster(ep, "/chat/completions", "messages")

    def check_chat(self, data):
        return None if isinstance(data, dict) and isinstance(data.get("choices"), list) else "the response has no choices"

    def chat_tokens(self, data):
        usage = data.get("usage")
        return usage.get("total_tokens") if isinstance(usage, dict) else None

    def embed_sender(self, ep):
        return self._poster(ep, "/embeddings", "input")

    def vectors(self, data, n):
        rows = data.get("data") if isinstance(data, dict) else None
        if not isinstance(rows, list) or len(rows) != n:
            raise OpenAIError(f"the response has {len(rows) if isinstance(rows, list) else 'no'} embeddings for {n} inputs")
        rows = sorted(rows, key=lambda d: d.get("index", 0) if isinstance(d, dict) else 0)
        return calls.check_vectors(OpenAIError, [d.get("embedding") if isinstance(d, dict) else None for d in rows], n)

    embed_tokens = chat_tokens


API = OpenAIAPI()
