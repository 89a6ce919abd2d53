"""The cluster's shared home for local models: one process that every backend calls.

Without it each backend that touches CLIP or MiniLM loads its own copy (hundreds of MB and
seconds each, per connection). With ``pixelgres.model_server`` set to this server's socket,
backends send it plain inputs (texts, decoded images) and get vectors back; weights are
loaded once, and requests that arrive while the model is busy are run together as one
batch: cross-connection batching without timers — a batch is whatever queued up during the
previous one (at most ``max_batch`` inputs). ``hold`` / ``release`` / ``wait_queued`` let
tests and benches queue requests on purpose and see them batched.

Remote API requests (calls.send) run here too, on one asyncio loop for the whole cluster,
with the same runner, provider clients and rate limiters a backend would use in-process: a
fresh connection then imports no provider client (that import is most of its first call's
time), connections to the provider stay open across backends, and one limiter per endpoint
and model paces every backend together. A backend that gives up (a cancel) drops its
connection; its requests are canceled.

The socket is a Unix socket in a directory only its owner reaches; connections authenticate
with the key in ``<socket>.key`` (mode 0600), read by backends of the same OS user.
``python3 -m pixelgres.server.ai.model_server --socket PATH`` (``pixelgres model-server``)
prints ``ready <socket> <pid>`` once it listens.
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import importlib
import multiprocessing
import os
import secrets
import sys
import threading
from multiprocessing.connection import Listener
from multiprocessing.connection import wait as wait_ready

from . import inference


class Job:
    __slots__ = ("kind", "path", "inputs", "opts", "client", "done", "result")

    def __init__(self, kind, path, inputs, client, opts=None):
        self.kind, self.path, self.inputs, self.client, self.opts = kind, path, inputs, client, opts or {}
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
        self.stats.update(remote_batches=0, remote_jobs=0)
        self._loop = None
        self._loop_lock = threading.Lock()

    # -- the model thread ----------------------------------------------------------------------
    def _next_batch(self) -> list:
        """The oldest job and every queued job for the same model, kind and options, up to
        max_batch inputs."""
        with self.wake:
            while (not self.queue or self.held) and not self.stopping:
                self.wake.wait()
            if self.stopping:
                return []
            first = self.queue.popleft()
            batch, size, rest = [first], len(first.inputs), collections.deque()
            while self.queue:
                j = self.queue.popleft()
                if (j.kind, j.path, j.opts) == (first.kind, first.path, first.opts) and \
                        size + len(j.inputs) <= self.max_batch:
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
            inputs = [x for j in batch for x in j.inputs]
            try:
                model = self._model(head.kind, head.path)
                if head.kind in inference.TASKS:
                    found, out, field = inference.run_task(head.kind, model, inputs, head.opts), {}, "results"
                else:
                    found, out, field = inference.embed(head.kind, model, inputs), \
                        {"dims": inference.dims(head.kind, model)}, "vectors"
            except Exception as e:  # the model's error is every waiting request's
                found, out = None, {"error": f"{type(e).__name__}: {e}"}
            k = 0
            for j in batch:
                j.result = out if found is None else {**out, field: found[k:k + len(j.inputs)]}
                k += len(j.inputs)
                j.done.set()
            self.stats["batches"] += 1
            self.stats["inputs"] += k
            self.stats["largest_batch"] = max(self.stats["largest_batch"], k)
            self.stats["most_clients_in_a_batch"] = max(self.stats["most_clients_in_a_batch"],
                                                        len({j.client for j in batch}))

    # -- remote API requests -------------------------------------------------------------------
    def loop(self):
        """The asyncio loop of every remote request, on its own thread, made on first use."""
        with self._loop_lock:
            if self._loop is None:
                from ..core import outside
                outside.install()  # provider modules import plpy; what runs here never calls it
                from . import remote
                self._loop = remote.loop()
                threading.Thread(target=self._loop.run_forever, name="pixelgres-remote", daemon=True).start()
            return self._loop

    async def _calls(self, module: str, kind: str, ep_wire: dict, jobs: list, limits: dict, concurrency: int):
        from . import calls, remote
        if not module.startswith(__package__ + "."):
            raise ValueError(f"not a provider module: {module!r}")
        api = importlib.import_module(module).API
        ep = remote.endpoint_from_wire(ep_wire)
        runner = remote.Runner(ep, concurrency, api.classify)
        results = await runner.gather(calls.requests(api, ep, runner, kind, jobs, limits))
        self.stats["remote_batches"] += 1
        self.stats["remote_jobs"] += len(jobs)
        return [remote.result_wire(r) for r in results]

    def _remote(self, conn, *args) -> dict | None:
        """Run one backend's requests; None if the backend went away meanwhile (they are canceled)."""
        fut = asyncio.run_coroutine_threadsafe(self._calls(*args), self.loop())
        done_rx, done_tx = multiprocessing.Pipe(duplex=False)

        def signal(_):
            with contextlib.suppress(OSError):  # the backend already went away: nobody listens
                done_tx.send_bytes(b"")
        fut.add_done_callback(signal)
        try:
            ready = wait_ready([conn, done_rx])
            if conn in ready and not fut.done():  # the backend hung up or gave up: stop its requests
                fut.cancel()
                return None
            return {"results": fut.result()}
        except Exception as e:
            return {"error": f"{type(e).__name__}: {e}"}
        finally:
            done_rx.close()
            done_tx.close()

    def _clock(self, what: str, seed: int = 0):
        """Tests: the remote requests' clock (see core/clock.py), switched on the loop's thread."""
        from . import ratelimit

        async def switch():
            if what == "virtual":
                ratelimit.use_virtual_clock(seed)
            elif what == "real":
                ratelimit.use_real_clock()
            return list(getattr(ratelimit.CLOCK, "events", []))
        return asyncio.run_coroutine_threadsafe(switch(), self.loop()).result()

    # -- connections ---------------------------------------------------------------------------
    def _serve(self, conn, client: int) -> None:
        with conn:
            while True:
                try:
                    msg = conn.recv()
                except (EOFError, OSError):
                    return
                if msg[0] in ("embed", "task"):  # ("embed", kind, path, inputs) / ("task", ..., opts)
                    kind, path, inputs, opts = (msg[1:] + (None,))[:4]
                    if kind not in (inference.EMBEDDINGS if msg[0] == "embed" else inference.TASKS):
                        reply = {"error": f"ValueError: no local model {msg[0]} {kind!r}"}
                    else:
                        job = Job(kind, path, inputs, client, opts)
                        with self.wake:
                            self.queue.append(job)
                            self.wake.notify_all()
                        job.done.wait()
                        reply = job.result
                elif msg[0] == "remote":
                    reply = self._remote(conn, *msg[1:])
                    if reply is None:
                        return
                elif msg[0] == "clock":  # ("clock", "virtual", seed | "real" | "events")
                    reply = {"events": self._clock(*msg[1:])}
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
