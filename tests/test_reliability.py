"""Faults and load: a killed backend loses nothing committed and leaves no dangling media;
concurrent writers and snapshot readers keep every row exactly once and history linear."""
import os
import signal
import tempfile
import threading
from pathlib import Path

import psycopg
import pytest

from pixelgres.cluster import Cluster
from pixelgres.testing.waits import wait_until


@pytest.fixture
def own_cluster(server):
    """A private cluster: killing a backend makes the postmaster restart all sessions."""
    home = Path(tempfile.mkdtemp(prefix="pixelgres-crash-"))
    os.chmod(home, 0o755)
    c = Cluster(home / "h", settings={"pixelgres.allowed_roots": f"'{server.files}'", "fsync": "off"}).start()
    try:
        yield c, c.ensure_database("crash")
    finally:
        c.destroy()


@pytest.mark.slow
def test_kill_backend_mid_insert(own_cluster, files):
    from PIL import Image
    cluster, dsn = own_cluster
    for i in range(60):
        Image.effect_noise((400, 300), 60 + i).convert("RGB").save(files / f"{i}.jpg")
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("SELECT pxt.create_table('k', '{\"image\": \"image\"}')")
        c.execute("SELECT pxt.add_computed_column('k', 'small', 'pxt.resize(image, 64, 64)')")
        c.execute("SELECT pxt.add_computed_column('k', 'turned', 'pxt.rotate(small, 90)')")
        c.execute("INSERT INTO k (image) VALUES (%s)", (str(files / "0.jpg"),))  # committed before the crash
        media = Path(c.execute("SELECT pxt._media_dir()").fetchone()[0])
    victim = psycopg.connect(dsn, autocommit=True)
    pid = victim.execute("SELECT pg_backend_pid()").fetchone()[0]
    paths = [str(files / f"{i}.jpg") for i in range(1, 60)] * 5

    def big_insert():
        try:
            victim.execute("INSERT INTO k (image) SELECT unnest(%s::text[])", (paths,))
        except psycopg.Error:
            pass
    t = threading.Thread(target=big_insert)
    t.start()
    wait_until(lambda: sum(1 for _ in media.rglob("*.jpg")) >= 20, "the insert to write 20 media files")
    os.kill(pid, signal.SIGKILL)
    t.join(60)
    victim.close()
    conn = wait_until(lambda: psycopg.connect(dsn, autocommit=True), "crash recovery")
    with conn:
        assert conn.execute("SELECT count(*) FROM k").fetchone()[0] == 1  # no partial rows
        for small, turned in conn.execute("SELECT small, turned FROM k"):
            for ref in (small, turned):  # every row's media exists
                assert Path(conn.execute("SELECT pxt.media_path(%s)", (ref,)).fetchone()[0]).exists()
        assert [r[0] for r in conn.execute("SELECT inserts FROM pxt.history('k') WHERE change_type = 'data'")] == [1]
        r = conn.execute("SELECT pxt.vacuum_media(min_age => '0 seconds')").fetchone()[0]
        assert r["deleted"] >= 15  # the killed statement's files: orphans, now gone
        assert sum(1 for _ in media.rglob("*.jpg")) == 2  # the committed row's two files remain
        assert not [p for p in media.rglob(".tmp-*")]  # interrupted writes are gone too
        conn.execute("INSERT INTO k (image) VALUES (%s)", (str(files / "1.jpg"),))  # and it works on
        assert conn.execute("SELECT count(*) FROM k WHERE turned IS NOT NULL").fetchone()[0] == 2


@pytest.mark.slow
def test_eight_writers_two_snapshot_readers(dsn):
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("SELECT pxt.create_table('load', '{\"writer\": \"int\", \"n\": \"int\"}')")
        c.execute("SELECT pxt.add_computed_column('load', 'tag', $$writer || '-' || n$$)")
        c.execute("INSERT INTO load (writer, n) VALUES (-1, 0)")
        c.execute("SELECT pxt.create_snapshot('load_snap', 'load')")
    writes = 30  # statements per writer: a fixed amount of work, not a time budget
    done = threading.Event()
    errors, counts = [], {}

    def writer(w):
        try:
            with psycopg.connect(dsn, autocommit=True) as c:
                n = 0
                for _ in range(writes):
                    c.execute("INSERT INTO load (writer, n) SELECT %s, g FROM generate_series(%s::int, %s::int) g",
                              (w, n, n + 9))
                    n += 10
                    if n % 50 == 0:
                        c.execute("UPDATE load SET n = n WHERE writer = %s AND n < 5", (w,))
                counts[w] = n
        except Exception as e:
            errors.append(e)

    def reader():
        try:
            with psycopg.connect(dsn, autocommit=True) as c:
                reads = 0
                while not done.is_set() or reads < 5:
                    reads += 1
                    assert c.execute("SELECT count(*) FROM load_snap").fetchone()[0] == 1
                    c.execute("SELECT count(*) FROM pxt.history('load')").fetchone()
        except Exception as e:
            errors.append(e)
    threads = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
    threads += [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads[:8]:
        t.join(300)
    done.set()
    for t in threads[8:]:
        t.join(300)
    assert not errors, errors
    assert sorted(counts) == list(range(8)) and set(counts.values()) == {10 * writes}
    with psycopg.connect(dsn, autocommit=True) as c:
        rows = c.execute("SELECT writer, n, count(*) FROM load WHERE writer >= 0 GROUP BY 1, 2 HAVING count(*) > 1").fetchall()
        assert rows == []  # every row exactly once
        assert c.execute("SELECT count(*) FROM load WHERE writer >= 0").fetchone()[0] == sum(counts.values())
        assert c.execute("SELECT count(*) FROM load WHERE tag <> writer || '-' || n").fetchone()[0] == 0
        hist = c.execute("SELECT version, inserts FROM pxt.history('load') ORDER BY version").fetchall()
        assert [v for v, _ in hist] == list(range(len(hist)))  # linear
        assert sum(i for _, i in hist) == sum(counts.values()) + 1
