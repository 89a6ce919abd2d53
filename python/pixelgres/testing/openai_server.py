"""A deterministic OpenAI-compatible HTTP server on loopback, for tests and benches.

Serves ``POST /v1/chat/completions`` and ``POST /v1/embeddings`` the way the real API shapes
them, so the official ``openai`` client (running inside the PostgreSQL backend) talks to it
unaware. Answers are functions of the request:

* chat: "A WxH image, mostly <colour>." per image in the last user message (Pillow decodes
  the data URI), else "Echo: <last user text>";
* embeddings: character trigrams of the lower-cased text hashed into ``dimensions`` signed
  buckets (default ``dim``), L2-normalised, so texts that share words are near.

Tests steer it by counts, never by clocks: ``fail(status, times, after, retry_after)``,
``reset_connections(times, after)``, ``hang(times, after)`` act on "the next ``times``
requests once ``after`` have passed"; a hung request ends when the client gives up (closes
the connection) or on ``reset()``. ``latency`` (seconds per request) and
``extra_headers`` (e.g. x-ratelimit-*) are for benches and header tests. Read what
happened: ``requests`` (path, body, auth header, headers, start, end, status), ``count()``,
``max_in_flight`` (requests being served at the same time), ``images`` (sizes seen); wait
on events with ``wait_for(n)`` (n requests arrived) and ``wait_idle()`` (none in flight),
so a test never reads a request that is still being served. The machinery is http_stub.py;
the answers are plain functions (``chat_completion``, ``embeddings``) that
provider_servers.py reuses.

    with OpenAIServer() as s:           # or the pytest fixture ``openai_server``
        s.base_url                      # http://127.0.0.1:<port>/v1
"""
from __future__ import annotations

import base64
import io
import json
import math
import struct
import zlib
from typing import Callable

from .http_stub import Fault, Record, StubServer, max_overlap  # noqa: F401  (re-exported)

try:  # the fixtures are for pytest; benches import the server alone
    import pytest
except ImportError:  # pragma: no cover
    pytest = None

COLOURS = {"red": (255, 0, 0), "green": (0, 160, 0), "blue": (0, 0, 255), "white": (255, 255, 255),
           "black": (0, 0, 0), "yellow": (255, 255, 0), "grey": (128, 128, 128)}


def trigram_embedding(text: str, dim: int) -> list[float]:
    t = f"  {' '.join(text.lower().split())}  "
    v = [0.0] * dim
    for i in range(len(t) - 2):
        h = zlib.crc32(t[i:i + 3].encode())
        v[h % dim] += 1.0 if (h >> 31) & 1 else -1.0
    n = math.sqrt(sum(x * x for x in v)) or 1.0
    return [x / n for x in v]


def decode_image(data: bytes) -> tuple[str, tuple[int, int], str]:
    """(description, size, format: 'jpeg'|'png'|'gif'|'webp'...) of encoded image bytes."""
    from PIL import Image

    im = Image.open(io.BytesIO(data))
    fmt = (im.format or "").lower()
    im = im.convert("RGB")
    r, g, b = im.resize((1, 1), Image.BOX).getpixel((0, 0))  # the mean colour
    name = min(COLOURS, key=lambda k: sum((a - b_) ** 2 for a, b_ in zip(COLOURS[k], (r, g, b))))
    return f"A {im.width}x{im.height} image, mostly {name}.", im.size, fmt


def describe_image(url: str) -> tuple[str, tuple[int, int]]:
    header, _, payload = url.partition(",")
    desc, size, _ = decode_image(base64.b64decode(payload))
    return desc, size


def _error(status: int, message: str, **extra) -> tuple[int, dict]:
    return status, {"error": {"message": message, "type": "invalid_request_error", **extra}}


def chat_completion(body: dict, on_image: Callable[[tuple[int, int]], None] | None = None) -> tuple[int, dict]:
    """(status, payload) of ``POST /v1/chat/completions``; ``on_image(size)`` per image decoded."""
    msgs = body.get("messages")
    if not isinstance(msgs, list) or not msgs or not body.get("model"):
        return _error(400, "'messages' and 'model' are required")
    user = [m for m in msgs if isinstance(m, dict) and m.get("role") == "user"] or msgs
    content = user[-1].get("content")
    texts, descs = [], []
    for part in ([{"type": "text", "text": content}] if isinstance(content, str) else content or []):
        if part.get("type") == "image_url":
            url = (part.get("image_url") or {}).get("url", "")
            if not url.startswith("data:image/"):
                return _error(400, "image_url.url must be a data URI here")
            try:
                desc, size = describe_image(url)
            except Exception as e:
                return _error(400, f"invalid image: {e}")
            if on_image:
                on_image(size)
            descs.append(desc)
        elif part.get("type") == "text":
            texts.append(str(part.get("text")))
    answer = " ".join(descs) if descs else "Echo: " + " ".join(texts)
    prompt_tokens = max(1, len(json.dumps(msgs)) // 4)
    completion_tokens = max(1, len(answer) // 4)
    return 200, {
        "id": "chatcmpl-" + format(zlib.crc32(json.dumps(body, sort_keys=True).encode()), "08x"),
        "object": "chat.completion", "created": 1700000000, "model": body["model"],
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": answer, "refusal": None}}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }


def embeddings(body: dict, dim: int) -> tuple[int, dict]:
    """(status, payload) of ``POST /v1/embeddings``; ``dim`` unless the body asks for ``dimensions``."""
    inputs = body.get("input")
    if isinstance(inputs, str):
        inputs = [inputs]
    if not isinstance(inputs, list) or not inputs or not body.get("model"):
        return _error(400, "'input' and 'model' are required")
    for i, t in enumerate(inputs):
        if not isinstance(t, str) or not t:
            return _error(400, f"Invalid 'input[{i}]': must be a non-empty string", param=f"input[{i}]")
        if "INVALID" in t:
            return _error(400, f"Invalid 'input[{i}]': refused")
    dim = int(body.get("dimensions") or dim)
    data = []
    for i, t in enumerate(inputs):
        v = trigram_embedding(t, dim)
        if body.get("encoding_format") == "base64":
            v = base64.b64encode(struct.pack(f"<{dim}f", *v)).decode()
        data.append({"object": "embedding", "index": i, "embedding": v})
    tokens = sum(max(1, len(t) // 4) for t in inputs)
    return 200, {"object": "list", "data": data, "model": body["model"],
                 "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


def openai_error(status: int, message: str) -> dict:
    """The error body the OpenAI API sends with a failing status."""
    return {"error": {"message": message, "type": "server_error" if status >= 500 else "invalid_request_error",
                      "param": None, "code": None}}


class OpenAIServer(StubServer):
    thread_name = "openai-test-server"

    def __init__(self, dim: int = 64, host: str = "127.0.0.1", port: int = 0):
        self.dim = dim
        super().__init__(host, port)

    @property
    def base_url(self) -> str:
        return self.base + "/v1"

    def reset(self) -> None:
        """Forget requests, faults and images; no latency; release hung requests."""
        super().reset()
        with self.lock:
            self.images: list[tuple[int, int]] = []

    def _seen(self, size: tuple[int, int]) -> None:
        with self.lock:
            self.images.append(size)

    def route(self, method, path, headers, body):
        if path == "/v1/chat/completions":
            return *self._chat(body), {}
        if path == "/v1/embeddings":
            return *self._embeddings(body), {}
        return 404, {"error": {"message": f"no route {path}", "type": "invalid_request_error"}}, {}

    def error_payload(self, path, status, message):
        return openai_error(status, message), {}

    def _chat(self, body: dict) -> tuple[int, dict]:
        return chat_completion(body, self._seen)

    def _embeddings(self, body: dict) -> tuple[int, dict]:
        return embeddings(body, self.dim)


if pytest is not None:
    @pytest.fixture(scope="session")
    def openai_server_session():
        s = OpenAIServer().start()
        yield s
        s.stop()

    @pytest.fixture
    def openai_server(openai_server_session):
        """The session's test server, with its requests and faults cleared."""
        openai_server_session.reset()
        yield openai_server_session
        openai_server_session.reset()
