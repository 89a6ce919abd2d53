"""A real S3 API on loopback for tests and benches: moto in server mode behind a fault proxy.

moto (``ThreadedMotoServer``) speaks the S3 REST API, so the production code path -- obstore
with an endpoint override -- is exercised unchanged. Clients talk to ``endpoint``, a small
HTTP proxy in front of moto that forwards every request as it came (SigV4 signatures stay
valid: the Host header is kept) and records what it saw; setup traffic (``create_bucket``,
``put_object``) goes to moto directly and is not recorded.

Tests steer the proxy by counts, never by clocks, acting on "the next ``times`` matching
requests once ``after`` have passed": ``fail`` (an S3 error such as 503 SlowDown),
``reset_connections`` (TCP reset, no answer), ``hang`` (no answer until the client gives up),
``hold`` (forwarded only once the test calls ``release``), ``stall`` (part of a body, then
silence), ``misreport_size`` (a HEAD that lies about Content-Length). Read what happened: ``requests`` (method, path, status, bytes
sent), ``count``, ``bytes_sent``, ``max_in_flight``; wait with ``wait_for(n)``.

Access control is moto's own: ``iam_user(policy)`` creates a user with keys and an inline
policy, and ``with s.iam_enforced():`` makes moto check signatures and permissions.

    with S3Server() as s:          # or the pytest fixture ``s3_server``
        s.create_bucket("photos")
        s.endpoint                 # http://127.0.0.1:<proxy port>
"""
from __future__ import annotations

import contextlib
import http.client
import json
import logging
import select
import socket
import struct
import threading
import urllib.request
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

try:  # the fixtures are for pytest; benches import the server alone
    import pytest
except ImportError:  # pragma: no cover
    pytest = None

REGION = "us-east-1"
ACCESS_KEY = "testing"            # moto accepts any keys while IAM is not enforced
SECRET_KEY = "testing-secret"
_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"}


@dataclass
class Request:
    method: str
    path: str                     # without the query
    query: str
    status: int = 0               # -1: reset by the proxy, 0: no answer (hung, or client left)
    bytes_sent: int = 0           # body bytes the proxy wrote to the client
    done: bool = False


@dataclass
class Fault:
    kind: str                     # 'status' | 'reset' | 'hang' | 'hold' | 'stall' | 'size'
    remaining: int | None         # None: every matching request
    after: int = 0                # let this many matching requests through first
    status: int = 503
    code: str = "SlowDown"
    method: str | None = None     # only this HTTP method
    path: str | None = None       # only paths containing this
    size: int = 0                 # 'size': the Content-Length a HEAD reports; 'stall': bytes sent first

    def matches(self, method: str, path: str) -> bool:
        return (self.remaining != 0 and (self.method is None or self.method == method)
                and (self.path is None or self.path in path))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as S3
    server: "_ProxyServer"

    def log_message(self, *args):  # quiet
        pass

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self):  # noqa: N802
        self._proxy()

    do_HEAD = do_PUT = do_POST = do_DELETE = do_GET

    def _proxy(self) -> None:
        owner: S3Server = self.server.owner
        path, _, query = self.path.partition("?")
        body = self._read_body()
        rec = Request(self.command, path, query)
        fault = owner._arrive(rec)
        try:
            if fault and fault.kind == "reset":
                return self._reset(rec)
            if fault and fault.kind == "hang":
                if self._wait_release(owner, watch_client=True):
                    self._reset(rec)
                return None
            if fault and fault.kind == "hold" and not self._wait_release(owner, watch_client=False):
                return None
            if fault and fault.kind == "status":
                return self._error(rec, fault)
            self._forward(rec, body, fault)
        finally:
            owner._leave(rec)

    def _read_body(self) -> bytes | None:
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while True:
                n = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if n == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(n))
                self.rfile.readline()
            return b"".join(chunks)
        n = int(self.headers.get("content-length") or 0)
        return self.rfile.read(n) if n else None

    def _forward(self, rec: Request, body: bytes | None, fault: Fault | None) -> None:
        owner: S3Server = self.server.owner
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
        if body is not None and "content-length" not in {k.lower() for k in headers}:
            headers["Content-Length"] = str(len(body))
        up = http.client.HTTPConnection(*owner.moto_address, timeout=120)
        try:
            up.request(self.command, self.path, body=body, headers=headers)
            resp = up.getresponse()
            rec.status = resp.status
            self.send_response_only(resp.status, resp.reason)
            out = [(k, v) for k, v in resp.getheaders() if k.lower() not in _HOP]
            if fault and fault.kind == "size":
                out = [(k, str(fault.size) if k.lower() == "content-length" else v) for k, v in out]
            payload = None
            if self.command != "HEAD" and resp.getheader("content-length") is None:
                payload = resp.read()  # moto answered chunked: send it with a length
                out.append(("Content-Length", str(len(payload))))
            for k, v in out:
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self._relay(rec, resp, payload, fault if fault and fault.kind == "stall" else None)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            up.close()

    def _relay(self, rec: Request, resp, payload: bytes | None, stall: Fault | None) -> None:
        """Copy the body in chunks, counting what reached the client's socket; a ``stall``
        stops once ``stall.size`` bytes are out until release (or the client leaves)."""
        chunks = [payload] if payload is not None else iter(lambda: resp.read(64 * 1024), b"")
        for chunk in chunks:
            if stall and rec.bytes_sent >= stall.size:
                stall = None
                if not self._wait_release(self.server.owner, watch_client=True):
                    return
            self.wfile.write(chunk)
            rec.bytes_sent += len(chunk)

    def _error(self, rec: Request, fault: Fault) -> None:
        rec.status = fault.status
        data = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{fault.code}</Code>'
                f"<Message>injected by the test proxy</Message><RequestId>test</RequestId></Error>").encode()
        self.send_response_only(fault.status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _wait_release(self, owner: "S3Server", watch_client: bool) -> bool:
        """Block until the test releases (True) or, if watched, the client leaves (False)."""
        release = owner._release
        while not release.wait(0 if watch_client else 60.0):
            if not watch_client:
                continue
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

    def _reset(self, rec: Request) -> None:
        """Drop the connection with a TCP reset, no response."""
        rec.status = -1
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass
        self.close_connection = True


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def handle_error(self, request, client_address):  # resets and client hang-ups are expected
        pass


class S3Server:
    """moto on a free loopback port, and the recording, fault-injecting proxy in front of it."""

    def __init__(self, host: str = "127.0.0.1"):
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._moto = ThreadedMotoServer(ip_address=host, port=0, verbose=False)
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.in_flight = 0
        self._release = threading.Event()
        self._http = _ProxyServer((host, 0), _Handler)
        self._http.owner = self
        self.moto_address: tuple[str, int] = ("", 0)
        self.reset()

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        """The proxy: what code under test talks to."""
        host, port = self._http.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def moto_endpoint(self) -> str:
        return "http://%s:%d" % self.moto_address

    def options(self, access_key: str = ACCESS_KEY, secret_key: str = SECRET_KEY) -> dict:
        """Keyword arguments for objects.Settings that reach this server through the proxy."""
        return {"endpoint": self.endpoint, "allow_http": True, "region": REGION,
                "credentials": {"access_key_id": access_key, "secret_access_key": secret_key}}

    def start(self) -> "S3Server":
        self._moto.start()
        self.moto_address = self._moto.get_host_and_port()
        threading.Thread(target=self._http.serve_forever, name="s3-test-proxy", daemon=True).start()
        return self

    def stop(self) -> None:
        self._release.set()
        self._http.shutdown()
        self._http.server_close()
        self._moto.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- setup, straight to moto (not recorded) ----------------------------------------------
    def client(self, service: str = "s3", access_key: str = ACCESS_KEY, secret_key: str = SECRET_KEY):
        import boto3

        return boto3.client(service, endpoint_url=self.moto_endpoint, region_name=REGION,
                            aws_access_key_id=access_key, aws_secret_access_key=secret_key)

    def create_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def put_object(self, bucket: str, key: str, data: bytes) -> None:
        self.client().put_object(Bucket=bucket, Key=key, Body=data)

    def iam_user(self, name: str, policy: dict) -> tuple[str, str]:
        """A moto IAM user with ``policy`` inline; its (access key id, secret access key)."""
        iam = self.client("iam")
        iam.create_user(UserName=name)
        iam.put_user_policy(UserName=name, PolicyName=f"{name}-policy", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return key["AccessKeyId"], key["SecretAccessKey"]

    @contextlib.contextmanager
    def iam_enforced(self):
        """moto checks signatures and IAM permissions of every request inside the block."""
        self._moto_api("reset-auth", b"0")
        try:
            yield self
        finally:
            self._moto_api("reset-auth", b"inf")

    def _moto_api(self, what: str, data: bytes) -> None:
        req = urllib.request.Request(f"{self.moto_endpoint}/moto-api/{what}", data=data, method="POST",
                                     headers={"Content-Type": "text/plain"})  # a form body reads as empty
        with urllib.request.urlopen(req, timeout=30) as r:
            r.read()

    # -- control -----------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget requests and faults; release anything held or hung."""
        self._release.set()
        with self.lock:
            self.requests: list[Request] = []
            self.faults: list[Fault] = []
            self.max_in_flight = self.in_flight
        self._release = threading.Event()

    def _add(self, fault: Fault) -> None:
        with self.lock:
            self.faults.append(fault)

    def fail(self, status: int = 503, code: str = "SlowDown", times: int | None = 1, method: str | None = None,
             path: str | None = None, after: int = 0) -> None:
        """Answer the next ``times`` matching requests with an S3 error (503 SlowDown by default)."""
        self._add(Fault("status", times, after, status, code, method, path))

    def reset_connections(self, times: int | None = 1, method: str | None = None, path: str | None = None,
                          after: int = 0) -> None:
        """Drop the next ``times`` matching requests with a TCP reset."""
        self._add(Fault("reset", times, after, method=method, path=path))

    def hang(self, times: int | None = 1, method: str | None = None, path: str | None = None,
             after: int = 0) -> None:
        """Never answer the next ``times`` matching requests: each ends when its client gives up."""
        self._add(Fault("hang", times, after, method=method, path=path))

    def hold(self, times: int | None = 1, method: str | None = None, path: str | None = None,
             after: int = 0) -> None:
        """Forward the next ``times`` matching requests only once ``release()`` is called."""
        self._add(Fault("hold", times, after, method=method, path=path))

    def stall(self, after_bytes: int, times: int | None = 1, path: str | None = None) -> None:
        """The next ``times`` GETs send headers and ``after_bytes`` of the body, then nothing
        more until ``release()`` (or until the client leaves): a download caught midway."""
        self._add(Fault("stall", times, 0, method="GET", path=path, size=after_bytes))

    def misreport_size(self, size: int, times: int | None = 1, path: str | None = None) -> None:
        """The next ``times`` HEADs report Content-Length ``size`` (the object is not changed)."""
        self._add(Fault("size", times, 0, method="HEAD", path=path, size=size))

    def release(self) -> None:
        """Let every held request through and end every hung one (until ``reset``)."""
        self._release.set()

    def _arrive(self, rec: Request) -> Fault | None:
        with self.lock:
            self.requests.append(rec)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            fault = self._take_fault(rec)
            self.changed.notify_all()
        return fault

    def _leave(self, rec: Request) -> None:
        with self.lock:
            rec.done = True
            self.in_flight -= 1
            self.changed.notify_all()

    def _take_fault(self, rec: Request) -> Fault | None:
        for f in self.faults:
            if not f.matches(rec.method, rec.path):
                continue
            if f.after > 0:
                f.after -= 1
                continue
            if f.remaining is not None:
                f.remaining -= 1
            return f
        return None

    # -- observations ------------------------------------------------------------------------
    def _select(self, method: str | None, path: str | None) -> list[Request]:
        return [r for r in self.requests if (method is None or r.method == method) and (path is None or path in r.path)]

    def count(self, method: str | None = None, path: str | None = None) -> int:
        with self.lock:
            return len(self._select(method, path))

    def bytes_sent(self, method: str | None = "GET", path: str | None = None) -> int:
        with self.lock:
            return sum(r.bytes_sent for r in self._select(method, path))

    def wait_for(self, n: int, method: str | None = None, path: str | None = None, timeout: float = 60.0) -> None:
        """Block until ``n`` matching requests have arrived; AssertionError on timeout."""
        with self.changed:
            if not self.changed.wait_for(lambda: len(self._select(method, path)) >= n, timeout):
                raise AssertionError(f"{n} {method or 'any'} requests to {path or 'any path'} "
                                     f"did not arrive within {timeout} s")

    def wait_idle(self, timeout: float = 60.0) -> None:
        """Block until no request is being served, so every record has its status and bytes."""
        with self.changed:
            if not self.changed.wait_for(lambda: self.in_flight == 0, timeout):
                raise AssertionError(f"{self.in_flight} requests still in flight after {timeout} s")


if pytest is not None:
    @pytest.fixture(scope="session")
    def s3_server_session():
        s = S3Server().start()
        yield s
        s.stop()

    @pytest.fixture
    def s3_server(s3_server_session):
        """The session's moto server and proxy, with requests and faults cleared."""
        s3_server_session.reset()
        yield s3_server_session
        s3_server_session.reset()

    @pytest.fixture
    def s3_bucket(s3_server):
        """A fresh, empty bucket on the session's server."""
        return s3_server.create_bucket(f"t-{uuid.uuid4().hex[:16]}")
