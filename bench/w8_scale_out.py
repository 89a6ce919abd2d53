"""W8: a deferred column backfilled on Ray, against the same backfill inline in one backend, same run.

Each row costs a fixed amount of CPU: an all-MiniLM-L6-v2 embedding of a short text, one
torch thread per process (OMP_NUM_THREADS=1 for the cluster, and Ray gives each 1-CPU actor
one thread), so "one worker" means one core on every side. Per repeat, on a fresh table of
N rows:

  inline   CALL pxt.process_pending(t, batch) in one backend (model warm)
  ray x1   pixelgres's Ray worker with 1 actor (model warm in the actor)
  ray x2   the same with 2 actors

and prints rows/s, the Ray path's overhead (ray x1 / inline, target <= 1.15x) and its scaling
(ray x1 / ray x2, target >= 1.8x on 2 cores). Ray's own start-up is reported, not counted.

    .venv/bin/python bench/w8_scale_out.py [--n 1000] [--batch 100] [--repeat 3]
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ["OMP_NUM_THREADS"] = "1"  # before torch (here and in the cluster's backends, which inherit it)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
from _cluster import bench_dir, cluster, connect  # noqa: E402
from w4_embeddings import make_texts  # noqa: E402

OVERHEAD_TARGET = 1.15
SCALING_TARGET = 1.8
EXPR = "pxt.sentence_transformer(s, 'all-MiniLM-L6-v2')"


def table(conn, name: str, texts: list[str]) -> None:
    conn.execute("SELECT pxt.create_table(%s, '{\"s\": \"string\"}')", (name,))
    conn.execute("SELECT pxt.add_computed_column(%s, 'e', %s, mode => 'deferred')", (name, EXPR))
    conn.execute(f"INSERT INTO {name} (s) SELECT unnest(%s::text[])", (texts,))


def check(conn, name: str, n: int) -> None:
    done = conn.execute(f"SELECT count(e) FROM {name}").fetchone()[0]
    assert done == n, f"{name}: {done} of {n} rows computed"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    import ray

    from pixelgres.workers.ray_engine import RayWorker

    texts = make_texts(a.n, seed=8)
    with bench_dir("w8") as base, cluster(base) as dsn:
        print(f"cluster up; {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f}; N={a.n}, batch {a.batch}",
              flush=True)
        t = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        print(f"Ray local cluster started in {time.perf_counter() - t:.1f}s (not counted)", flush=True)
        runs: dict = {"inline": [], "ray x1": [], "ray x2": []}
        with connect(dsn) as conn:
            conn.execute("SELECT pxt.sentence_transformer('warm', 'all-MiniLM-L6-v2')")  # model warm in the backend
            # one pool of 2 actors (Ray has 2 CPUs): "ray x1" uses one of them
            w = RayWorker(dsn, None, None, a.batch, 2, lease_seconds=600)
            warm = [["sentence_transformer", "pixelgres.server.ai.embedding_models", "w", ["warm", "all-MiniLM-L6-v2"]]]
            ray.get([actor.run.remote(warm) for actor in w.actors])  # the model loaded in every actor
            for r in range(a.repeat):
                name = f"inline_{r}"
                table(conn, name, texts)
                t = time.perf_counter()
                conn.execute("CALL pxt.process_pending(%s, %s)", (name, a.batch))
                runs["inline"].append(time.perf_counter() - t)
                check(conn, name, a.n)
                for k in (1, 2):
                    name = f"ray{k}_{r}"
                    table(conn, name, texts)
                    w.table = name
                    t = time.perf_counter()
                    totals = w.run(once=True, actors=k)
                    runs[f"ray x{k}"].append(time.perf_counter() - t)
                    assert totals.computed_here == 0, totals
                    check(conn, name, a.n)
                print(f"  run {r + 1}: " + ", ".join(f"{k} {v[-1]:.2f}s ({a.n / v[-1]:.0f} rows/s)"
                                                    for k, v in runs.items()), flush=True)
            w.close()
        ray.shutdown()
    med = {k: statistics.median(v) for k, v in runs.items()}
    spread = {k: f"{min(v):.2f}-{max(v):.2f}s" for k, v in runs.items()}
    overhead = [r1 / i for r1, i in zip(runs["ray x1"], runs["inline"])]
    scaling = [r1 / r2 for r1, r2 in zip(runs["ray x1"], runs["ray x2"])]
    print(f"\nsummary (load average now {os.getloadavg()[0]:.2f}; median of {a.repeat}, spread):")
    for k in runs:
        print(f"  {k}: {med[k]:.2f}s ({spread[k]}), {a.n / med[k]:.0f} rows/s")
    ov, sc = statistics.median(overhead), statistics.median(scaling)
    print(f"W8 Ray path, 1 actor: {ov:.2f}x the inline backfill (spread {min(overhead):.2f}-{max(overhead):.2f}x) "
          f"(target <= {OVERHEAD_TARGET}x{'' if ov <= OVERHEAD_TARGET else ', ABOVE TARGET'})")
    print(f"W8 Ray path, 2 actors: {sc:.2f}x the rows/s of 1 actor (spread {min(scaling):.2f}-{max(scaling):.2f}x) "
          f"(target >= {SCALING_TARGET}x{'' if sc >= SCALING_TARGET else ', BELOW TARGET'})")


if __name__ == "__main__":
    main()
