"""OpenAI-compatible remote functions, evaluated in batches inside the backend.

``pxt.openai_chat_completions`` and ``pxt.openai_embeddings`` (OpenAI), and
``pxt.chat_completions`` / ``pxt.embeddings`` (``provider => 'groq'``, 'together', ...,
or any server's ``base_url``) are *batched* functions: a
statement's distinct calls arrive here together (pixelgres.server.core.batch) and are sent with
the official ``openai`` client's AsyncOpenAI on an asyncio loop run inside the backend:

* bounded concurrency (default 32, the ``concurrency`` argument);
* per-model rate limits (pxt.ai_rate_limits, and what ``x-ratelimit-*`` headers announce),
  pauses on ``retry-after`` shared by every request of that model (ratelimit.py);
* retries with exponential backoff and jitter on 408/409/429/5xx, connection errors and
  timeouts; a hard per-request timeout, so a hung server cannot hang the backend;
* embeddings in multi-input requests (up to 256 inputs each);
* images in messages sent as data URIs, downscaled to ``image_max_side`` (default 2048);
* a result cache (pxt.ai_cache) keyed by function, endpoint, model, parameters and input,
  so a re-run, a recompute or a delete-and-reinsert does not pay twice;
* the statement stays cancellable (pg_cancel_backend, statement_timeout) while waiting.

A failed call is that row's error, whose message carries the HTTP status and the server's
message ("OpenAIError: HTTP 500: ..."); the API key is scrubbed from every message. The key
comes from ``pixelgres.openai_api_key`` or the server's OPENAI_API_KEY, never from table
data; the server's key is only sent to the endpoint the server itself is configured with.
"""
from __future__ import annotations

from typing import NamedTuple

import json

from ..core import batch
from . import calls, messages
from .openai_client import API, IMAGE_TOKENS, OPENAI


class ChatArgs(NamedTuple):
    """The arguments of one pxt.openai_chat_completions call, as the batch delivers them."""
    messages: str
    model: str
    temperature: float | None
    max_tokens: int | None
    response_format: str | None
    params: str | None
    image_max_side: int | None
    concurrency: int | None
    timeout: float | None
    max_retries: int | None
    use_cache: bool | None


class EmbedArgs(NamedTuple):
    """The arguments of one pxt.openai_embeddings call."""
    input: str
    model: str
    dimensions: int | None
    params: str | None
    concurrency: int | None
    timeout: float | None
    max_retries: int | None
    use_cache: bool | None


def openai_image(uri: str, part: dict) -> dict:
    iu = part["image_url"]
    return {**part, "image_url": {**(iu if isinstance(iu, dict) else {}), "url": uri}}


def chat_call(i: int, a: ChatArgs, ep, image_part=openai_image, image_tokens: int = IMAGE_TOKENS,
              reserved: tuple = ("model", "messages", "stream")) -> calls.Chat:
    """An OpenAI-style chat call (Mistral's too, with its image part and reserved fields)."""
    msgs = messages.parse(a.messages)
    chars, images = messages.convert(msgs, messages.max_side(a.image_max_side), image_part, keep_urls=True)
    opts = calls.request_fields(a.params, reserved, temperature=a.temperature, max_tokens=a.max_tokens,
                                response_format=json.loads(a.response_format) if a.response_format else None)
    tokens = chars / 4 + images * image_tokens + (opts.get("max_tokens") or opts.get("max_completion_tokens") or 0)
    return calls.chat(i, a, ep, msgs, opts, tokens)


def text_call(i: int, a: EmbedArgs, ep, dimensions: str = "dimensions",
              reserved: tuple = ("model", "input", "encoding_format")) -> calls.Text:
    return calls.text(i, a, ep, calls.request_fields(a.params, reserved, **{dimensions: a.dimensions}))


@batch.batched("openai_chat_completions")
def chat_completions(batch_args: list[tuple]) -> list:
    return calls.run(API, [(OPENAI, None, ChatArgs(*a)) for a in batch_args], chat_call, calls.chats)


@batch.batched("openai_embeddings")
def embeddings(batch_args: list[tuple]) -> list:
    return calls.run(API, [(OPENAI, None, EmbedArgs(*a)) for a in batch_args], text_call, calls.embeddings)


@batch.batched("chat_completions")
def compatible_chat_completions(batch_args: list[tuple]) -> list:
    """pxt.chat_completions(messages, model, provider, base_url, <the rest as ChatArgs>)."""
    return calls.run(API, [(a[2], a[3], ChatArgs(a[0], a[1], *a[4:])) for a in batch_args], chat_call, calls.chats)


@batch.batched("embeddings")
def compatible_embeddings(batch_args: list[tuple]) -> list:
    """pxt.embeddings(input, model, provider, base_url, <the rest as EmbedArgs>)."""
    return calls.run(API, [(a[2], a[3], EmbedArgs(a[0], a[1], *a[4:])) for a in batch_args], text_call, calls.embeddings)
