"""Compute deferred columns on a Ray cluster: ``pixelgres worker --ray``, ``pxt.process_pending(engine='ray')``.

The driver (this process) holds one PostgreSQL session: it registers a worker
(pxt.workers), claims batches (``pxt._work_claim``: leased rows and their calls of batched
functions), hands each batch to an ``Executor`` actor and writes each result back
(``pxt._work_complete``: one transaction and one table version per batch, only rows still
leased and unchanged). Actors load their models once and run the calls through the very
implementations a backend uses (``batch.REGISTRY``), with ``plpy`` served by their own
connection (plpy_conn). A second session beats the heart and extends the leases.

What happens when something dies: an actor that dies mid-batch is replaced and the batch
goes to another actor (the driver still holds the lease); a driver that dies takes its
session with it, which ends its leases, so the next claim by any worker takes those rows
again. Nothing is written until ``complete``, so nothing is written twice.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
from dataclasses import dataclass, field

import psycopg

from .limiter import NAME as LIMITER_NAME
from .limiter import Limiter


class Executor:
    """A Ray actor's state: the server's function implementations on a connection of their own."""

    def __init__(self, dsn: str, limiter=None, who: str = "", virtual_clock_seed: int | None = None):
        from . import plpy_conn
        # models run here, not in the database host's model server (its socket is local to it)
        self.shim = plpy_conn.install(dsn, {"pixelgres.model_server": ""})
        from ..server.ai import ratelimit
        from ..server.core import batch
        self.batch = batch
        if virtual_clock_seed is not None:
            ratelimit.use_virtual_clock(virtual_clock_seed)
        if limiter is not None:
            from . import limiter as shared
            ratelimit.share_limits(shared.shared(limiter, who))
        self.calls = 0

    def run(self, calls: list) -> list:
        """calls: [function, module, key, args] (claim's form) -> [function, key, result] each."""
        import importlib
        by_name: dict = {}
        for name, module, key, args in calls:
            by_name.setdefault((name, module), []).append((key, args))
        out = []
        for (name, module), items in by_name.items():
            if not module.startswith(("pixelgres.server.", "pixelgres.testing.")):
                raise ValueError(f"not a server module: {module!r}")
            importlib.import_module(module)
            results = self.batch.execute(name, [tuple(self.batch.from_wire(a)) for _, a in items])
            self.calls += len(items)
            out.extend([name, key, self.batch.to_wire(r)] for (key, _), r in zip(items, results))
        return out

    def pid(self) -> int:
        return os.getpid()


@dataclass
class Totals:
    written: int = 0
    errors: int = 0
    stale: int = 0
    lost: int = 0
    batches: int = 0
    preloaded: int = 0
    computed_here: int = 0
    by_column: dict = field(default_factory=dict)


def _ray():
    try:
        import ray
    except ImportError as e:  # the optional extra
        raise SystemExit(f"pixelgres worker --ray needs Ray: pip install 'pixelgres[ray]' ({e})") from None
    return ray


def init_ray(address: str | None = None, num_cpus: int | None = None):
    """Connect to the Ray cluster at ``address`` ('auto', 'ray://head:10001'), or start a local one."""
    ray = _ray()
    if not ray.is_initialized():
        kw = {"ignore_reinit_error": True, "log_to_driver": False}
        if address:
            ray.init(address=address, **kw)
        else:
            ray.init(num_cpus=num_cpus, include_dashboard=False, **kw)
    return ray


class RayWorker:
    """One worker: ``concurrency`` actors computing the batches this session claims."""

    def __init__(self, dsn: str, table: str | None = None, column: str | None = None, batch_size: int = 100,
                 concurrency: int = 2, lease_seconds: float = 300.0, address: str | None = None,
                 actor_cpus: float = 1.0, virtual_clock_seed: int | None = None, max_actor_restarts: int = 3,
                 num_cpus: int | None = None):
        self.dsn, self.table, self.column = dsn, table, column
        self.batch_size, self.concurrency, self.lease = batch_size, concurrency, lease_seconds
        self.ray = init_ray(address, None if address else (num_cpus or max(concurrency, 1)))
        self.conn = psycopg.connect(dsn, autocommit=True)
        self.id = self.conn.execute("SELECT pxt._work_register('ray', %s, %s, %s)",
                                    (socket.gethostname(), os.getpid(), concurrency)).fetchone()[0]
        self.restarts_left = max_actor_restarts
        self.actor_cpus = actor_cpus
        limiter_cls = self.ray.remote(num_cpus=0)(Limiter)
        self.limiter = limiter_cls.options(name=f"{LIMITER_NAME}-{self.id}").remote(virtual_clock_seed)
        self._executor = self.ray.remote(num_cpus=actor_cpus)(Executor)
        self.seed = virtual_clock_seed
        self.actors = [self._new_actor(i) for i in range(concurrency)]
        self.totals = Totals()
        self._stop = threading.Event()
        self._beat = threading.Thread(target=self._heartbeat, name="pixelgres-heartbeat", daemon=True)
        self._beat.start()

    def _new_actor(self, i: int):
        return self._executor.remote(self.dsn, self.limiter, f"{self.id}/{i}", self.seed)

    def _heartbeat(self) -> None:
        """Every third of a lease: say this worker lives, and keep its leases."""
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while not self._stop.wait(self.lease / 3):
                conn.execute("SELECT pxt._work_heartbeat(%s, %s)", (self.id, self.lease))

    # -- the queue ---------------------------------------------------------------------------
    def claim(self) -> dict | None:
        row = self.conn.execute("SELECT pxt._work_claim(%s, %s, %s, %s, %s)",
                                (self.table, self.column, self.id, self.batch_size, self.lease)).fetchone()[0]
        return row

    def complete(self, claim: dict, results: list) -> dict:
        out = self.conn.execute("SELECT pxt._work_complete(%s, %s, %s, %s, %s)",
                                (self.id, claim["relid"], claim["column"], json.dumps(claim["rows"]),
                                 json.dumps(results))).fetchone()[0]
        t = self.totals
        t.batches += 1
        for k in ("written", "errors", "stale", "lost", "preloaded", "computed_here"):
            setattr(t, k, getattr(t, k) + out[k])
        key = f"{claim['table']}.{claim['column']}"
        t.by_column[key] = t.by_column.get(key, 0) + out["written"]
        return out

    # -- the loop ----------------------------------------------------------------------------
    def run(self, once: bool = True, on_batch=None, idle_wait: float = 1.0, actors: int | None = None) -> Totals:
        """Claim and compute until nothing is pending (``once``) or until stopped. ``on_batch(claim,
        outcome)`` after each write-back (progress bars); ``actors``: use only that many of the pool."""
        ray = self.ray
        idle = list(range(min(actors or len(self.actors), len(self.actors))))
        in_flight: dict = {}  # ObjectRef -> (claim, actor index)
        drained = False
        while True:
            while idle and not drained:
                claim = self.claim()
                if claim is None:
                    drained = True
                    break
                if not claim["calls"]:  # nothing batched to ship: the write-back computes in the backend
                    out = self.complete(claim, [])
                    if on_batch:
                        on_batch(claim, out)
                    continue
                i = idle.pop()
                in_flight[self.actors[i].run.remote(claim["calls"])] = (claim, i)
            if not in_flight:
                if once or self._stop.is_set():
                    return self.totals
                self._stop.wait(idle_wait)  # nothing pending: look again later
                drained = False
                continue
            ready, _ = ray.wait(list(in_flight), num_returns=1)
            claim, i = in_flight.pop(ready[0])
            try:
                results = ray.get(ready[0])
            except ray.exceptions.RayActorError:  # the actor died: a new one takes the batch
                if self.restarts_left <= 0:
                    raise
                self.restarts_left -= 1
                self.actors[i] = self._new_actor(i)
                in_flight[self.actors[i].run.remote(claim["calls"])] = (claim, i)
                continue
            out = self.complete(claim, results)
            if on_batch:
                on_batch(claim, out)
            idle.append(i)

    def limiter_admissions(self) -> list:
        return self.ray.get(self.limiter.admissions.remote())

    def actor_pids(self) -> list:
        return self.ray.get([a.pid.remote() for a in self.actors])

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(psycopg.Error):  # a lost session: its leases ended with it
            self.conn.execute("SELECT pxt._work_stop(%s)", (self.id,))
        self.conn.close()
        for a in self.actors:
            self.ray.kill(a)
        self.ray.kill(self.limiter)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
