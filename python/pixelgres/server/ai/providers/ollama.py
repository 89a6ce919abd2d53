"""Ollama's native API (``pxt.ollama_chat``, ``pxt.ollama_embed``) through the official ``ollama``
client: local LLMs and embedding models served by ``ollama serve``, or Ollama's cloud.

The server is ``pixelgres.ollama_base_url``, else the server's OLLAMA_HOST, else
127.0.0.1:11434. OpenAI-style image parts become the message's ``images`` (base64).
"""
from __future__ import annotations

import os
from typing import NamedTuple

from ...core import batch, deps
from .. import calls, messages, remote

DEFAULT_URL = "http://127.0.0.1:11434"


class OllamaError(remote.RemoteError):
    """A failed Ollama call: HTTP status and the server's message."""


OllamaError.__module__ = "builtins"


def _host(value: str) -> str:
    """OLLAMA_HOST as Ollama reads it: 'host', 'host:port' or a URL; 0.0.0.0 means this host."""
    v = value.strip()
    if "://" not in v:
        v = "http://" + v
    scheme, _, rest = v.partition("://")
    host, _, path = rest.partition("/")
    if host.startswith("0.0.0.0"):
        host = "127.0.0.1" + host[len("0.0.0.0"):]
    if ":" not in host.rsplit("]", 1)[-1]:
        host += ":11434"
    return f"{scheme}://{host}" + (f"/{path}" if path else "")


class ChatArgs(NamedTuple):
    messages: str
    model: str
    options: str | None
    format: str | None
    params: str | None
    image_max_side: int | None
    concurrency: int | None
    timeout: float | None
    max_retries: int | None
    use_cache: bool | None


def provider() -> remote.Provider:
    env = os.environ.get("OLLAMA_HOST")
    return remote.Provider("ollama", _host(env) if env else DEFAULT_URL, (), ("OLLAMA_API_KEY",),
                           key_required=False, error=OllamaError)


def _flatten(msgs: list) -> list:
    """Ollama's message: text ``content`` and a list of base64 ``images``."""
    out = []
    for m in msgs:
        content = m.get("content")
        if isinstance(content, list):
            texts = [p.get("text", "") for p in content if isinstance(p, dict) and "text" in p]
            images = [p["_image"] for p in content if isinstance(p, dict) and "_image" in p]
            m = {**m, "content": "\n".join(texts)}
            if images:
                m["images"] = list(m.get("images") or []) + images
        out.append(m)
    return out


class OllamaAPI(calls.API):
    chat_func = "ollama.chat"
    embed_func = "ollama.embed"

    def classify(self, e):
        ollama = deps.need("ollama")
        if isinstance(e, ollama.ResponseError):
            return remote.http_failure(e.status_code if e.status_code > 0 else 500, e.error)
        found = remote.transport_failure(e)
        if found is None and isinstance(e, ConnectionError):  # the client's "Failed to connect to Ollama"
            return remote.connection_failure(e)
        return found

    def _client(self, ep):
        def make(ep):
            headers = {"Authorization": f"Bearer {ep.key}"} if ep.key != "EMPTY" else None
            return deps.need("ollama").AsyncClient(host=ep.url, headers=headers, timeout=remote.DEFAULT_TIMEOUT)
        return remote.client(ep, make)

    def chat_sender(self, ep):
        c = self._client(ep)

        async def send(model, msgs, opts, timeout):
            resp = await c.chat(model=model, messages=msgs, stream=False, **opts)
            return resp.model_dump(mode="json", exclude_none=True), None
        return send

    def check_chat(self, data):
        return None if isinstance(data, dict) and isinstance(data.get("message"), dict) else "the response has no message"

    def chat_tokens(self, data):
        n = [data.get(k) for k in ("prompt_eval_count", "eval_count")]
        return sum(x for x in n if isinstance(x, int)) or None

    def embed_sender(self, ep):
        c = self._client(ep)

        async def send(model, texts, opts, timeout):
            resp = await c.embed(model=model, input=texts, **opts)
            return resp.model_dump(mode="json", exclude_none=True), None
        return send

    def vectors(self, data, n):
        return calls.check_vectors(OllamaError, data.get("embeddings") if isinstance(data, dict) else None, n)


API = OllamaAPI()
CHAT_FIELDS = ("tools", "think", "keep_alive", "logprobs", "top_logprobs")


def _chat(i: int, a: ChatArgs, ep) -> calls.Chat:
    import json

    msgs = messages.parse(a.messages)
    chars, images = messages.convert(msgs, messages.max_side(a.image_max_side),
                                     lambda uri, part: {"_image": messages.split_data_uri(uri)[1]})
    opts = calls.request_fields(a.params, ("model", "messages", "stream"),
                                options=json.loads(a.options) if a.options else None,
                                format=json.loads(a.format) if a.format else None)
    unknown = set(opts) - {"options", "format", *CHAT_FIELDS}
    if unknown:
        raise ValueError(f"params may set only {', '.join(CHAT_FIELDS)}, not {', '.join(sorted(unknown))}")
    tokens = chars / 4 + images * 600
    return calls.chat(i, a, ep, _flatten(msgs), opts, tokens)


def _text(i: int, a: calls.EmbedArgs, ep) -> calls.Text:
    opts = {"dimensions": a.dimensions} if a.dimensions is not None else {}
    return calls.text(i, a, ep, opts)


@batch.batched("ollama_chat")
def chat(batch_args: list[tuple]) -> list:
    p = provider()
    return calls.run(API, [(p, None, ChatArgs(*a)) for a in batch_args], _chat, calls.chats)


@batch.batched("ollama_embed")
def embed(batch_args: list[tuple]) -> list:
    p = provider()
    return calls.run(API, [(p, None, calls.EmbedArgs(*a)) for a in batch_args], _text, calls.embeddings)
