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
happened: ``requests`` (path, body, auth header, start, end, status), ``count()``,
``max_in_flight`` (requests being served at the same time), ``images`` (sizes seen); wait
on events with ``wait_for(n)`` (n requests arrived) and ``wait_idle()`` (none in flight),
so a test never reads a request that is still being served.

    with OpenAIServer() as s:           # or the pytest fixture ``openai_server``
        s.base_url                      # http://127.0.0.1:<port>/v1
"""
from __future__ import annotations

import base64
import io
import json
import math
import select
import socket
import struct
import threading
import time
import zlib
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

try:  # the fixtures are for pytest; benches import the server alone
    import pytest
except ImportError:  # pragma: no cover
    pytest = None

COLOURS = {"red": (255, 0, 0), "green": (0, 160, 0), "blue": (0, 0, 255), "white": (255, 255, 255),
           "black": (0, 0, 0), "yellow": (255, 255, 0), "grey": (128, 128, 128)}


@dataclass
class Record:
    path: str
    body: dict
    auth: str | None
    start: float
    end: float | None = None  # None while the request is being served
    status: int = 0           # -1: reset by the server, 0: client gave up (hung request)


@dataclass
class Fault:
    kind: str                 # 'status' | 'reset' | 'hang'
    remaining: int | None     # None: every request
    after: int = 0            # let this many matching requests through first
    status: int = 500
    retry_after: float | None = None
    message: str = "injected failure"
    path: str | None = None   # only requests to this path ('/v1/embeddings'...)
    echo_auth: bool = False   # put the Authorization header in the error message (a leaky provider)


def trigram_embedding(text: str, dim: int) -> list[float]:
    t = f"  {' '.join(text.lower().split())}  "
    v = [0.0] * dim
    for i in range(len(t) - 2):
        h = zlib.crc32(t[i:i + 3].encode())
        v[h % dim] += 1.0 if (h >> 31) & 1 else -1.0
    n = math.sqrt(sum(x * x for x in v)) or 1.0
    return [x / n for x in v]


def describe_image(url: str) -> tuple[str, tuple[int, int]]:
    from PIL import Image

    header, _, payload = url.partition(",")
    im = Image.open(io.BytesIO(base64.b64decode(payload))).convert("RGB")
    r, g, b = im.resize((1, 1), Image.BOX).getpixel((0, 0))  # the mean colour
    name = min(COLOURS, key=lambda k: sum((a - b_) ** 2 for a, b_ in zip(COLOURS[k], (r, g, b))))
    return f"A {im.width}x{im.height} image, mostly {name}.", im.size


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the real API
    server: "_HTTPServer"

    def log_message(self, *args):  # quiet
        pass

    def setup(self):
        super().setup()
        # headers and body are two writes: without this, Nagle + delayed ACK add ~40 ms a response
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _send(self, status: int, payload: dict, headers: dict | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for k, v in {**self.server.owner.extra_headers, **(headers or {})}.items():
            self.send_header(k, str(v))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):  # noqa: N802
        owner: OpenAIServer = self.server.owner
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {}
        rec = Record(self.path, body, self.headers.get("authorization"), time.monotonic())
        with owner.lock:
            owner.requests.append(rec)
            owner.in_flight += 1
            owner.max_in_flight = max(owner.max_in_flight, owner.in_flight)
            fault = owner._take_fault(self.path)
            owner.changed.notify_all()
        try:
            if owner.latency:
                time.sleep(owner.latency)
            if fault and fault.kind == "hang":
                if self._hang_until_client_leaves(owner._release):
                    self._reset(rec)
                return
            if fault and fault.kind == "reset":
                self._reset(rec)
                return
            if fault:
                msg = fault.message + (f" (got {rec.auth})" if fault.echo_auth else "")
                headers = {}
                if fault.retry_after is not None:
                    headers["retry-after"] = (f"{fault.retry_after:g}" if fault.retry_after != int(fault.retry_after)
                                              else str(int(fault.retry_after)))
                rec.status = fault.status
                self._send(fault.status, {"error": {"message": msg, "type": "server_error" if fault.status >= 500
                                                    else "invalid_request_error", "param": None, "code": None}},
                           headers)
                return
            if self.path == "/v1/chat/completions":
                status, payload = owner._chat(body)
            elif self.path == "/v1/embeddings":
                status, payload = owner._embeddings(body)
            else:
                status, payload = 404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}}
            rec.status = status
            self._send(status, payload)
        finally:
            with owner.lock:
                rec.end = time.monotonic()
                owner.in_flight -= 1
                owner.changed.notify_all()

    def _hang_until_client_leaves(self, release: threading.Event) -> bool:
        """Block until the client closes the connection (False) or the test releases (True)."""
        deadline = time.monotonic() + self.server.owner.hang_seconds
        while not release.is_set() and time.monotonic() < deadline:
            ready, _, _ = select.select([self.connection], [], [], 0.05)
            if ready:
                try:
                    if not self.connection.recv(1, socket.MSG_PEEK):
                        self.close_connection = True
                        return False
                except OSError:
                    self.close_connection = True
                    return False
        return True

    def _reset(self, rec: Record) -> None:
        """Drop the connection with a TCP reset, no response."""
        rec.status = -1
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass
        self.close_connection = True


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def handle_error(self, request, client_address):  # resets and client hang-ups are expected
        pass


class OpenAIServer:
    def __init__(self, dim: int = 64, host: str = "127.0.0.1", port: int = 0):
        self.dim = dim
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)  # notified on every arrival and end
        self._release = threading.Event()
        self.hang_seconds = 60.0
        self.in_flight = 0
        self._http = _HTTPServer((host, port), _Handler)
        self._http.owner = self
        self._thread: threading.Thread | None = None
        self.reset()

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        host, port = self._http.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> "OpenAIServer":
        self._thread = threading.Thread(target=self._http.serve_forever, name="openai-test-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        self._http.shutdown()
        self._http.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- control -----------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget requests and faults; no latency; release hung requests."""
        self._release.set()
        with self.lock:
            self.requests: list[Record] = []
            self.faults: list[Fault] = []
            self.images: list[tuple[int, int]] = []
            self.latency = 0.0
            self.extra_headers: dict = {}
            self.max_in_flight = self.in_flight  # requests still draining keep counting
        self._release = threading.Event()

    def fail(self, status: int = 500, times: int | None = None, retry_after: float | None = None,
             message: str = "injected failure", path: str | None = None, echo_auth: bool = False,
             after: int = 0) -> None:
        """Answer the next ``times`` requests (None: all) after ``after`` with HTTP ``status``."""
        with self.lock:
            self.faults.append(Fault("status", times, after, status, retry_after, message, path, echo_auth))

    def reset_connections(self, times: int | None = None, path: str | None = None, after: int = 0) -> None:
        """Drop the next ``times`` requests (after ``after``) with a TCP reset."""
        with self.lock:
            self.faults.append(Fault("reset", times, after, path=path))

    def hang(self, times: int | None = None, path: str | None = None, after: int = 0) -> None:
        """Never answer the next ``times`` requests (after ``after``): each ends when its client
        closes the connection, or is dropped on reset()/stop()."""
        with self.lock:
            self.faults.append(Fault("hang", times, after, path=path))

    def _take_fault(self, path: str) -> Fault | None:
        for f in self.faults:
            if f.remaining == 0 or (f.path and not path.endswith(f.path)):
                continue
            if f.after > 0:
                f.after -= 1
                continue
            if f.remaining is not None:
                f.remaining -= 1
            return f
        return None

    # -- observations ------------------------------------------------------------------------
    def wait_for(self, n: int, path: str | None = None, timeout: float = 60.0) -> None:
        """Block until ``n`` requests (to ``path``) have arrived; AssertionError on timeout."""
        def arrived():
            return sum(1 for r in self.requests if path is None or r.path.endswith(path)) >= n
        with self.changed:
            if not self.changed.wait_for(arrived, timeout):
                raise AssertionError(f"{n} requests to {path or 'any path'} did not arrive within {timeout} s")

    def wait_idle(self, timeout: float = 60.0) -> None:
        """Block until no request is being served, so every record has its end and status."""
        with self.changed:
            if not self.changed.wait_for(lambda: self.in_flight == 0, timeout):
                raise AssertionError(f"{self.in_flight} requests still in flight after {timeout} s")

    def count(self, path: str | None = None) -> int:
        with self.lock:
            return sum(1 for r in self.requests if path is None or r.path.endswith(path))

    def bodies(self, path: str | None = None) -> list[dict]:
        with self.lock:
            return [r.body for r in self.requests if path is None or r.path.endswith(path)]

    # -- answers -----------------------------------------------------------------------------
    def _chat(self, body: dict) -> tuple[int, dict]:
        msgs = body.get("messages")
        if not isinstance(msgs, list) or not msgs or not body.get("model"):
            return 400, {"error": {"message": "'messages' and 'model' are required", "type": "invalid_request_error"}}
        user = [m for m in msgs if isinstance(m, dict) and m.get("role") == "user"] or msgs
        content = user[-1].get("content")
        texts, descs = [], []
        for part in ([{"type": "text", "text": content}] if isinstance(content, str) else content or []):
            if part.get("type") == "image_url":
                url = (part.get("image_url") or {}).get("url", "")
                if not url.startswith("data:image/"):
                    return 400, {"error": {"message": "image_url.url must be a data URI here", "type": "invalid_request_error"}}
                try:
                    desc, size = describe_image(url)
                except Exception as e:
                    return 400, {"error": {"message": f"invalid image: {e}", "type": "invalid_request_error"}}
                with self.lock:
                    self.images.append(size)
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

    def _embeddings(self, body: dict) -> tuple[int, dict]:
        inputs = body.get("input")
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(inputs, list) or not inputs or not body.get("model"):
            return 400, {"error": {"message": "'input' and 'model' are required", "type": "invalid_request_error"}}
        for i, t in enumerate(inputs):
            if not isinstance(t, str) or not t:
                return 400, {"error": {"message": f"Invalid 'input[{i}]': must be a non-empty string",
                                       "type": "invalid_request_error", "param": f"input[{i}]"}}
            if "INVALID" in t:
                return 400, {"error": {"message": f"Invalid 'input[{i}]': refused", "type": "invalid_request_error"}}
        dim = int(body.get("dimensions") or self.dim)
        data = []
        for i, t in enumerate(inputs):
            v = trigram_embedding(t, dim)
            if body.get("encoding_format") == "base64":
                v = base64.b64encode(struct.pack(f"<{dim}f", *v)).decode()
            data.append({"object": "embedding", "index": i, "embedding": v})
        tokens = sum(max(1, len(t) // 4) for t in inputs)
        return 200, {"object": "list", "data": data, "model": body["model"],
                     "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


def max_overlap(records: list[Record]) -> int:
    """Most requests whose [start, end] intervals overlap at one instant."""
    events = sorted([(r.start, 1) for r in records] + [(r.end, -1) for r in records], key=lambda e: (e[0], e[1]))
    cur = best = 0
    for _, d in events:
        cur += d
        best = max(best, cur)
    return best


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
