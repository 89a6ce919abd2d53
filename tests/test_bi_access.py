"""BI tools' way in: the embedded cluster on TCP with SCRAM passwords, and login roles from the
CLI (``pixelgres up --listen``, ``pixelgres role add | list | drop``), on a throwaway embedded
cluster of its own (listen_addresses needs a restart, which the shared test cluster must not see).
"""
import re
import subprocess
from pathlib import Path

import psycopg
import pytest

from pixelgres import cli
from pixelgres.cluster import embedded_cluster


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    h = tmp_path_factory.mktemp("bi-home")
    h.chmod(0o755)
    mp.setenv("PIXELGRES_HOME", str(h))
    mp.delenv("OPENAI_BASE_URL", raising=False)
    yield h
    embedded_cluster().destroy()
    mp.undo()


def run(capsys, *argv) -> tuple[int, str, str]:
    rc = cli.main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_tcp_with_scram_and_roles_from_the_cli(home, capsys):
    rc, out, err = run(capsys, "up", "--listen", "127.0.0.1")
    assert rc == 0 and "scram-sha-256" in err
    c = embedded_cluster()
    hba = [line for line in (c.datadir / "pg_hba.conf").read_text().splitlines() if line and not line.startswith("#")]
    assert hba[:2] == ["local all all trust", "local replication all trust"]  # the owner's 0700 socket
    assert all(line.split()[0] == "host" and line.split()[-1] == "scram-sha-256" for line in hba[2:]) and hba[2:]
    with psycopg.connect(c.dsn(), autocommit=True) as admin:
        assert admin.execute("SHOW listen_addresses").fetchone()[0] == "127.0.0.1"
        admin.execute("""SELECT pxt.create_table('ml.t', '{"s": "string"}')""")
        admin.execute("INSERT INTO ml.t (s) VALUES ('visible')")

    rc, out, _ = run(capsys, "role", "add", "bi_reader", "--reader")
    assert rc == 0
    urls = dict(re.findall(r"^\s+(\S+)\s+(\S+)$", out, re.M))
    assert set(urls) == {"libpq", "JDBC", "SQLAlchemy"}
    assert urls["JDBC"].startswith(f"jdbc:postgresql://127.0.0.1:{c.port}/pixelgres?user=bi_reader&password=")
    with psycopg.connect(urls["libpq"], autocommit=True) as bi:  # over TCP, with the password
        assert bi.info.host == "127.0.0.1"
        assert bi.execute("SELECT s FROM ml.t").fetchall() == [("visible",)]
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            bi.execute("INSERT INTO ml.t (s) VALUES ('no')")
    import sqlalchemy

    engine = sqlalchemy.create_engine(urls["SQLAlchemy"])
    with engine.connect() as conn:
        assert conn.execute(sqlalchemy.text("SELECT count(*) FROM ml.t")).scalar() == 1
    engine.dispose()

    with psycopg.connect(c.dsn(), autocommit=True) as admin:
        assert admin.execute("SELECT rolpassword LIKE 'SCRAM-SHA-256$%' FROM pg_authid "
                             "WHERE rolname = 'bi_reader'").fetchone()[0]
    wrong = re.sub(r":[^:@]+@", ":wrong@", urls["libpq"])
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(wrong)
    with pytest.raises(psycopg.OperationalError):  # no trust over TCP, not even for the owner
        psycopg.connect(c.tcp_dsn("postgres") + " password=")

    rc, out, _ = run(capsys, "role", "list")
    assert rc == 0 and re.search(r"^bi_reader\tpxt_reader\tpassword$", out, re.M)
    rc, out, _ = run(capsys, "role", "drop", "bi_reader")
    assert rc == 0
    rc, out, _ = run(capsys, "role", "list")
    assert "bi_reader" not in out


def test_hostile_names_and_addresses_are_refused(home, capsys):
    run(capsys, "up")
    for name in ("x; DROP TABLE ml.t", "Bob", "pxt_admin", "pg_x", "a" * 64):
        rc, _, err = run(capsys, "role", "add", name, "--user")
        assert rc == 1 and "role name" in err
    rc, _, err = run(capsys, "role", "drop", "postgres")
    assert rc == 1 and "not a login role made by" in err
    with pytest.raises(ValueError, match="IP address"):
        embedded_cluster().listen("127.0.0.1/0; host all all 0.0.0.0/0 trust")


JDBC_JAR = Path("/usr/share/java/postgresql.jar")  # Debian's libpostgresql-jdbc-java (make test installs it)
PROBE = Path(__file__).parent / "jdbc" / "Probe.java"


NODE_PROBE = Path(__file__).parent / "node" / "probe.js"  # node-postgres (make test: npm ci in tests/node)
QUERY = "SELECT * FROM ml.bi ORDER BY name"  # the user's columns only, in their order


def bi_table(capsys, role: str) -> dict:
    """ml.bi with media, JSON and vector columns, on TCP; a reader's connection strings."""
    import io

    from PIL import Image

    run(capsys, "up", "--listen", "127.0.0.1")
    buf = io.BytesIO()
    Image.new("RGB", (8, 6), (9, 9, 9)).save(buf, "PNG")
    with psycopg.connect(embedded_cluster().dsn(), autocommit=True) as admin:
        admin.execute("""SELECT pxt.create_table('ml.bi', '{"name": "string", "image": "image", "meta": "json"}',
                                                 if_exists => 'ignore')""")
        admin.execute("SELECT pxt.add_computed_column('ml.bi', 'emb', $$'[1,2,3]'::vector(3)$$, if_exists => 'ignore')")
        admin.execute("DELETE FROM ml.bi")
        admin.execute("""INSERT INTO ml.bi (name, image, meta) VALUES ('one', pxt.image_from_bytes(%s), '{"k": [1, 2]}'),
                                                                    ('two', NULL, NULL)""", (buf.getvalue(),))
        image = admin.execute("SELECT image FROM ml.bi WHERE name = 'one'").fetchone()[0]
    rc, out, _ = run(capsys, "role", "add", role, "--reader")
    assert rc == 0
    return {**dict(re.findall(r"^\s+(\S+)\s+(\S+)$", out, re.M)), "image": image}


def test_a_jdbc_client_reads_a_table_with_the_printed_url(home, capsys):
    assert JDBC_JAR.exists(), f"{JDBC_JAR} is missing: `make test` installs Debian's libpostgresql-jdbc-java"
    urls = bi_table(capsys, "jdbc_reader")
    try:
        p = subprocess.run(["java", "-cp", str(JDBC_JAR), str(PROBE), urls["JDBC"], QUERY],
                           capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr
        lines = [line.split("\t") for line in p.stdout.splitlines()]
        assert [x[1] for x in lines if x[0] == "column"] == ["name", "image", "meta", "emb"]
        assert [x[1:] for x in lines if x[0] == "row"] == [["one", urls["image"], '{"k": [1, 2]}', "[1,2,3]"],
                                                          ["two", "null", "null", "[1,2,3]"]]
        p = subprocess.run(["java", "-cp", str(JDBC_JAR), str(PROBE), urls["JDBC"].replace("password=", "password=wrong"),
                            "SELECT 1"], capture_output=True, text=True, timeout=300)
        assert p.returncode != 0 and "password authentication failed" in p.stderr
    finally:
        run(capsys, "role", "drop", "jdbc_reader")


def test_node_postgres_reads_a_table_with_the_printed_url(home, capsys):
    import json

    assert (NODE_PROBE.parent / "node_modules" / "pg").is_dir(), "node-postgres is missing: `make test` runs npm ci in tests/node"
    urls = bi_table(capsys, "node_reader")
    try:
        p = subprocess.run(["node", str(NODE_PROBE), urls["libpq"], QUERY], capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr
        got = json.loads(p.stdout)
        assert got["fields"] == ["name", "image", "meta", "emb"]
        assert got["rows"] == [{"name": "one", "image": urls["image"], "meta": {"k": [1, 2]}, "emb": "[1,2,3]"},
                               {"name": "two", "image": None, "meta": None, "emb": "[1,2,3]"}]
        p = subprocess.run(["node", str(NODE_PROBE), re.sub(r":[^:@]+@", ":wrong@", urls["libpq"]), "SELECT 1"],
                           capture_output=True, text=True, timeout=300)
        assert p.returncode != 0 and "password authentication failed" in p.stderr
        p = subprocess.run(["node", str(NODE_PROBE), urls["libpq"], "INSERT INTO ml.bi (name) VALUES ('no')"],
                           capture_output=True, text=True, timeout=300)
        assert p.returncode != 0 and "permission denied" in p.stderr  # a reader cannot write
    finally:
        run(capsys, "role", "drop", "node_reader")


def test_sqlalchemy_reflects_media_and_vector_columns(home, capsys):
    import warnings

    import pandas as pd
    import sqlalchemy
    from pgvector.sqlalchemy import VECTOR

    run(capsys, "up", "--listen", "127.0.0.1")
    with psycopg.connect(embedded_cluster().dsn(), autocommit=True) as admin:
        admin.execute("""SELECT pxt.create_table('ml.media', '{"name": "string", "image": "image", "video": "video",
                                                                 "audio": "audio", "doc": "document"}')""")
        admin.execute("SELECT pxt.add_computed_column('ml.media', 'emb', $$'[1,2,3]'::vector(3)$$)")
        admin.execute("INSERT INTO ml.media (name) VALUES ('one')")
    rc, out, _ = run(capsys, "role", "add", "sa_reader", "--reader")
    url = dict(re.findall(r"^\s+(\S+)\s+(\S+)$", out, re.M))["SQLAlchemy"]
    assert url.startswith("postgresql+psycopg://")
    engine = sqlalchemy.create_engine(url.replace("postgresql+psycopg://", "postgresql+pixelgres://"))  # the entry point
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # "Did not recognize type" would be a warning
            cols = {c["name"]: c["type"] for c in sqlalchemy.inspect(engine).get_columns("media", schema="ml")}
            frame = pd.read_sql_table("media", engine, schema="ml")
        from pixelgres import sqlalchemy as pxsa

        assert [type(cols[n]) for n in ("image", "video", "audio", "doc")] == [pxsa.Image, pxsa.Video, pxsa.Audio,
                                                                               pxsa.Document]
        assert isinstance(cols["emb"], VECTOR) and cols["emb"].dim == 3
        assert list(cols) == list(frame.columns) == ["name", "image", "video", "audio", "doc", "emb"]
        assert str(cols["image"].compile(dialect=engine.dialect)) == "pxt.image"
        assert frame.loc[0, "name"] == "one" and list(frame.loc[0, "emb"]) == [1.0, 2.0, 3.0]
        readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
        section = readme[readme.index("### Connect a BI tool"):readme.index("### Media in BI tools")]
        block = re.findall(r"```python\n(.*?)```", section, flags=re.S)[0]
        pixelgres_url = url.replace("postgresql+psycopg://", "postgresql+pixelgres://")
        code = re.sub(r'"postgresql\+pixelgres://[^"]+"', repr(pixelgres_url), block).replace('"images"', '"media"')
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            exec(compile(code, "README.md", "exec"), {})  # README's snippet, as written but for the URL
    finally:
        engine.dispose()
        run(capsys, "role", "drop", "sa_reader")


def test_media_server_cli_serves_the_links_the_cluster_signs(home, capsys):
    import io
    import os
    import sys
    import urllib.request

    from PIL import Image

    run(capsys, "up")
    buf = io.BytesIO()
    Image.new("RGB", (50, 40), (1, 2, 3)).save(buf, "PNG")
    proc = subprocess.Popen([sys.executable, "-m", "pixelgres.cli", "media-server"], stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PIXELGRES_HOME": str(home)})
    try:
        line = proc.stderr.readline()  # printed once it listens and the settings are in place
        base = re.search(r"media server (http://127\.0\.0\.1:\d+)", line).group(1)
        with psycopg.connect(embedded_cluster().dsn(), autocommit=True) as c:
            url = c.execute("SELECT pxt.media_url(pxt.image_from_bytes(%s))", (buf.getvalue(),)).fetchone()[0]
        assert url.startswith(base + "/m/")
        with urllib.request.urlopen(url) as r:
            assert r.headers["Content-Type"] == "image/png" and Image.open(io.BytesIO(r.read())).size == (50, 40)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    with psycopg.connect(embedded_cluster().dsn(), autocommit=True) as c:  # stopped: its settings are gone
        assert c.execute("SELECT current_setting('pixelgres.media_url_base')").fetchone()[0] == ""
