"""One statement's chat and embedding calls, for any provider: cache, de-duplication, batching.

A provider's batched SQL function parses its arguments into ``Chat`` or ``Text`` items and
hands them here with its ``API`` (what differs: the client, the wire format, the errors).
Identical calls in a batch are sent once; cached results are not sent at all; embeddings
go in multi-input requests of ``API.embed_chunk`` texts, and a request refused for its
input (400/413/422) is split in halves, so one bad text fails its own row only.
"""
from __future__ import annotations

import asyncio
import base64
import json
import struct
from dataclasses import dataclass, field
from typing import NamedTuple

import plpy

from . import model_client, remote
from .remote import RemoteError, canon, digest


class API:
    """What a provider module supplies. ``chat_sender``/``embed_sender`` take the endpoint and
    return ``async send(model, input, opts, timeout) -> (response data, headers or None)``."""
    chat_func = "chat"          # pxt.ai_cache.func of its chat results
    embed_func = "embeddings"
    embed_chunk = 256           # texts per embeddings request
    embed_chunk_chars = 400_000

    def classify(self, e: Exception) -> remote.Failure | None:
        return None

    def endpoint(self, p, base_url: str | None):
        """Where a call goes: ``p`` is a Provider or the name a call gave (``provider => ...``)."""
        return remote.endpoint(p if isinstance(p, remote.Provider) else self.provider(p), base_url)

    def provider(self, name: str) -> remote.Provider:
        """The provider a call names (``provider => ...``)."""
        raise ValueError(f"{type(self).__name__} has no provider {name!r}")

    def chat_sender(self, ep):
        raise TypeError(f"{type(self).__name__} has no chat")

    def check_chat(self, data) -> str | None:
        """None if ``data`` is a usable answer, else what is wrong with it."""
        return None if isinstance(data, dict) else "the response is not a JSON object"

    def chat_tokens(self, data) -> int | None:
        return None

    def embed_sender(self, ep):
        raise TypeError(f"{type(self).__name__} has no embeddings")

    def vectors(self, data, n: int) -> list:
        """The ``n`` vectors of an embeddings response, in input order."""
        raise TypeError(f"{type(self).__name__} has no embeddings")

    def embed_tokens(self, data) -> int | None:
        return None


class EmbedArgs(NamedTuple):
    """The arguments of an embedding function with no provider-specific ones (Ollama, Bedrock)."""
    input: str
    model: str
    dimensions: int | None
    concurrency: int | None
    timeout: float | None
    max_retries: int | None
    use_cache: bool | None


@dataclass
class Chat:
    """One chat call: ``input`` is the messages (or contents), ``opts`` every other request field."""
    index: int
    model: str
    input: object
    opts: dict
    tokens: float
    timeout: float
    retries: int
    use_cache: bool
    key: str = ""
    input_hash: str = ""
    same: list = field(default_factory=list)


@dataclass
class Text:
    """One text to embed."""
    index: int
    model: str
    text: str
    opts: dict
    timeout: float
    retries: int
    use_cache: bool
    key: str = ""


def chat(i: int, a, ep, input, opts: dict, tokens: float) -> Chat:
    """Call ``i`` of a batch; ``a`` holds the common arguments (model, concurrency, timeout,
    max_retries, use_cache)."""
    timeout, retries = remote.request_options(a.timeout, a.max_retries)
    remote.check_number(a.concurrency, None, 1, remote.MAX_CONCURRENCY, "concurrency")
    return Chat(i, a.model, input, opts, tokens, timeout, retries, a.use_cache is not False and ep.use_cache)


def text(i: int, a, ep, opts: dict) -> Text:
    """Text ``i`` of a batch to embed (``a.input``), with the common arguments as for chat()."""
    if not a.input:
        raise ValueError("cannot embed an empty string")
    dims = getattr(a, "dimensions", None)
    if dims is not None and dims < 1:
        raise ValueError(f"dimensions must be positive, not {dims}")
    timeout, retries = remote.request_options(a.timeout, a.max_retries)
    remote.check_number(a.concurrency, None, 1, remote.MAX_CONCURRENCY, "concurrency")
    return Text(i, a.model, a.input, opts, timeout, retries, a.use_cache is not False and ep.use_cache)


def request_fields(params, reserved: tuple, **named) -> dict:
    """``params`` (a JSON object of further request fields) with the named arguments set."""
    opts = json.loads(params) if params else {}
    if not isinstance(opts, dict):
        raise ValueError("params must be a JSON object of request fields")
    for name, v in named.items():
        if v is not None:
            opts[name] = v
    for r in reserved:
        if r in opts:
            raise ValueError(f"params may not set {r!r}")
    return opts


def run(api: API, jobs: list, prepare, flow) -> list:
    """One result (or exception) per job (provider or its name, base_url, args), in order: the
    jobs of one endpoint go together; ``prepare(index, args, endpoint)`` makes each job's call."""
    out: list = [None] * len(jobs)
    by_endpoint: dict = {}
    for i, (p, base_url, a) in enumerate(jobs):
        by_endpoint.setdefault((p, base_url), []).append((i, a))
    for (p, base_url), group in by_endpoint.items():
        try:
            ep = api.endpoint(p, base_url)
        except Exception as e:
            for i, _ in group:
                out[i] = e
            continue
        items = []
        for i, a in group:
            try:
                items.append(prepare(i, a, ep))
            except Exception as e:
                out[i] = e
        if items:
            flow(api, ep, items, out, remote.pick_concurrency([a.concurrency for _, a in group], ep.concurrency))
    return out


def vector_text(values) -> str:
    return "[" + ",".join(format(float(v), ".9g") for v in values) + "]"


def _read_cache(items: list, out: list, ep) -> dict | None:
    """Cached results of ``items``; None (and every item failed) if the cache cannot be read."""
    try:
        return remote.cache_get([c.key for c in items if c.use_cache])
    except plpy.SPIError as e:
        remote.reraise_cancel(e)
        err = ep.provider.error(f"reading the result cache failed: {e}")
        for c in items:
            out[c.index] = err
        return None


def chats(api: API, ep, items: list, out: list, concurrency: int) -> None:
    """Fill ``out[c.index]`` for every Chat in ``items`` with its response JSON or its error."""
    for c in items:
        c.input_hash = digest(canon(c.input))
        c.key = digest(canon([api.chat_func, ep.url, c.model, c.opts, c.input_hash]))
    hits = _read_cache(items, out, ep)
    if hits is None:
        return
    todo, first = [], {}
    for c in items:
        if c.use_cache and c.key in hits:
            out[c.index] = hits[c.key]
        elif c.key in first:
            first[c.key].same.append(c)
        else:
            first[c.key] = c
            todo.append(c)
    if not todo:
        return
    limits = remote.rate_limits({c.model for c in todo})
    jobs = [(c.model, c.input, c.opts, c.tokens, c.timeout, c.retries) for c in todo]
    results = remote.scrubbed(ep, send(api, ep, "chat", jobs, limits, concurrency))
    fresh = []
    for c, r in zip(todo, results):
        r = r if isinstance(r, BaseException) else canon(r)
        for d in [c] + c.same:
            out[d.index] = r
        if not isinstance(r, BaseException) and any(d.use_cache for d in [c] + c.same):
            fresh.append((c.key, api.chat_func, c.model, canon({"endpoint": ep.url, **c.opts}), c.input_hash, r))
    remote.cache_put(fresh)


def send(api: API, ep, kind: str, jobs: list, limits: dict, concurrency: int) -> list:
    """The result (or error) of each job: in this backend, or in the model server when
    ``pixelgres.model_server`` is set, so that a fresh connection imports no provider client
    and every backend shares one set of rate limits and kept connections."""
    if model_client.configured():
        return model_client.remote(api, ep, kind, jobs, limits, concurrency)
    runner = remote.Runner(ep, concurrency, api.classify)
    return runner.run(requests(api, ep, runner, kind, jobs, limits))


def requests(api: API, ep, runner, kind: str, jobs: list, limits: dict) -> list:
    """One coroutine per job. chat jobs: (model, input, opts, tokens, timeout, retries);
    embed jobs: (model, opts, timeout, retries, texts), one multi-input request each."""
    if kind == "chat":
        send_chat = api.chat_sender(ep)

        async def one(model, input, opts, tokens, timeout, retries):
            lim = remote.limiter(ep, model, limits)
            r = await runner.request(lim, lambda: send_chat(model, input, opts, timeout), tokens, timeout, retries)
            if not isinstance(r, BaseException):
                wrong = api.check_chat(r)
                if wrong:
                    return ep.provider.error(f"{wrong}: {canon(r)[:300]}")
                lim.settle(tokens, api.chat_tokens(r))
            return r
        return [one(*j) for j in jobs]
    if kind != "embed":
        raise ValueError(f"unknown kind of request {kind!r}")
    send_embed = api.embed_sender(ep)

    async def embed(model, opts, timeout, retries, texts: list, lim) -> list:
        tokens = sum(len(x) for x in texts) / 4
        res = await runner.request(lim, lambda: send_embed(model, texts, opts, timeout), tokens, timeout, retries)
        if isinstance(res, RemoteError):
            if len(texts) > 1 and res.status in (400, 413, 422):
                half = len(texts) // 2
                a, b = await asyncio.gather(embed(model, opts, timeout, retries, texts[:half], lim),
                                            embed(model, opts, timeout, retries, texts[half:], lim))
                return a + b
            return [res] * len(texts)
        if isinstance(res, BaseException):
            return [res] * len(texts)
        try:
            vecs = api.vectors(res, len(texts))
        except RemoteError as e:  # in the endpoint's own name (GroqError, not OpenAIError)
            return [ep.provider.error(str(e), e.status)] * len(texts)
        lim.settle(tokens, api.embed_tokens(res))
        return vecs
    return [embed(*j, remote.limiter(ep, j[0], limits)) for j in jobs]


def _pack(v) -> str:
    return json.dumps(base64.b64encode(struct.pack(f"<{len(v)}f", *v)).decode())


def _unpack(cached: str) -> list:
    raw = base64.b64decode(json.loads(cached))
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


def embeddings(api: API, ep, items: list, out: list, concurrency: int) -> None:
    """Fill ``out[t.index]`` for every Text with its vector literal or its error."""
    groups: dict = {}
    for t in items:
        t.key = digest(canon([api.embed_func, ep.url, t.model, t.opts, digest(t.text)]))
        groups.setdefault((t.model, canon(t.opts), t.timeout, t.retries), []).append(t)
    hits = _read_cache(items, out, ep)
    if hits is None:
        return
    chunks = []
    for members in groups.values():
        chunk, size = [], 0
        for t in members:
            if t.use_cache and t.key in hits:
                out[t.index] = vector_text(_unpack(hits[t.key]))
                continue
            if chunk and (len(chunk) >= api.embed_chunk or size + len(t.text) > api.embed_chunk_chars):
                chunks.append(chunk)
                chunk, size = [], 0
            chunk.append(t)
            size += len(t.text)
        if chunk:
            chunks.append(chunk)
    if not chunks:
        return
    limits = remote.rate_limits({c[0].model for c in chunks})
    jobs = [(c[0].model, c[0].opts, c[0].timeout, c[0].retries, [t.text for t in c]) for c in chunks]
    results = send(api, ep, "embed", jobs, limits, concurrency)
    fresh = []
    for members, res in zip(chunks, results):
        if isinstance(res, BaseException):
            res = [res] * len(members)
        for t, v in zip(members, remote.scrubbed(ep, res)):
            if isinstance(v, BaseException):
                out[t.index] = v
                continue
            out[t.index] = vector_text(v)
            if t.use_cache:
                fresh.append((t.key, api.embed_func, t.model, canon({"endpoint": ep.url, **t.opts}),
                              digest(t.text), _pack(v)))
    remote.cache_put(fresh)


def check_vectors(err_cls, vecs, n: int) -> list:
    """``vecs`` as ``n`` lists of numbers, or the provider's error saying what came back."""
    if not isinstance(vecs, list) or len(vecs) != n:
        raise err_cls(f"the response has {len(vecs) if isinstance(vecs, list) else 'no'} embeddings for {n} inputs")
    for v in vecs:
        if not isinstance(v, list) or not v or not all(isinstance(x, (int, float)) for x in v[:4]):
            raise err_cls("the response has an embedding that is not a list of numbers")
    return vecs
