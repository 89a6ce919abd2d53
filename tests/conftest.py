"""Test harness: one server per session, one fresh database per test.

The server is, in order of preference:
  * PIXELGRES_TEST_DSN: an existing server (superuser DSN) with pixelgres installed;
  * PIXELGRES_TEST_BACKEND=docker: the docker/ image through testcontainers;
  * otherwise a throwaway local cluster (initdb on a free port in a temp dir).
Each test gets a database cloned from a template that already has the extension, so tests
are isolated and creating one costs milliseconds. Files the server must read (generated
images, videos...) go under ``server.files``, which is in pixelgres.allowed_roots.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from pixelgres.cluster import Cluster

TEMPLATE = "pxt_test_template"
ROOT = Path(__file__).resolve().parent.parent


class Server:
    def __init__(self, admin_dsn: str, files: Path, cluster: Cluster | None = None):
        self.admin_dsn = admin_dsn
        self.files = files
        self.cluster = cluster

    def dsn(self, dbname: str) -> str:
        return psycopg.conninfo.make_conninfo(self.admin_dsn, dbname=dbname)

    def admin(self) -> psycopg.Connection:
        return psycopg.connect(self.admin_dsn, autocommit=True)

    def create_database(self) -> str:
        name = "t_" + uuid.uuid4().hex[:12]
        with self.admin() as c:
            c.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(TEMPLATE)))
        return name

    def drop_database(self, name: str) -> None:
        with self.admin() as c:
            c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _files_dir(base: Path) -> Path:
    files = base / "files"
    files.mkdir(parents=True, exist_ok=True)
    for p in (base, files):
        os.chmod(p, 0o777)  # the server (another OS user) reads and the tests write here
    return files


def extension_module(name: str):
    """A build script of extension/ (build_sql, registry) as a module. extension/ is on sys.path
    only while it loads: it also holds pixelgres.so, which must never shadow the package (a
    child process started with multiprocessing inherits sys.path)."""
    import importlib

    ext = str(ROOT / "extension")
    sys.path.insert(0, ext)
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(ext)


def test_objects_sql() -> str:
    """Test-only SQL objects (pxt_test.batch_probe), never part of the extension."""
    build_sql = extension_module("build_sql")
    text = (ROOT / "python" / "pixelgres" / "testing" / "batch_probe.sql").read_text()
    return re.sub(r"^#@pxt$", build_sql.PREAMBLE, text, flags=re.M)


@pytest.fixture(scope="session")
def server():
    base = Path(tempfile.mkdtemp(prefix="pixelgres-test-"))
    os.chmod(base, 0o755)
    files = _files_dir(base)
    cluster = None
    container = None
    if os.environ.get("PIXELGRES_TEST_DSN"):
        admin_dsn = os.environ["PIXELGRES_TEST_DSN"]
    elif os.environ.get("PIXELGRES_TEST_BACKEND") == "docker":
        from testcontainers.core.container import DockerContainer
        from testcontainers.core.waiting_utils import wait_for_logs

        image = os.environ.get("PIXELGRES_TEST_IMAGE", "pixelgres:latest")
        container = (DockerContainer(image)
                     .with_env("POSTGRES_PASSWORD", "pixelgres")
                     .with_volume_mapping(str(files), str(files), "rw")
                     .with_command(f"postgres -c shared_preload_libraries=pixelgres -c pixelgres.allowed_roots={files}")
                     .with_exposed_ports(5432))
        container.start()
        wait_for_logs(container, "database system is ready to accept connections", timeout=120)
        admin_dsn = (f"host={container.get_container_host_ip()} port={container.get_exposed_port(5432)} "
                     f"user=postgres password=pixelgres dbname=postgres")
    else:
        cluster = Cluster(base / "home", settings={
            "pixelgres.allowed_roots": f"'{files}'",
            "fsync": "off", "synchronous_commit": "off", "full_page_writes": "off",
            "max_connections": "60", "shared_buffers": "256MB",
        }).start()
        admin_dsn = cluster.dsn("postgres")
    srv = Server(admin_dsn, files, cluster)
    with srv.admin() as c:
        c.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(TEMPLATE)))
        c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(TEMPLATE)))
    with psycopg.connect(srv.dsn(TEMPLATE), autocommit=True) as c:
        c.execute("CREATE EXTENSION pixelgres CASCADE")
        c.execute(test_objects_sql())
    try:
        yield srv
    finally:
        if cluster:
            cluster.destroy()
        if container:
            container.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def dbname(server):
    name = server.create_database()
    yield name
    server.drop_database(name)


@pytest.fixture
def dsn(server, dbname):
    return server.dsn(dbname)


@pytest.fixture
def db(dsn):
    """An autocommit psycopg connection to a fresh database with the extension."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        yield conn


def set_for_database(db, dbname: str, settings: dict) -> None:
    """Settings (superuser-only ones too) for every new session of ``dbname`` -- pxt clients,
    workers, other roles -- and for ``db``'s own session now."""
    for name, value in settings.items():
        db.execute(sql.SQL("ALTER DATABASE {} SET {} = {}").format(
            sql.Identifier(dbname), sql.Identifier(*name.split(".")), sql.Literal(value)))
        db.execute("SELECT set_config(%s, %s, false)", (name, value))


@pytest.fixture
def files(server, request):
    """A fresh directory the server may read (under pixelgres.allowed_roots)."""
    d = server.files / uuid.uuid4().hex[:8]
    d.mkdir()
    os.chmod(d, 0o777)
    return d


class BackendClock:
    """The retry policy's clock in ``conn``'s backend, switched to virtual time.

    Waits (pauses, bucket refills, backoff) then take no real time and use jitter from a
    seeded RNG; ``events()`` is the backend's log of them ({"what": "sleep" | "pause" |
    "admit", "t": virtual seconds, ...}), for assertions on order instead of elapsed time.
    """

    def __init__(self, conn: psycopg.Connection, seed: int = 7):
        self.conn = conn
        conn.execute("SELECT pxt.server_info()")  # boots the server Python in this backend
        self._run(f"r.use_virtual_clock({int(seed)})")

    def _run(self, code: str) -> None:
        self.conn.execute(
            "DO $$\nimport json, pixelgres.server.ai.ratelimit as r\n" + code + "\n$$ LANGUAGE plpython3u")

    def events(self) -> list[dict]:
        self._run("plpy.execute(plpy.prepare(\"SELECT set_config('pxt_test.clock', $1, false)\", ['text']),"
                  " [json.dumps(r.CLOCK.events)])")
        return json.loads(self.conn.execute("SELECT current_setting('pxt_test.clock')").fetchone()[0])

    @staticmethod
    def admitted_during_a_pause(events: list[dict]) -> list[dict]:
        """Admissions that happened before the end of a pause announced earlier."""
        until, bad = float("-inf"), []
        for e in events:
            if e["what"] == "pause":
                until = max(until, e["until"])
            elif e["what"] == "admit" and e["t"] < until:
                bad.append(e)
        return bad


@pytest.fixture
def virtual_clock(db):
    return BackendClock(db)
