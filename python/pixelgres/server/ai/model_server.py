"""The cluster's shared home for local models: one process that every backend calls.

Without it each backend that touches CLIP or MiniLM loads its own copy (hundreds of MB and
seconds each, per connection). With ``pixelgres.model_server`` set to this server's socket,
backends send it plain inputs (texts, decoded images) and get vectors back; weights are
loaded once, and requests that arrive while the model is busy are run together as one
batch: cross-connection batching without timers — a batch is whatever queued up during the
previous one (at most ``max_batch`` inputs). ``hold`` / ``release`` / ``wait_queued`` let
tests and benches queue requests on purpose and see them batched.

The socket is a Unix socket in a directory only its owner reaches; connections authenticate
with the key in ``<socket>.key`` (mode 0600), read by backends of the same OS user.
``python3 -m pixelgres.server.ai.model_server --socket PATH`` (``pixelgres model-server``)
prints ``ready <socket> <pid>`` once it listens.
"""
from __future__ import annotations

import argparse
import collections
import os
import secrets
import sys
import threading
from multiprocessing.connection import Listener

from . import inference


class Job:
    __slots__ = ("kind", "path", "inputs", "client", "done", "result")

    def __init__(self, kind, path, inputs, client):
        self.kind, self.path, self.inputs, self.client = kind, path, inputs, client
        self.done = threading.Event()
        self.result = None


class ModelServer:
    def __init__(self, socket_path: str, max_models: int = 2, threads: int = 2, max_batch: int = 256):
        self.socket_path, self.max_models, self.max_batch = socket_path, max_models, max_batch
        self.threads = threads
        self.models: collections.OrderedDict = collections.OrderedDict()  # (family, path) -> model
        self.queue: collections.deque = collections.deque()
        self.wake = threading.Condition()
        self.stats = {"batches": 0, "inputs": 0, "loads": 0, "largest_batch": 0, "most_clients_in_a_batch": 0,
                      "connections": 0}
        self.key = secrets.token_bytes(32)
        self.stopping = False
        self.held = False  # tests and benches: hold the model thread so requests queue up

    # -- the model thread ----------------------------------------------------------------------
    def _next_batch(self) -> list:
        """The oldest job and every queued job for the same model and kind, up to max_batch inputs."""
        with self.wake:
            while (not self.queue or self.held) and not self.stopping:
                self.wake.wait()
            if self.stopping:
                return []
            first = self.queue.popleft()
            batch, size, rest = [first], len(first.inputs), collections.deque()
            while self.queue:
                j = self.queue.popleft()
                if (j.kind, j.path) == (first.kind, first.path) and size + len(j.inputs) <= self.max_batch:
                    batch.append(j)
                    size += len(j.inputs)
                else:
                    rest.append(j)
            self.queue.extendleft(reversed(rest))
            return batch

    def _model(self, kind: str, path: str):
        key = (inference.family(kind), path)
        m = self.models.get(key)
        if m is None:
            while len(self.models) >= self.max_models:
                self.models.popitem(last=False)
            m = self.models[key] = inference.load(kind, path)
            self.stats["loads"] += 1
        self.models.move_to_end(key)
        return m

    def _run(self) -> None:
        inference.offline(self.threads)
        while True:
            batch = self._next_batch()
            if not batch:
                return
            head = batch[0]
            try:
                model = self._model(head.kind, head.path)
                vecs = inference.embed(head.kind, model, [x for j in batch for x in j.inputs])
                out = {"dims": inference.dims(head.kind, model)}
            except Exception as e:  # the model's error is every waiting request's
                vecs, out = None, {"error": f"{type(e).__name__}: {e}"}
            k = 0
            for j in batch:
                j.result = out if vecs is None else {**out, "vectors": vecs[k:k + len(j.inputs)]}
                k += len(j.inputs)
                j.done.set()
            self.stats["batches"] += 1
            self.stats["inputs"] += k
            self.stats["largest_batch"] = max(self.stats["largest_batch"], k)
            self.stats["most_clients_in_a_batch"] = max(self.stats["most_clients_in_a_batch"],
                                                        len({j.client for j in batch}))

    # -- connections ---------------------------------------------------------------------------
    def _serve(self, conn, client: int) -> None:
        with conn:
            while True:
                try:
                    msg = conn.recv()
                except (EOFError, OSError):
                    return
                if msg[0] == "embed":
                    _, kind, path, inputs = msg
                    if kind not in inference.KINDS:
                        reply = {"error": f"ValueError: no local model kind {kind!r}"}
                    else:
                        job = Job(kind, path, inputs, client)
                        with self.wake:
                            self.queue.append(job)
                            self.wake.notify_all()
                        job.done.wait()
                        reply = job.result
                elif msg[0] == "stats":
                    reply = {**self.stats, "loaded": [list(k) for k in self.models], "pid": os.getpid(),
                             "queued": len(self.queue)}
                elif msg[0] in ("hold", "release"):
                    with self.wake:
                        self.held = msg[0] == "hold"
                        self.wake.notify_all()
                    reply = {"held": self.held}
                elif msg[0] == "wait_queued":  # until n requests wait (an event, not a poll)
                    with self.wake:
                        ok = self.wake.wait_for(lambda: len(self.queue) >= msg[1], timeout=msg[2])
                    reply = {"queued": len(self.queue), "ok": ok}
                else:
                    reply = {"error": f"ValueError: unknown request {msg[0]!r}"}
                try:
                    conn.send(reply)
                except (EOFError, OSError):  # the backend gave up (a cancel): nothing to deliver
                    return

    def serve_forever(self, ready=None) -> None:
        d = os.path.dirname(os.path.abspath(self.socket_path))
        os.makedirs(d, mode=0o700, exist_ok=True)
        if os.path.exists(self.socket_path):
            os.unlink(self.socket_path)
        key_file = self.socket_path + ".key"
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(self.key.hex().encode())
        old = os.umask(0o177)
        try:
            listener = Listener(self.socket_path, family="AF_UNIX", authkey=self.key)
        finally:
            os.umask(old)
        threading.Thread(target=self._run, name="pixelgres-models", daemon=True).start()
        if ready is not None:
            ready()
        n = 0
        with listener:
            while not self.stopping:
                try:
                    conn = listener.accept()
                except (OSError, EOFError):  # a client that failed authentication
                    continue
                n += 1
                self.stats["connections"] = n
                threading.Thread(target=self._serve, args=(conn, n), daemon=True).start()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="pixelgres model-server", description=__doc__.split("\n\n")[0])
    p.add_argument("--socket", required=True, help="Unix socket path (its directory is made 0700)")
    p.add_argument("--max-models", type=int, default=2, help="models kept loaded (least recently used goes)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads")
    p.add_argument("--max-batch", type=int, default=256, help="inputs per model call at most")
    a = p.parse_args(argv)
    server = ModelServer(a.socket, a.max_models, a.threads, a.max_batch)
    server.serve_forever(ready=lambda: print(f"ready {a.socket} {os.getpid()}", flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
