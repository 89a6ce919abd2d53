"""Reads on a streaming hot-standby replica: a primary and its replica on this machine, each a
cluster of its own (pixelgres.cluster: init_replica, as `pixelgres up --replica-of` makes one).
The primary commits with synchronous_commit = remote_apply, so every commit returns once the
replica has applied it: the tests wait on that, never on a clock."""
import psycopg
import pytest

from pixelgres.cluster import Cluster


@pytest.fixture(scope="module")
def pair(tmp_path_factory, server):
    base = tmp_path_factory.mktemp("replicas")
    base.chmod(0o755)
    fast = {"fsync": "off", "synchronous_commit": "off", "pixelgres.allowed_roots": f"'{server.files}'"}
    primary = Cluster(base / "primary", settings=fast).start()
    replica = None
    try:
        primary.ensure_database("pixelgres")
        with psycopg.connect(primary.dsn("postgres"), autocommit=True) as c:
            c.execute("ALTER SYSTEM SET synchronous_standby_names = '*'")
            c.execute("SELECT pg_reload_conf()")
            media = c.execute("SELECT current_setting('data_directory')").fetchone()[0] + "/pixelgres_media"
        # media files are not WAL: the replica reads the primary's store (shared storage in production)
        replica = Cluster(base / "replica", settings={**fast, "pixelgres.media_dir": f"'{media}'"})
        replica.init_replica(primary.dsn("postgres")).start()
        yield primary, replica
    finally:
        if replica:
            replica.destroy()
        primary.destroy()


def connect(cluster, **kw):
    c = psycopg.connect(cluster.dsn("pixelgres"), autocommit=True, **kw)
    c.execute("SET statement_timeout = '120s'")  # a replica that never applies fails the test, not hangs it
    return c


def test_tables_versions_and_search_read_on_the_replica(pair, files):
    from PIL import Image

    primary, replica = pair
    Image.new("RGB", (20, 10), (200, 30, 30)).save(files / "red.png")
    with connect(primary) as p, connect(replica) as r:
        p.execute("SET synchronous_commit = remote_apply")
        p.execute("""SELECT pxt.create_table('ml.docs', '{"body": "string", "image": "image"}')""")
        p.execute("SELECT pxt.add_computed_column('ml.docs', 'small', 'pxt.resize(image, 4, 2)')")
        p.execute("SELECT pxt.add_embedding_index('ml.docs', 'body', embedding => 'pxt.test_embedding(dims => 8)')")
        p.execute("INSERT INTO ml.docs (body, image) VALUES ('a red square', %s), ('a blue sky', NULL)",
                  (str(files / "red.png"),))
        p.execute("UPDATE ml.docs SET body = 'a grey sky' WHERE body = 'a blue sky'")
        assert r.execute("SELECT pg_is_in_recovery()").fetchone()[0]
        assert [d.name for d in r.execute("SELECT * FROM ml.docs LIMIT 0").description] == \
            ["body", "image", "small", "body_embedding"]
        assert sorted(r.execute("SELECT body FROM ml.docs").fetchall()) == [("a grey sky",), ("a red square",)]
        assert r.execute("SELECT pxt.width(small) FROM ml.docs WHERE small IS NOT NULL").fetchone()[0] == 4
        assert r.execute("SELECT version, change_type FROM pxt.history('ml.docs') ORDER BY version").fetchall() == \
            p.execute("SELECT version, change_type FROM pxt.history('ml.docs') ORDER BY version").fetchall()
        assert r.execute("SELECT body FROM pxt.rows_at_version('ml.docs', 3) x(r), "
                         "LATERAL (SELECT r->>'body' AS body) b ORDER BY 1").fetchall() == \
            [("a blue sky",), ("a red square",)]
        top = r.execute("SELECT row->>'body' FROM pxt.search('ml.docs', 'body', 'a grey sky', k => 1)").fetchone()[0]
        assert top == "a grey sky"
        plan = "\n".join(x[0] for x in r.execute(
            "EXPLAIN SELECT body FROM ml.docs ORDER BY body_embedding <=> pxt.embed('ml.docs', 'body', 'x') LIMIT 1"))
        assert "body_embedding_hnsw" in plan  # the HNSW index replicated


def test_writes_on_the_replica_fail_clearly(pair):
    primary, replica = pair
    with connect(primary) as p, connect(replica) as r:
        p.execute("SET synchronous_commit = remote_apply")
        p.execute("""SELECT pxt.create_table('ml.ro', '{"x": "int"}', if_exists => 'ignore')""")
        for stmt in ("INSERT INTO ml.ro (x) VALUES (1)", "TRUNCATE ml.ro", "SELECT pxt.create_table('ml.other', '{\"x\": \"int\"}')",
                     "SELECT pxt.add_column('ml.ro', 'y', 'int')", "SELECT pxt.revert('ml.ro')"):
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction, match="read-only") as e:
                r.execute(stmt)
            assert "read-only replica (hot standby): run writes and pixelgres DDL on its primary" in \
                (e.value.diag.message_hint or ""), stmt
        assert r.execute("SELECT 1").fetchone()[0] == 1  # the backend is alive
        assert p.execute("SELECT count(*) FROM ml.ro").fetchone()[0] == 0


def test_pixelgres_up_replica_of(pair, tmp_path, monkeypatch, capsys):
    from pixelgres import cli
    from pixelgres.cluster import embedded_cluster

    primary, _ = pair
    tmp_path.chmod(0o755)
    monkeypatch.setenv("PIXELGRES_HOME", str(tmp_path / "home"))
    try:
        assert cli.main(["up", "--replica-of", primary.dsn("postgres")]) == 0
        dsn = capsys.readouterr().out.strip().splitlines()[-1]
        with psycopg.connect(dsn, autocommit=True) as r:
            assert r.execute("SELECT pg_is_in_recovery(), count(*) FROM pxt.list_tables()").fetchone()[0] is True
        assert cli.main(["up"]) == 0  # starts it again as the replica it is
    finally:
        embedded_cluster().destroy()
    monkeypatch.setenv("PIXELGRES_HOME", str(tmp_path / "primary-home"))
    try:
        assert cli.main(["up"]) == 0
        capsys.readouterr()
        assert cli.main(["up", "--replica-of", primary.dsn("postgres")]) == 2  # not over a primary
        assert "already holds a primary" in capsys.readouterr().err
    finally:
        embedded_cluster().destroy()
