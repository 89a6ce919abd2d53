"""Anthropic's Messages API (``pxt.anthropic_messages``) through the official ``anthropic`` client.

System messages in the list become the request's ``system``; OpenAI-style image parts become
Anthropic image blocks (base64, or a URL source for http(s) URLs). The result is the full
Messages response: ``content[0].text`` is the answer.
"""
from __future__ import annotations

import json
from typing import NamedTuple

from ...core import batch, deps
from .. import calls, messages, remote

DEFAULT_MAX_TOKENS = 1024
IMAGE_TOKENS = 1600  # rate-limit estimate of one image (Anthropic: about 1.15 megapixels)


class AnthropicError(remote.RemoteError):
    """A failed Anthropic call: HTTP status and the API's message."""


AnthropicError.__module__ = "builtins"
ANTHROPIC = remote.Provider("anthropic", "https://api.anthropic.com", ("ANTHROPIC_BASE_URL",), ("ANTHROPIC_API_KEY",),
                            error=AnthropicError)


class Args(NamedTuple):
    messages: str
    model: str
    max_tokens: int | None
    system: str | None
    temperature: float | None
    params: str | None
    image_max_side: int | None
    concurrency: int | None
    timeout: float | None
    max_retries: int | None
    use_cache: bool | None


def _image(uri: str, part: dict) -> dict:
    if uri.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": uri}}
    mime, data = messages.split_data_uri(uri)
    return {"type": "image", "source": {"type": "base64", "media_type": mime, "data": data}}


def _message(msg: dict) -> dict:
    """Text parts in Anthropic's form (``{"type": "text", "text": ...}`` is the same)."""
    return {"role": msg.get("role"), "content": msg.get("content")}


class AnthropicAPI(calls.API):
    chat_func = "anthropic.messages"

    def classify(self, e):
        anthropic = deps.need("anthropic")
        if isinstance(e, anthropic.APIStatusError):
            body = e.body if isinstance(e.body, dict) else {}
            err = body.get("error") if isinstance(body.get("error"), dict) else {}
            return remote.http_failure(e.status_code, err.get("message") or e.message, e.response.headers)
        if isinstance(e, anthropic.APITimeoutError):
            return remote.TIMED_OUT
        if isinstance(e, anthropic.APIConnectionError):
            return remote.connection_failure(e)
        return None

    def chat_sender(self, ep):
        def make(ep):
            return deps.need("anthropic").AsyncAnthropic(api_key=ep.key, base_url=ep.url, max_retries=0,
                                                         timeout=remote.DEFAULT_TIMEOUT)
        c = remote.client(ep, make)
        raw = deps.need("httpx2").Response  # the HTTP library this anthropic release is built on

        async def send(model, msgs, opts, timeout):
            r = await c.post("/v1/messages", cast_to=raw, options={"timeout": timeout},
                             body={**opts, "model": model, "messages": msgs})
            return json.loads(r.content), r.headers
        return send

    def check_chat(self, data):
        return None if isinstance(data, dict) and isinstance(data.get("content"), list) else "the response has no content"

    def chat_tokens(self, data):
        u = data.get("usage")
        if isinstance(u, dict) and isinstance(u.get("input_tokens"), int):
            return u["input_tokens"] + (u.get("output_tokens") or 0)
        return None


API = AnthropicAPI()


def _prepare(i: int, a: Args, ep) -> calls.Chat:
    msgs = messages.parse(a.messages)
    system = [m for m in msgs if m.get("role") == "system"]
    msgs = [_message(m) for m in msgs if m.get("role") != "system"]
    if not msgs:
        raise ValueError("messages has no user message")
    chars, images = messages.convert(msgs, messages.max_side(a.image_max_side), _image, keep_urls=True)
    texts = [a.system] if a.system else []
    for m in system:
        content = m.get("content")
        texts += [content] if isinstance(content, str) else [p.get("text", "") for p in content or [] if isinstance(p, dict)]
    if a.max_tokens is not None and a.max_tokens < 1:
        raise ValueError(f"max_tokens must be positive, not {a.max_tokens}")
    opts = calls.request_fields(a.params, ("model", "messages", "stream"), temperature=a.temperature,
                                max_tokens=a.max_tokens, system="\n\n".join(texts) if texts else None)
    opts.setdefault("max_tokens", DEFAULT_MAX_TOKENS)  # required by the API
    tokens = (chars + sum(map(len, texts))) / 4 + images * IMAGE_TOKENS + opts["max_tokens"]
    return calls.chat(i, a, ep, msgs, opts, tokens)


@batch.batched("anthropic_messages")
def anthropic_messages(batch_args: list[tuple]) -> list:
    return calls.run(API, [(ANTHROPIC, None, Args(*a)) for a in batch_args], _prepare, calls.chats)
