"""The machinery under the loopback provider stand-ins (openai_server.py, provider_servers.py).

A ThreadingHTTPServer that records every request and can be told, by counts, never by
clocks, to misbehave: ``fail(status, times, after, retry_after, path)``,
``reset_connections(times, after)`` and ``hang(times, after)`` act on "the next ``times``
requests (to ``path``) once ``after`` have passed". A hung request ends when its client gives
up (closes the connection) or on ``reset()``/``stop()``. Subclasses say what a provider
answers: ``route()`` for a request, ``error_payload()`` for an injected fault, each in the
provider's own format.

Read what happened with ``requests`` (``Record``: path, body, headers...), ``count()``,
``bodies()``, ``max_in_flight``; wait on events with ``wait_for(n)`` and ``wait_idle()``, so a
test never reads a request that is still being served. Paths match by suffix, as sent or
URL-decoded (``/model/amazon.titan-embed-text-v2:0/invoke``).
"""
from __future__ import annotations

import json
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote


@dataclass
class Record:
    path: str
    body: dict
    auth: str | None          # the Authorization header
    start: float
    end: float | None = None  # None while the request is being served
    status: int = 0           # -1: reset by the server, 0: client gave up (hung request)
    headers: dict = field(default_factory=dict)  # every request header, names lower-cased
    raw: bytes = b""          # the body as sent (``body`` is {} when it is not JSON)


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


def path_matches(path: str, want: str | None) -> bool:
    return want is None or path.endswith(want) or unquote(path).endswith(want)


def max_overlap(records: list[Record]) -> int:
    """Most requests whose [start, end] intervals overlap at one instant."""
    events = sorted([(r.start, 1) for r in records] + [(r.end, -1) for r in records], key=lambda e: (e[0], e[1]))
    cur = best = 0
    for _, d in events:
        cur += d
        best = max(best, cur)
    return best


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the real APIs
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
        owner: StubServer = self.server.owner
        raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {}
        headers = {k.lower(): v for k, v in self.headers.items()}
        rec = Record(self.path, body, headers.get("authorization"), time.monotonic(), headers=headers, raw=raw)
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
                payload, extra = owner.error_payload(self.path, fault.status, msg)
                if fault.retry_after is not None:
                    ra = fault.retry_after
                    extra = {**extra, "retry-after": f"{ra:g}" if ra != int(ra) else str(int(ra))}
                rec.status = fault.status
                self._send(fault.status, payload, extra)
                return
            try:
                status, payload, extra = owner.route("POST", self.path, headers, body)
            except Exception as e:  # a stub bug: say so rather than drop the connection
                status = 500
                payload, extra = owner.error_payload(self.path, 500, f"stub error: {type(e).__name__}: {e}")
            rec.status = status
            self._send(status, payload, extra)
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


class StubServer:
    """Recording, fault-injecting HTTP server; subclasses implement ``route`` and ``error_payload``."""

    thread_name = "http-stub"

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)  # notified on every arrival and end
        self._release = threading.Event()
        self.hang_seconds = 60.0
        self.in_flight = 0
        self._http = _HTTPServer((host, port), _Handler)
        self._http.owner = self
        self._thread: threading.Thread | None = None
        self.reset()

    # -- what a provider answers (subclasses) ------------------------------------------------
    def route(self, method: str, path: str, headers: dict, body: dict) -> tuple[int, dict, dict]:
        """(status, JSON payload, extra response headers) for a request that is not a fault."""
        return 404, *self.error_payload(path, 404, f"no route {path}")

    def error_payload(self, path: str, status: int, message: str) -> tuple[dict, dict]:
        """(JSON payload, extra headers) of an error, in the format of the provider behind ``path``."""
        return {"error": {"message": message}}, {}

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def base(self) -> str:
        """http://127.0.0.1:<port>, no trailing slash."""
        host, port = self._http.server_address[:2]
        return f"http://{host}:{port}"

    def start(self):
        self._thread = threading.Thread(target=self._http.serve_forever, name=self.thread_name, daemon=True)
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
            if f.remaining == 0 or (f.path and not path_matches(path, f.path)):
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
            return sum(1 for r in self.requests if path_matches(r.path, path)) >= n
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
            return sum(1 for r in self.requests if path_matches(r.path, path))

    def bodies(self, path: str | None = None) -> list[dict]:
        with self.lock:
            return [r.body for r in self.requests if path_matches(r.path, path)]

    def records(self, path: str | None = None) -> list[Record]:
        with self.lock:
            return [r for r in self.requests if path_matches(r.path, path)]
