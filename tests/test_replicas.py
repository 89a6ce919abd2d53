"""Reads on a streaming hot-standby replica: a primary and its replica on this machine, each a
cluster of its own (pixelgres.cluster: init_replica, as `pixelgres up --replica-of` makes one).
The primary commits with synchronous_commit = remote_apply, so every commit returns once the
replica has applied it: the tests wait on that, never on a clock."""
import psycopg
import pytest

from pixelgres.cluster import Cluster
from openai_server import openai_server, openai_server_session  # noqa: F401  (fixtures)


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


def test_functions_that_write_outside_the_tables_on_the_replica(pair, files, openai_server):
    """Media already in the shared store is read; a new media file is refused with the
    replica's hint; AI calls run and read the primary's result cache, but do not write it."""
    from PIL import Image

    primary, replica = pair
    Image.new("RGB", (30, 10), (20, 200, 30)).save(files / "green.png")
    chat = ("pxt.openai_chat_completions(jsonb_build_array(jsonb_build_object('role', 'user', 'content', %s::text)), "
            "'gpt-4o-mini') -> 'choices' -> 0 -> 'message' ->> 'content'")
    with connect(primary) as p, connect(replica) as r:
        p.execute("SET synchronous_commit = remote_apply")
        p.execute("""SELECT pxt.create_table('ml.w', '{"image": "image"}', if_exists => 'ignore')""")
        p.execute("INSERT INTO ml.w (image) VALUES (%s)", (str(files / "green.png"),))
        for c in (p, r):
            c.execute("SELECT set_config('pixelgres.openai_base_url', %s, false)", (openai_server.base_url,))
            c.execute("SET pixelgres.allowed_url_hosts = '127.0.0.1'")
        made = p.execute("SELECT pxt.resize(image, 3, 1) FROM ml.w").fetchone()[0]
        assert r.execute("SELECT pxt.resize(image, 3, 1) FROM ml.w").fetchone()[0] == made  # in the store already
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction, match="cannot write media on a read-only replica") as e:
            r.execute("SELECT pxt.resize(image, 5, 2) FROM ml.w")
        assert "read-only replica (hot standby)" in (e.value.diag.message_hint or "")
        assert p.execute("SELECT " + chat, ("cached on the primary",)).fetchone()[0] == "Echo: cached on the primary"
        n = openai_server.count()
        assert r.execute("SELECT " + chat, ("cached on the primary",)).fetchone()[0] == "Echo: cached on the primary"
        assert openai_server.count() == n  # a cache hit, read on the replica
        assert r.execute("SELECT " + chat, ("only on the replica",)).fetchone()[0] == "Echo: only on the replica"
        assert openai_server.count() == n + 1
        assert p.execute("SELECT count(*) FROM pxt.ai_cache WHERE result::text LIKE '%only on the replica%'").fetchone()[0] == 0
