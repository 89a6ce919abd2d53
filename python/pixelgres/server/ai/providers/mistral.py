"""Mistral (``pxt.mistral_chat_completions``, ``pxt.mistral_embeddings``) through the official
``mistralai`` client. Messages are OpenAI-style, images included (Mistral's vision models
take ``image_url`` parts); the result is the full chat completion response.
"""
from __future__ import annotations

import functools
import json

from ...core import batch, deps
from .. import calls, remote
from .. import openai_fns
from ..openai_fns import ChatArgs, EmbedArgs


class MistralError(remote.RemoteError):
    """A failed Mistral call: HTTP status and the API's message."""


MistralError.__module__ = "builtins"
MISTRAL = remote.Provider("mistral", "https://api.mistral.ai", ("MISTRAL_BASE_URL",), ("MISTRAL_API_KEY",),
                          error=MistralError)
IMAGE_TOKENS = 1000


def _message(e) -> str:
    try:
        body = json.loads(e.body)
    except (TypeError, ValueError):
        return str(e.body or e.message)
    if isinstance(body, dict):
        m = body.get("message") or body.get("detail") or body.get("error")
        if isinstance(m, dict):
            m = m.get("message")
        return json.dumps(m) if isinstance(m, list) else str(m or body)
    return str(body)


def _dump(resp) -> dict:
    return resp.model_dump(mode="json", by_alias=True, exclude_none=True)


class MistralAPI(calls.API):
    chat_func = "mistral.chat.completions"
    embed_func = "mistral.embeddings"

    def classify(self, e):
        errors = deps.need("mistralai.client.errors")
        base = getattr(errors, "MistralError", None) or errors.SDKError
        if isinstance(e, base) and getattr(e, "raw_response", None) is not None:
            return remote.http_failure(e.status_code, _message(e), e.headers)
        return remote.transport_failure(e)

    def _client(self, ep):
        def make(ep):
            client = deps.need("mistralai.client")
            retries = deps.need("mistralai.client.utils.retries")
            none = retries.RetryConfig("none", retries.BackoffStrategy(1, 1, 1, 1), False)  # retries are ours
            return client.Mistral(api_key=ep.key, server_url=ep.url, retry_config=none,
                                  timeout_ms=int(remote.DEFAULT_TIMEOUT * 1000))
        return remote.client(ep, make)

    def chat_sender(self, ep):
        c = self._client(ep)

        async def send(model, msgs, opts, timeout):
            resp = await c.chat.complete_async(model=model, messages=msgs, timeout_ms=int(timeout * 1000), **opts)
            return _dump(resp), None
        return send

    def check_chat(self, data):
        return None if isinstance(data, dict) and isinstance(data.get("choices"), list) else "the response has no choices"

    def chat_tokens(self, data):
        u = data.get("usage")
        return u.get("total_tokens") if isinstance(u, dict) else None

    def embed_sender(self, ep):
        c = self._client(ep)

        async def send(model, texts, opts, timeout):
            resp = await c.embeddings.create_async(model=model, inputs=texts, timeout_ms=int(timeout * 1000), **opts)
            return _dump(resp), None
        return send

    def vectors(self, data, n):
        rows = data.get("data") if isinstance(data, dict) else None
        if isinstance(rows, list):
            rows = sorted(rows, key=lambda d: d.get("index", 0) if isinstance(d, dict) else 0)
        vecs = [d.get("embedding") if isinstance(d, dict) else None for d in rows] if isinstance(rows, list) else None
        return calls.check_vectors(MistralError, vecs, n)

    embed_tokens = chat_tokens


API = MistralAPI()


SDK_FIELDS = ("timeout_ms", "retries", "server_url")  # the client's own arguments, not request fields
_chat = functools.partial(openai_fns.chat_call, image_part=lambda uri, part: {"type": "image_url", "image_url": uri},
                          image_tokens=IMAGE_TOKENS, reserved=("model", "messages", "stream", *SDK_FIELDS))
_text = functools.partial(openai_fns.text_call, dimensions="output_dimension",
                          reserved=("model", "inputs", *SDK_FIELDS))


@batch.batched("mistral_chat_completions")
def chat_completions(batch_args: list[tuple]) -> list:
    return calls.run(API, [(MISTRAL, None, ChatArgs(*a)) for a in batch_args], _chat, calls.chats)


@batch.batched("mistral_embeddings")
def embeddings(batch_args: list[tuple]) -> list:
    return calls.run(API, [(MISTRAL, None, EmbedArgs(*a)) for a in batch_args], _text, calls.embeddings)
