"""W5: cost of versioning. Insert and update throughput of a managed (versioned) table vs the
same table unmanaged, and revert time of a 100-row version on a 10k- and a 200k-row table.
Targets: versioned <= 1.3x the unmanaged time; revert times within 2x of each other.

    .venv/bin/python bench/w5_versioning.py [--rows 100000] [--batch 1000]
"""
import argparse
import statistics

from _cluster import bench_dir, cluster, connect, timed

# this bench's own settings (full-page writes on, more shared buffers)
SETTINGS = {"fsync": "off", "synchronous_commit": "off", "shared_buffers": "512MB"}


def miss(ratio: float, target: float) -> str:
    return "" if ratio <= target else ", ABOVE TARGET"


def workload(conn, table, rows, batch):
    ins = sum(timed(conn, f"INSERT INTO {table} (x, label) SELECT g, 'label ' || g FROM generate_series(%s::bigint, %s::bigint) g",
                    (i, i + batch - 1)) for i in range(0, rows, batch))
    upd = sum(timed(conn, f"UPDATE {table} SET x = x + 1 WHERE x BETWEEN %s::bigint AND %s::bigint", (i, i + batch - 1))
              for i in range(0, rows, batch * 4))
    return ins, upd


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3); medians are reported")
    a = ap.parse_args()
    with bench_dir("w5") as base, cluster(base, settings=SETTINGS) as dsn, connect(dsn) as conn:
        best, per_round = {}, []
        for r in range(a.rounds):  # alternate: a busy moment of the machine hits all three alike
            # the same table unmanaged: same columns, and a primary key as any real table has
            conn.execute(f"CREATE TABLE plain{r} (x bigint, label text, id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY)")
            conn.execute(f"SELECT pxt.create_table('versioned{r}', '{{\"x\": \"int\", \"label\": \"string\"}}')")
            conn.execute(f"SELECT pxt.create_table('storage{r}', '{{\"x\": \"int\", \"label\": \"string\"}}')")
            # versioned: through the table's name (its face, a view); storage: the same writes
            # to its storage table directly, to price the face
            rel = {"plain": f"plain{r}", "versioned": f"versioned{r}", "storage": f'pxt_data."public.storage{r}"'}
            this = {}
            for kind in ("plain", "versioned", "storage"):
                ins, upd = this[kind] = workload(conn, rel[kind], a.rows, a.batch)
                b = best.setdefault(kind, [ins, upd])
                best[kind] = [min(b[0], ins), min(b[1], upd)]
            per_round.append(this)
        ratio = lambda k, i: sorted(x[k][i] / x["plain"][i] for x in per_round)  # noqa: E731
        n_upd = a.rows // 4
        for i, what in ((0, f"insert {a.rows} rows in statements of {a.batch}"), (1, f"update {n_upd} rows")):
            rs, n = ratio("versioned", i), (a.rows, n_upd)[i]
            m, plain_t = statistics.median(rs), statistics.median(x["plain"][i] for x in per_round)
            b = best["versioned"][i] / best["plain"][i]
            print(f"W5 {what}: unmanaged {n / plain_t:,.0f} rows/s, versioned ratio {m:.2f}x, median of "
                  f"{a.rounds} alternating rounds (runs {rs[0]:.2f}-{rs[-1]:.2f}x; best against best {b:.2f}x) "
                  f"(target <= 1.3x{miss(m, 1.3)})")
        face = [statistics.median(x["versioned"][i] / x["storage"][i] for x in per_round) for i in (0, 1)]
        print(f"W5 the face (writes through the table's name) over writes to its storage: insert "
              f"{face[0]:.3f}x, update {face[1]:.3f}x (medians)")
        times = {}
        for size in (10_000, 200_000):
            t = f"r{size}"
            conn.execute("SELECT pxt.create_table(%s, '{\"x\": \"int\", \"label\": \"string\"}')", (t,))
            conn.execute(f"INSERT INTO {t} (x, label) SELECT g, 'l' || g FROM generate_series(1, %s::bigint) g", (size,))
            conn.execute(f"VACUUM ANALYZE {t}")
            conn.execute(f"UPDATE {t} SET label = 'changed' WHERE x <= 100")
            times[size] = timed(conn, "SELECT pxt.revert(%s)", (t,))
        print(f"W5 revert of a 100-row version: 10k rows {times[10_000] * 1000:.1f} ms, "
              f"200k rows {times[200_000] * 1000:.1f} ms, ratio {times[200_000] / times[10_000]:.2f}x "
              f"(target <= 2x{miss(times[200_000] / times[10_000], 2)})")


if __name__ == "__main__":
    main()
