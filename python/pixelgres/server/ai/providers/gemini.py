"""Google Gemini (``pxt.gemini_generate_content``, ``pxt.gemini_embed``) through the official
``google-genai`` client, with an API key (Gemini Developer API).

``contents`` is Gemini's own (a string, or a list of ``{"role", "parts"}``) or OpenAI-style
messages (``{"role", "content"}``: assistant becomes model, system the system instruction).
Image parts in either form become ``inline_data``. The result is the response as the client
models it (``candidates[0].content.parts[0].text`` is the answer), without None fields.
"""
from __future__ import annotations

import base64
import json
from typing import NamedTuple

from ...core import batch, deps
from .. import calls, messages, remote

IMAGE_TOKENS = 258  # Gemini counts an image up to 384 px as 258 tokens
EMBED_CHUNK = 100   # batchEmbedContents takes at most 100 requests


class GeminiError(remote.RemoteError):
    """A failed Gemini call: HTTP status and the API's message."""


GeminiError.__module__ = "builtins"
GEMINI = remote.Provider("gemini", "https://generativelanguage.googleapis.com",
                         ("GEMINI_BASE_URL", "GOOGLE_GEMINI_BASE_URL"), ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
                         error=GeminiError)


class ChatArgs(NamedTuple):
    contents: str
    model: str
    config: str | None
    system: str | None
    image_max_side: int | None
    concurrency: int | None
    timeout: float | None
    max_retries: int | None
    use_cache: bool | None


class EmbedArgs(NamedTuple):
    input: str
    model: str
    dimensions: int | None
    task_type: str | None
    concurrency: int | None
    timeout: float | None
    max_retries: int | None
    use_cache: bool | None


def _image(uri: str, part: dict) -> dict:
    mime, data = messages.split_data_uri(uri)
    return {"inline_data": {"mime_type": mime, "data": data}}


def _text_part(p):
    if isinstance(p, dict) and p.get("type") == "text":
        return {"text": p.get("text")}
    return p


def contents_of(raw) -> tuple[list, list]:
    """(Gemini contents, system texts) from ``raw``: a string, Gemini contents or messages."""
    try:
        value = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError as e:
        raise ValueError(f"contents is not valid JSON: {e}")
    if isinstance(value, str):
        if not value:
            raise ValueError("contents is an empty string")
        return [{"role": "user", "parts": [{"text": value}]}], []
    value = messages.parse(value, "contents")
    out, system = [], []
    for m in value:
        if "parts" in m:
            out.append({"role": m.get("role", "user"), "parts": [_text_part(p) for p in m["parts"] or []]})
            continue
        content = m.get("content")
        parts = [{"text": content}] if isinstance(content, str) else [_text_part(p) for p in content or []]
        if m.get("role") == "system":
            system += [p.get("text", "") for p in parts if isinstance(p, dict)]
        else:
            out.append({"role": "model" if m.get("role") == "assistant" else "user", "parts": parts})
    if not out:
        raise ValueError("contents has no user content")
    return out, system


def _as_bytes(contents: list) -> list:
    """inline_data payloads as bytes, which is what the client's Blob model takes."""
    out = []
    for c in contents:
        parts = []
        for p in c["parts"]:
            blob = p.get("inline_data") if isinstance(p, dict) else None
            if isinstance(blob, dict) and isinstance(blob.get("data"), str):
                p = {**p, "inline_data": {**blob, "data": base64.b64decode(blob["data"])}}
            parts.append(p)
        out.append({**c, "parts": parts})
    return out


def _dump(resp) -> dict:
    return resp.model_dump(mode="json", exclude_none=True, exclude={"sdk_http_response"})


class GeminiAPI(calls.API):
    chat_func = "gemini.generate_content"
    embed_func = "gemini.embed"
    embed_chunk = EMBED_CHUNK

    def classify(self, e):
        errors = deps.need("google.genai.errors")
        if isinstance(e, errors.APIError):
            resp = getattr(e, "response", None)
            return remote.http_failure(e.code, e.message or e.status or str(e), getattr(resp, "headers", None))
        return remote.transport_failure(e)

    def _client(self, ep):
        def make(ep):
            genai = deps.need("google.genai")
            types = deps.need("google.genai.types")
            return genai.Client(api_key=ep.key, http_options=types.HttpOptions(
                base_url=ep.url + "/", timeout=int(remote.DEFAULT_TIMEOUT * 1000),
                retry_options=types.HttpRetryOptions(attempts=1)))  # one attempt: retries are ours
        return remote.client(ep, make)

    def chat_sender(self, ep):
        c = self._client(ep)

        async def send(model, contents, opts, timeout):
            config = {**opts, "http_options": {"timeout": int(timeout * 1000)}}
            resp = await c.aio.models.generate_content(model=model, contents=_as_bytes(contents), config=config)
            return _dump(resp), getattr(resp.sdk_http_response, "headers", None)
        return send

    def check_chat(self, data):
        return None if isinstance(data, dict) and ("candidates" in data or "prompt_feedback" in data) \
            else "the response has no candidates"

    def chat_tokens(self, data):
        u = data.get("usage_metadata")
        return u.get("total_token_count") if isinstance(u, dict) else None

    def embed_sender(self, ep):
        c = self._client(ep)

        async def send(model, texts, opts, timeout):
            config = {**opts, "http_options": {"timeout": int(timeout * 1000)}}
            resp = await c.aio.models.embed_content(model=model, contents=texts, config=config)
            return _dump(resp), getattr(resp.sdk_http_response, "headers", None)
        return send

    def vectors(self, data, n):
        rows = data.get("embeddings") if isinstance(data, dict) else None
        vecs = [r.get("values") if isinstance(r, dict) else None for r in rows] if isinstance(rows, list) else None
        return calls.check_vectors(GeminiError, vecs, n)


API = GeminiAPI()


def _chat(i: int, a: ChatArgs, ep) -> calls.Chat:
    contents, system = contents_of(a.contents)
    chars, images = messages.convert(contents, messages.max_side(a.image_max_side), _image, key="parts")
    if a.system:
        system.insert(0, a.system)
    opts = calls.request_fields(a.config, ("http_options",),
                                system_instruction="\n\n".join(system) if system else None)
    tokens = (chars + sum(map(len, system))) / 4 + images * IMAGE_TOKENS + (opts.get("max_output_tokens") or 0)
    return calls.chat(i, a, ep, contents, opts, tokens)


def _text(i: int, a: EmbedArgs, ep) -> calls.Text:
    opts = {k: v for k, v in (("output_dimensionality", a.dimensions), ("task_type", a.task_type)) if v is not None}
    return calls.text(i, a, ep, opts)


@batch.batched("gemini_generate_content")
def generate_content(batch_args: list[tuple]) -> list:
    return calls.run(API, [(GEMINI, None, ChatArgs(*a)) for a in batch_args], _chat, calls.chats)


@batch.batched("gemini_embed")
def embed(batch_args: list[tuple]) -> list:
    return calls.run(API, [(GEMINI, None, EmbedArgs(*a)) for a in batch_args], _text, calls.embeddings)
