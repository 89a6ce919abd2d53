"""OpenAI-compatible remote functions, evaluated in batches inside the backend.

``pxt.openai_chat_completions`` and ``pxt.openai_embeddings`` are *batched* functions: a
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

import asyncio
import base64
import io
import json
import struct

import plpy

from ..core import batch
from ..core.errors import MediaError
from ..media.store import setting
from . import ratelimit
from .openai_client import (DEFAULT_IMAGE_MAX_SIDE, EMBED_CHUNK, EMBED_CHUNK_CHARS, IMAGE_TOKENS, MAX_CONCURRENCY,
                            OpenAIError, Runner, cache_get, cache_put, canon, check_number, client_for, digest,
                            endpoint, fail_all, pick_concurrency, rate_limits, reraise_cancel, request_options,
                            scrubbed)


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


class _Text(NamedTuple):
    """One input to embed: its row in the batch, the text, its cache key."""
    index: int
    text: str
    key: str
    use_cache: bool


class _Chunk(NamedTuple):
    """Inputs sent in one embeddings request."""
    model: str
    opts: str
    timeout: float
    retries: int
    members: list


# --- chat completions ---------------------------------------------------------------------------
def _fit_data_uri(uri: str, max_side: int) -> str:
    """Downscale an image data URI whose larger side exceeds ``max_side``."""
    header, sep, payload = uri.partition(",")
    if not sep or not header.startswith("data:image/") or not header.endswith(";base64"):
        return uri
    from ..media import image  # lazy: Pillow loads for image inputs only

    try:
        data = base64.b64decode(payload, validate=False)
        im = image.Image.open(io.BytesIO(data))
        w, h = im.size
    except Exception as e:
        raise ValueError(f"image data URI in messages does not decode: {type(e).__name__}: {e}")
    if max(w, h) <= max_side:
        return uri
    limit = int(setting("pixelgres.max_image_pixels"))
    if w * h > limit:
        raise ValueError(f"image in messages has {w}x{h} pixels, more than pixelgres.max_image_pixels ({limit})")
    if im.format == "JPEG":
        im.draft("RGB", (max_side, max_side))
    im = image.ImageOps.exif_transpose(im)
    im.thumbnail((max_side, max_side))
    fmt = "JPEG" if im.mode in ("RGB", "L") else "PNG"
    buf = io.BytesIO()
    im.save(buf, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return f"data:{image.Image.MIME[fmt]};base64,{base64.b64encode(buf.getvalue()).decode()}"


def _prepare_messages(raw: str, max_side: int) -> tuple[list, int, int]:
    """Parsed messages with every image as an {"url": ...} data URI (or http(s) URL) no larger
    than ``max_side``; also (text characters, images) for the rate-limit estimate."""
    try:
        messages = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError as e:
        raise ValueError(f"messages is not valid JSON: {e}")
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages) or not messages:
        raise ValueError("messages must be a non-empty JSON array of message objects")
    chars = images = 0
    for m in messages:
        content = m.get("content")
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            for part in content:
                if not isinstance(part, dict):
                    continue
                if "image_url" in part:
                    iu = part["image_url"]
                    iu = {"url": iu} if isinstance(iu, str) else dict(iu or {})
                    url = iu.get("url")
                    if not isinstance(url, str) or not url:
                        raise ValueError("image_url without a url in messages (is the image NULL?)")
                    if url.startswith("data:"):
                        if max_side > 0:
                            iu["url"] = _fit_data_uri(url, max_side)
                    elif not url.startswith(("http://", "https://")):  # a media reference
                        from ..media import image  # lazy: Pillow, as above

                        try:
                            iu["url"] = image.data_uri(url, max_side if max_side > 0 else None)
                        except MediaError as e:
                            raise ValueError(f"image in messages: {e}")
                    part["image_url"] = iu
                    images += 1
                elif isinstance(part.get("text"), str):
                    chars += len(part["text"])
    return messages, chars, images


class _Call:
    __slots__ = ("index", "model", "body", "key", "params", "input_hash", "tokens", "timeout", "retries",
                 "use_cache", "result")


@batch.batched("openai_chat_completions")
def chat_completions(batch_args: list[tuple]) -> list:
    """One result (or exception) per call, in order; the calls' arguments are ChatArgs."""
    items = [ChatArgs(*a) for a in batch_args]
    try:
        ep = endpoint()
    except Exception as e:
        return fail_all(len(items), e)
    out: list = [None] * len(items)
    calls = []
    for i, (messages, model, temperature, max_tokens, response_format, params, max_side, _c,
            timeout, retries, use_cache) in enumerate(items):
        try:
            c = _Call()
            c.index, c.model = i, model
            c.timeout, c.retries = request_options(timeout, retries)
            check_number(_c, None, 1, MAX_CONCURRENCY, "concurrency")
            side = DEFAULT_IMAGE_MAX_SIDE if max_side is None else int(max_side)
            msgs, chars, images = _prepare_messages(messages, side)
            opts = json.loads(params) if params else {}
            if not isinstance(opts, dict):
                raise ValueError("params must be a JSON object of request fields")
            for name, v in (("temperature", temperature), ("max_tokens", max_tokens),
                            ("response_format", json.loads(response_format) if response_format else None)):
                if v is not None:
                    opts[name] = v
            for reserved in ("model", "messages", "stream"):
                if reserved in opts:
                    raise ValueError(f"params may not set {reserved!r}")
            c.body = (msgs, opts)
            c.params = canon({"endpoint": ep.url, **opts})
            c.input_hash = digest(canon(msgs))
            c.key = digest(canon(["chat.completions", ep.url, model, opts, c.input_hash]))
            c.tokens = chars / 4 + images * IMAGE_TOKENS + (opts.get("max_tokens") or opts.get("max_completion_tokens") or 0)
            c.use_cache = use_cache is not False and ep.use_cache
            calls.append(c)
        except Exception as e:
            out[i] = e
    try:
        hits = cache_get([c.key for c in calls if c.use_cache])
    except plpy.SPIError as e:
        reraise_cancel(e)
        return fail_all(len(items), OpenAIError(f"reading the result cache failed: {e}"))
    todo, same = [], {}  # calls to send; calls identical to one being sent (same key)
    for c in calls:
        if c.key in hits and c.use_cache:
            out[c.index] = hits[c.key]
        elif c.key in same:
            same[c.key].append(c)
        else:
            same[c.key] = []
            todo.append(c)
    if todo:
        runner = Runner(ep, pick_concurrency([it.concurrency for it in items], ep.concurrency))
        limits = rate_limits({c.model for c in todo})
        client, raw_response = client_for(ep)

        def one(c: _Call):
            lim = ratelimit.limiter(ep.url, c.model)
            lim.configure(*limits[c.model])
            msgs, opts = c.body

            def send():
                return client.post("/chat/completions", cast_to=raw_response, options={"timeout": c.timeout},
                                   body={**opts, "model": c.model, "messages": msgs})

            async def go():
                r = await runner.request(lim, send, c.tokens, c.timeout, c.retries)
                if not isinstance(r, BaseException):
                    if not isinstance(r, dict) or not isinstance(r.get("choices"), list):
                        return OpenAIError("the response has no choices: " + canon(r)[:300])
                    usage = r.get("usage") if isinstance(r.get("usage"), dict) else {}
                    lim.settle(c.tokens, usage.get("total_tokens"))
                return r
            return go()

        results = scrubbed(ep, runner.run([one(c) for c in todo]))
        fresh = []
        for c, r in zip(todo, results):
            r = r if isinstance(r, BaseException) else canon(r)
            for d in [c] + same[c.key]:
                out[d.index] = r
            if not isinstance(r, BaseException) and any(d.use_cache for d in [c] + same[c.key]):
                fresh.append((c.key, "chat.completions", c.model, c.params, c.input_hash, r))
        cache_put(fresh)
    return out


# --- embeddings ---------------------------------------------------------------------------------
def _vector_text(values) -> str:
    return "[" + ",".join(format(float(v), ".9g") for v in values) + "]"


def _decode_embedding(e) -> list:
    if isinstance(e, str):  # encoding_format=base64: little-endian float32
        raw = base64.b64decode(e)
        return list(struct.unpack(f"<{len(raw) // 4}f", raw))
    if not isinstance(e, list) or not e:
        raise OpenAIError("the response has an embedding that is not a list of numbers")
    return e


@batch.batched("openai_embeddings")
def embeddings(batch_args: list[tuple]) -> list:
    """One vector (or exception) per call, in order; the calls' arguments are EmbedArgs."""
    items = [EmbedArgs(*a) for a in batch_args]
    try:
        ep = endpoint()
    except Exception as e:
        return fail_all(len(items), e)
    out: list = [None] * len(items)
    groups: dict = {}  # request options -> list of (index, text, key, use_cache)
    for i, (text, model, dims, params, _c, timeout, retries, use_cache) in enumerate(items):
        try:
            if not text:
                raise ValueError("cannot embed an empty string")
            t, r = request_options(timeout, retries)
            check_number(_c, None, 1, MAX_CONCURRENCY, "concurrency")
            opts = json.loads(params) if params else {}
            if not isinstance(opts, dict):
                raise ValueError("params must be a JSON object of request fields")
            if dims is not None:
                if dims < 1:
                    raise ValueError(f"dimensions must be positive, not {dims}")
                opts["dimensions"] = dims
            for reserved in ("model", "input", "encoding_format"):
                if reserved in opts:
                    raise ValueError(f"params may not set {reserved!r}")
            key = digest(canon(["embeddings", ep.url, model, opts, digest(text)]))
            g = groups.setdefault((model, canon(opts), t, r), [])
            g.append(_Text(i, text, key, use_cache is not False and ep.use_cache))
        except Exception as e:
            out[i] = e
    try:
        hits = cache_get([m.key for g in groups.values() for m in g if m.use_cache])
    except plpy.SPIError as e:
        reraise_cancel(e)
        return fail_all(len(items), OpenAIError(f"reading the result cache failed: {e}"))
    chunks: list[_Chunk] = []
    for (model, opts_json, t, r), members in groups.items():
        todo = []
        for m in members:
            if m.use_cache and m.key in hits:
                out[m.index] = _vector_text(_decode_embedding(json.loads(hits[m.key])))
            else:
                todo.append(m)
        chunk, size = [], 0
        for m in todo:
            if chunk and (len(chunk) >= EMBED_CHUNK or size + len(m.text) > EMBED_CHUNK_CHARS):
                chunks.append(_Chunk(model, opts_json, t, r, chunk))
                chunk, size = [], 0
            chunk.append(m)
            size += len(m.text)
        if chunk:
            chunks.append(_Chunk(model, opts_json, t, r, chunk))
    if not chunks:
        return out
    runner = Runner(ep, pick_concurrency([it.concurrency for it in items], ep.concurrency))
    limits = rate_limits({c.model for c in chunks})
    client, raw_response = client_for(ep)

    async def embed(model, opts, t, r, members, lim) -> list:
        """Results for ``members``; a 400/413/422 on several inputs is bisected once per level
        so that one bad input fails its own row, not its whole chunk."""
        texts = [m.text for m in members]

        def send():
            return client.post("/embeddings", cast_to=raw_response, options={"timeout": t},
                               body={**opts, "model": model, "input": texts, "encoding_format": "float"})

        res = await runner.request(lim, send, sum(len(x) for x in texts) / 4, t, r)
        if isinstance(res, OpenAIError):
            if len(members) > 1 and str(res).startswith(("HTTP 400", "HTTP 413", "HTTP 422")):
                half = len(members) // 2
                a, b = await asyncio.gather(embed(model, opts, t, r, members[:half], lim),
                                            embed(model, opts, t, r, members[half:], lim))
                return a + b
            return [res] * len(members)
        try:
            data = res.get("data") if isinstance(res, dict) else None
            if not isinstance(data, list) or len(data) != len(members):
                raise OpenAIError(f"the response has {len(data) if isinstance(data, list) else 'no'} "
                                  f"embeddings for {len(members)} inputs")
            data = sorted(data, key=lambda d: d.get("index", 0))
            vecs = [_decode_embedding(d.get("embedding")) for d in data]
        except OpenAIError as e:
            return [e] * len(members)
        usage = res.get("usage") if isinstance(res.get("usage"), dict) else {}
        lim.settle(sum(len(x) for x in texts) / 4, usage.get("total_tokens"))
        return vecs

    coros = []
    for c in chunks:
        lim = ratelimit.limiter(ep.url, c.model)
        lim.configure(*limits[c.model])
        coros.append(embed(c.model, json.loads(c.opts), c.timeout, c.retries, c.members, lim))
    results = runner.run(coros)
    fresh = []
    for c, res in zip(chunks, results):
        if isinstance(res, BaseException):
            res = [res] * len(c.members)
        for m, v in zip(c.members, scrubbed(ep, res)):
            if isinstance(v, BaseException):
                out[m.index] = v
                continue
            out[m.index] = _vector_text(v)
            if m.use_cache:
                packed = base64.b64encode(struct.pack(f"<{len(v)}f", *v)).decode()
                fresh.append((m.key, "embeddings", c.model, canon({"endpoint": ep.url, **json.loads(c.opts)}),
                              digest(m.text), json.dumps(packed)))
    cache_put(fresh)
    return out
