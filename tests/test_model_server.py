"""The shared model server (pixelgres.server.ai.model_server): one copy of each local model for
every connection of the cluster, requests batched across connections.

The server runs as the cluster's OS user with the server's Python, as ``pixelgres
model-server`` starts it. Batching across connections is made certain, not hoped for: the
test holds the model thread, lets the requests queue (waiting on the server's event), then
releases it and reads the server's counters.
"""
import json
import threading
import uuid
from multiprocessing.connection import Client

import numpy as np
import psycopg
import pytest

from conftest import set_for_database
from pixelgres.testing.models import tiny_clip


@pytest.fixture(scope="module")
def model_server(server):
    if server.cluster is None:
        pytest.skip("the model server is started beside the test suite's own cluster (PIXELGRES_TEST_DSN is set)")
    with server.admin() as c:
        python_dir = c.execute("SELECT current_setting('pixelgres.python_dir')").fetchone()[0]
    sock = server.cluster.sockdir / f"models-{uuid.uuid4().hex[:8]}.sock"
    proc = server.cluster.start_model_server(python_dir, threads=1, socket_path=sock)
    yield str(sock)
    server.cluster.stop_model_server(proc)


def control(sock: str, *msg):
    key = bytes.fromhex(open(sock + ".key").read().strip())
    with Client(sock, family="AF_UNIX", authkey=key) as c:
        c.send(msg)
        return c.recv()


@pytest.fixture(scope="module")
def models(server):
    root = server.files / "ms-models"
    if not (root / "tiny-clip").exists():
        root.mkdir(exist_ok=True)
        root.chmod(0o755)
        tiny_clip(root / "tiny-clip", seed=5)
    return root


@pytest.fixture
def shared_db(db, dbname, model_server, models):
    set_for_database(db, dbname, {"pixelgres.model_server": model_server, "pixelgres.model_dir": str(models)})
    return db


def vec(text: str) -> np.ndarray:
    return np.array(json.loads(text), dtype=np.float32)


HAS_TORCH = """CREATE FUNCTION pg_temp.has_torch() RETURNS boolean LANGUAGE plpython3u
               AS 'import sys; return "torch" in sys.modules'"""


def test_the_same_vectors_as_in_the_backend_and_no_torch_in_it(shared_db, dsn, db, models, files):
    from PIL import Image

    p = files / "ms.png"
    Image.new("RGB", (40, 30), (200, 30, 30)).save(p)
    p.chmod(0o644)
    q = """SELECT pxt.clip_text('a red square', 'tiny-clip')::text, pxt.clip_image(%s::pxt.image, 'tiny-clip')::text,
                  pxt.sentence_transformer('a red square')::text"""
    shared = [vec(v) for v in shared_db.execute(q, (str(p),)).fetchone()]
    shared_db.execute(HAS_TORCH)
    assert shared_db.execute("SELECT pg_temp.has_torch()").fetchone()[0] is False  # weights live in the server
    with psycopg.connect(dsn, autocommit=True) as local:
        local.execute("SET pixelgres.model_server = ''")
        inproc = [vec(v) for v in local.execute(q, (str(p),)).fetchone()]
    for a, b in zip(shared, inproc):
        assert a.shape == b.shape and np.allclose(a, b, atol=1e-5)


def test_many_connections_share_one_copy_and_are_batched_together(shared_db, dsn, model_server):
    before = control(model_server, "stats")
    n = 4
    control(model_server, "hold")
    results, errors = {}, []

    def client(i):
        try:
            with psycopg.connect(dsn, autocommit=True) as c:
                results[i] = c.execute("SELECT pxt.clip_text(%s, 'tiny-clip')::text", (f"text {i}",)).fetchone()[0]
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    try:
        assert control(model_server, "wait_queued", n, 60)["ok"]
    finally:
        control(model_server, "release")
    for t in threads:
        t.join()
    assert errors == []
    after = control(model_server, "stats")
    assert after["batches"] == before["batches"] + 1  # the four connections' requests: one model call
    assert after["most_clients_in_a_batch"] >= n
    assert len([k for k in after["loaded"] if k[0] == "clip"]) == 1  # one copy of CLIP for every connection
    assert after["loads"] == len(after["loaded"])  # nothing loaded twice
    assert len({results[i] for i in range(n)}) == n


def test_a_cancel_while_the_server_is_busy_ends_the_statement(shared_db, model_server):
    control(model_server, "hold")
    try:
        shared_db.execute("SET statement_timeout = '300ms'")
        with pytest.raises(psycopg.errors.QueryCanceled):
            shared_db.execute("SELECT pxt.clip_text('waiting', 'tiny-clip')")
    finally:
        control(model_server, "release")
    shared_db.execute("RESET statement_timeout")
    assert shared_db.execute("SELECT vector_dims(pxt.clip_text('again', 'tiny-clip'))").fetchone()[0] > 0


def test_a_server_that_is_not_running_is_a_clear_error(db, dbname, models, tmp_path):
    set_for_database(db, dbname, {"pixelgres.model_server": str(tmp_path / "nothing.sock"),
                                  "pixelgres.model_dir": str(models)})
    with pytest.raises(psycopg.Error, match="model server at .*nothing.sock.* is not reachable.*pixelgres model-server"):
        db.execute("SELECT pxt.clip_text('x', 'tiny-clip')")


def test_the_setting_is_superuser_only(db, dsn):
    db.execute("CREATE ROLE ms_user LOGIN")
    try:
        with psycopg.connect(dsn, user="ms_user", autocommit=True) as c:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                c.execute("SET pixelgres.model_server = '/tmp/evil.sock'")
    finally:
        db.execute("DROP ROLE ms_user")
