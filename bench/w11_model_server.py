"""W11: the shared model server (pixelgres model-server) against every backend loading its own
copy: cold start of a fresh connection, memory of many connections, and embedding throughput
of concurrent inserting clients.

The model is the ViT-B/32 CLIP architecture with random weights (no CLIP weights ship on
PyPI): it costs what the real model costs. Both modes run on the same cluster, one after the
other; "in-process" is pixelgres.model_server = '' (each backend loads the model), "shared" is
the server started as `pixelgres model-server` starts it. Each mode runs --repeat rounds.

  (a) cold start: the first pxt.clip_text in a fresh connection minus a warm call, the server's
      model already loaded (goal: the shared mode's overhead <= 0.15 s);
  (b) memory: resident memory of --connections backends that each embedded a text, plus the
      model server's (shared), against the same backends each holding a copy (in-process,
      measured on --copies connections and reported per copy);
  (c) throughput: --clients concurrent connections, each inserting --statements statements of
      --rows texts into a table whose computed column is pxt.clip_text; texts per second;
  (d) API cold start: as (a) for a chat call to the loopback OpenAI-compatible stand-in (no
      latency): in-process the backend imports the openai client first; shared, the request
      goes through the model server, which already holds the client (goal <= 0.15 s).

    .venv/bin/python bench/w11_model_server.py [--repeat 3] [--connections 20] [--clients 8]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time

from _cluster import FAST, bench_dir, cluster, connect, readable_dir

from pixelgres.testing.models import tiny_clip
from pixelgres.testing.openai_server import OpenAIServer

MODEL = "clip-b32"
Q = f"SELECT pxt.clip_text(%s, '{MODEL}')"


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmRSS:"))


CHAT = """SELECT pxt.openai_chat_completions(jsonb_build_array(jsonb_build_object('role', 'user', 'content', %s::text)),
                                          'gpt-4o-mini', use_cache => false)"""


def cold_start(dsn: str, mode: str, query: str = Q) -> tuple[float, float]:
    """(first call in a fresh connection, a warm call), seconds."""
    with connect(dsn) as c:
        c.execute("SET pixelgres.model_server = %s" % ("''" if mode == "in-process" else "DEFAULT"))
        c.execute("SELECT 1")  # the connection itself is not what is measured
        t = time.perf_counter()
        c.execute(query, ("first",))
        first = time.perf_counter() - t
        t = time.perf_counter()
        c.execute(query, ("second",))
        return first, time.perf_counter() - t


def close_and_wait(conns: list) -> None:
    """Close connections and wait until their backends have exited: a backend that frees half
    a GB of weights takes a while, and the next measurement must not share the cores with it."""
    pids = [c.info.backend_pid for c in conns]
    for c in conns:
        c.close()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(os.path.exists(f"/proc/{p}") for p in pids):
        time.sleep(0.02)


def memory(dsn: str, mode: str, n: int) -> float:
    """Summed resident MB of n backends that each embedded a text."""
    conns = [connect(dsn) for _ in range(n)]
    try:
        for i, c in enumerate(conns):
            if mode == "in-process":
                c.execute("SET pixelgres.model_server = ''")
            c.execute(Q, (f"text {i}",))
        return sum(rss_mb(c.info.backend_pid) for c in conns)
    finally:
        close_and_wait(conns)


def throughput(dsn: str, mode: str, clients: int, statements: int, rows: int, tag: str) -> float:
    """Texts per second of concurrent inserting clients (each connection warmed up first)."""
    with connect(dsn) as c:
        c.execute(f"SELECT pxt.create_table('w11.t_{tag}', '{{\"s\": \"string\"}}')")
        c.execute(f"SELECT pxt.add_computed_column('w11.t_{tag}', 'e', $$pxt.clip_text(s, '{MODEL}')$$)")
    conns = [connect(dsn) for _ in range(clients)]
    for i, c in enumerate(conns):
        if mode == "in-process":
            c.execute("SET pixelgres.model_server = ''")
        c.execute(Q, (f"warm {i}",))
    start = threading.Barrier(clients + 1)

    def work(i, c):
        start.wait()
        for s in range(statements):
            c.execute(f"INSERT INTO w11.t_{tag} (s) SELECT 'client ' || %s || ' statement ' || %s || ' row ' || g "
                      "FROM generate_series(1, %s) g", (i, s, rows))

    threads = [threading.Thread(target=work, args=(i, c)) for i, c in enumerate(conns)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    close_and_wait(conns)
    return clients * statements * rows / wall


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--connections", type=int, default=20)
    ap.add_argument("--copies", type=int, default=3, help="in-process backends measured for memory")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--statements", type=int, default=4)
    ap.add_argument("--rows", type=int, default=8)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    with bench_dir("w11", args.keep) as base:
        models = readable_dir(base / "models")
        tiny_clip(models / MODEL, full_size=True)
        settings = {**FAST, "pixelgres.model_dir": f"'{models}'", "max_connections": "60"}
        with cluster(base, None, args.keep, settings) as dsn, connect(dsn) as admin, OpenAIServer() as api:
            from pixelgres.cluster import Cluster

            for name, value in (("openai_base_url", api.base_url), ("openai_api_key", "sk-bench"),
                                ("allowed_url_hosts", "127.0.0.1")):
                admin.execute(f"ALTER DATABASE bench SET pixelgres.{name} = '{value}'")

            c = Cluster(base / "home")
            python_dir = admin.execute("SELECT current_setting('pixelgres.python_dir')").fetchone()[0]
            proc = c.start_model_server(python_dir)
            try:
                admin.execute("ALTER SYSTEM SET pixelgres.model_server = %s" % f"'{c.model_socket}'")
                admin.execute("SELECT pg_reload_conf()")
                with connect(dsn) as plain:
                    plain.execute("SELECT 1")
                    plain_mb = rss_mb(plain.info.backend_pid)
                    plain.execute(Q, ("load the model in the server",))  # loads are not what (a) measures
                    plain.execute(CHAT, ("the server makes its client",))  # nor (d)
                cold = {"in-process": [], "shared": []}
                api_cold = {"in-process": [], "shared": []}
                mem = {"in-process": [], "shared": []}
                speed = {"in-process": [], "shared": []}
                for r in range(args.repeat):
                    for mode in ("in-process", "shared"):
                        first, warm = cold_start(dsn, mode)
                        cold[mode].append(first - warm)
                        first, warm = cold_start(dsn, mode, CHAT)
                        api_cold[mode].append(first - warm)
                        n = args.copies if mode == "in-process" else args.connections
                        total = memory(dsn, mode, n)
                        mem[mode].append((total - n * plain_mb) / n)  # MB over a plain backend, per connection
                        speed[mode].append(throughput(dsn, mode, args.clients, args.statements, args.rows,
                                                      f"{mode[:2]}{r}"))
                    print(f"  repeat {r + 1}/{args.repeat}: cold start overhead in-process {cold['in-process'][-1]:.2f}s"
                          f" / shared {cold['shared'][-1]:.3f}s; API in-process {api_cold['in-process'][-1]:.2f}s"
                          f" / shared {api_cold['shared'][-1]:.3f}s; throughput in-process {speed['in-process'][-1]:.1f}"
                          f" / shared {speed['shared'][-1]:.1f} texts/s", flush=True)
                server_mb = rss_mb(proc.server_pid)
            finally:
                admin.execute("ALTER SYSTEM RESET pixelgres.model_server")
                admin.execute("SELECT pg_reload_conf()")
                c.stop_model_server(proc)
    med = statistics.median
    sc = med(cold["shared"])
    print(f"W11 cold start, first call in a fresh connection minus a warm one: shared {sc:.3f}s "
          f"(min {min(cold['shared']):.3f}, max {max(cold['shared']):.3f}; target <= 0.15 s"
          f"{'' if sc <= 0.15 else ', ABOVE TARGET'}), in-process {med(cold['in-process']):.2f}s")
    ac = med(api_cold["shared"])
    print(f"W11 API cold start (chat), first call in a fresh connection minus a warm one: shared {ac:.3f}s "
          f"(min {min(api_cold['shared']):.3f}, max {max(api_cold['shared']):.3f}; target <= 0.15 s"
          f"{'' if ac <= 0.15 else ', ABOVE TARGET'}), in-process {med(api_cold['in-process']):.2f}s")
    per_copy, per_shared = med(mem["in-process"]), med(mem["shared"])
    n = args.connections
    print(f"W11 memory of {n} connections over plain backends: shared {per_shared * n + server_mb:.0f} MB "
          f"({per_shared:.0f} MB per backend + the server's {server_mb:.0f} MB, one copy of the weights) vs "
          f"in-process {per_copy:.0f} MB per backend (measured on {args.copies}), {per_copy * n:.0f} MB for {n}")
    ratios = [s / i for s, i in zip(speed["shared"], speed["in-process"])]
    print(f"W11 throughput of {args.clients} inserting clients, shared / in-process: median {med(ratios):.2f}x "
          f"(min {min(ratios):.2f}x, max {max(ratios):.2f}x; target > 1x{'' if med(ratios) > 1 else ', BELOW TARGET'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
