"""What the benchmarks share: a throwaway directory and cluster, and timing of this process or a backend."""
import contextlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python"))
from pixelgres.cluster import Cluster  # noqa: E402

# fast and unsafe, as the test suite's cluster
FAST = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off", "shared_buffers": "256MB"}


@contextlib.contextmanager
def bench_dir(name: str, keep: bool = False):
    """A temp directory (world-readable), removed afterwards unless keep."""
    base = Path(tempfile.mkdtemp(prefix=f"pixelgres-bench-{name}-"))
    os.chmod(base, 0o755)
    try:
        yield base
    finally:
        if keep:
            print(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)


def readable_dir(path: Path, mode: int = 0o755) -> Path:
    path.mkdir()
    os.chmod(path, mode)
    return path


@contextlib.contextmanager
def cluster(base: Path, files: Path | None = None, keep: bool = False, settings: dict = FAST):
    """A cluster in base/home whose server may read files; yields the DSN of its database 'bench'."""
    roots = {"pixelgres.allowed_roots": f"'{files}'"} if files else {}
    c = Cluster(base / "home", settings={**roots, **settings}).start()
    try:
        yield c.ensure_database("bench")
    finally:
        if not keep:
            c.destroy()


def connect(dsn: str) -> psycopg.Connection:
    return psycopg.connect(dsn, autocommit=True)


def backend_cpu(pid: int) -> float:
    """CPU seconds (user + system, all threads) a process has used, from /proc (local cluster only)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):  # the backend is not a local process we can see
        return float("nan")


def memory(pid: int) -> dict:
    """RSS, unique (private: USS) and anonymous memory of a process, MiB, from /proc (local
    cluster only). USS counts a shared library's pages as private while one process maps
    them; anonymous memory (heap, tensors) is what each further process pays again."""
    out = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("Rss", "Pss", "Private_Clean", "Private_Dirty", "Anonymous"):
                    out[k] = int(v.split()[0]) / 1024
    except OSError:
        return {"rss": float("nan"), "uss": float("nan"), "anon": float("nan")}
    return {"rss": out.get("Rss", 0), "uss": out.get("Private_Clean", 0) + out.get("Private_Dirty", 0),
            "anon": out.get("Anonymous", 0)}


class Timing:
    """Wall time and CPU time, of this process (all threads) or of a backend (by pid): on a
    loaded machine CPU time is the steadier measure of the work done."""

    def __init__(self, pid: int | None = None):
        self.pid = pid

    def _cpu(self) -> float:
        return time.process_time() if self.pid is None else backend_cpu(self.pid)

    def __enter__(self):
        self.wall0, self.cpu0 = time.perf_counter(), self._cpu()
        return self

    def __exit__(self, *exc):
        self.wall, self.cpu = time.perf_counter() - self.wall0, self._cpu() - self.cpu0


def timed(conn, query, params=None) -> float:
    """Wall seconds of one statement."""
    t = time.perf_counter()
    conn.execute(query, params)
    return time.perf_counter() - t


def timed_backend(conn, query, params=None) -> Timing:
    """Wall time and backend CPU time of one statement."""
    with Timing(conn.info.backend_pid) as t:
        conn.execute(query, params)
    return t
