"""The shared model server (pixelgres.server.ai.model_server): one copy of each local model for
every connection of the cluster, requests batched across connections.

The server runs as the cluster's OS user with the server's Python, as ``pixelgres
model-server`` starts it. Remote API requests go through it as well (the second half): the
same answers, retries on the server's virtual clock, per-row errors, and cancels that reach
the provider's socket, with no provider client imported in the backend. Batching across connections is made certain, not hoped for: the
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
from test_local_tasks import pictures, speech
from pixelgres.testing.models import tiny_captioner, tiny_clip, tiny_detector, tiny_whisper
from pixelgres.testing.openai_server import trigram_embedding
from pixelgres.testing.provider_servers import provider_server, provider_server_session  # noqa: F401


@pytest.fixture(scope="module")
def model_server(server):
    if server.cluster is None:
        pytest.skip("the model server is started beside the test suite's own cluster (PIXELGRES_TEST_DSN is set)")
    with server.admin() as c:
        python_dir = c.execute("SELECT current_setting('pixelgres.python_dir')").fetchone()[0]
    sock = server.cluster.sockdir / f"models-{uuid.uuid4().hex[:8]}.sock"
    proc = server.cluster.start_model_server(python_dir, threads=1, max_models=6, socket_path=sock)
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
        tiny_detector(root / "tiny-detector")
        tiny_captioner(root / "tiny-captioner")
        tiny_whisper(root / "tiny-whisper")
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


def test_detection_captions_and_speech_run_in_the_server_with_the_same_results(shared_db, dsn, model_server,
                                                                              files):
    paths = pictures(files, 3)
    clip = speech(files / "talk.wav", 2.0)
    def run(conn, tag: str):
        conn.execute(f"SELECT pxt.create_table('ms_scenes_{tag}', '{{\"image\": \"image\"}}')")
        conn.execute(f"SELECT pxt.add_computed_column('ms_scenes_{tag}', 'objects', "
                     "'pxt.detect(image, ''tiny-detector'', threshold => 0.0, top_k => 3)')")
        conn.execute(f"SELECT pxt.add_computed_column('ms_scenes_{tag}', 'caption', "
                     "'pxt.caption(image, ''tiny-captioner'', max_tokens => 5)')")
        conn.execute(f"INSERT INTO ms_scenes_{tag} (image) SELECT unnest(%s::text[])", (paths,))
        conn.execute(f"SELECT pxt.create_table('ms_talks_{tag}', '{{\"audio\": \"audio\"}}')")
        conn.execute(f"SELECT pxt.add_computed_column('ms_talks_{tag}', 'transcript', "
                     "'pxt.transcribe(audio, ''tiny-whisper'', max_tokens => 6)')")
        conn.execute(f"INSERT INTO ms_talks_{tag} (audio) VALUES (%s)", (clip,))
        return (conn.execute(f'SELECT objects, caption FROM pxt_data."public.ms_scenes_{tag}" ORDER BY _pxt_rowid').fetchall(),
                conn.execute(f"SELECT transcript FROM ms_talks_{tag}").fetchone()[0])

    before = control(model_server, "stats")
    shared, talk = run(shared_db, "shared")
    after = control(model_server, "stats")
    assert after["batches"] == before["batches"] + 3 and after["inputs"] == before["inputs"] + 7  # a batch per column
    assert after["loads"] == before["loads"] + 3  # each model loaded there, once
    shared_db.execute(HAS_TORCH)
    assert shared_db.execute("SELECT pg_temp.has_torch()").fetchone()[0] is False
    with psycopg.connect(dsn, autocommit=True) as local:  # the same batches with the model in the backend
        local.execute("SET pixelgres.model_server = ''")
        assert run(local, "local") == (shared, talk)
    assert [len(objects) for objects, _ in shared] == [3, 3, 3] and all(isinstance(c, str) for _, c in shared)
    assert talk["segments"][0]["end"] == pytest.approx(2.0, abs=0.01)
    with pytest.raises(psycopg.Error, match="does not load as a detect model"):
        shared_db.execute("SELECT pxt.detect(%s::pxt.image, 'tiny-captioner')", (paths[0],))


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


# --- remote API requests through the server ------------------------------------------------------
HAS_CLIENTS = """CREATE FUNCTION pg_temp.has_clients() RETURNS text[] LANGUAGE plpython3u
                 AS 'import sys; return sorted(m for m in ("openai", "anthropic", "httpx", "httpx2") if m in sys.modules)'"""
CHAT = """SELECT pxt.openai_chat_completions(jsonb_build_array(jsonb_build_object('role', 'user', 'content', %s::text)),
                                          'gpt-4o-mini', use_cache => false)->'choices'->0->'message'->>'content'"""


@pytest.fixture
def remote_db(db, dbname, model_server, provider_server):
    """A database whose sessions send remote requests through the model server, to the stand-in."""
    base = provider_server.base
    set_for_database(db, dbname, {"pixelgres.model_server": model_server, "pixelgres.allowed_url_hosts": "127.0.0.1",
                                  "pixelgres.openai_base_url": base + "/v1", "pixelgres.openai_api_key": "sk-ms-test",
                                  "pixelgres.anthropic_base_url": base, "pixelgres.anthropic_api_key": "ak-ms-test"})
    control(model_server, "clock", "virtual", 3)
    yield db
    control(model_server, "clock", "real")


def test_remote_requests_run_in_the_server_with_the_same_answers(remote_db, dsn, model_server, provider_server):
    before = control(model_server, "stats")
    texts = [f"hello {i}" for i in range(5)]
    remote_db.execute("SELECT pxt.create_table('ms_chat', '{\"t\": \"string\"}')")
    remote_db.execute("INSERT INTO ms_chat (t) SELECT unnest(%s::text[])", (texts,))
    remote_db.execute("""SELECT pxt.add_computed_column('ms_chat', 'answer', $$pxt.openai_chat_completions(
        jsonb_build_array(jsonb_build_object('role', 'user', 'content', t)), 'gpt-4o-mini')->'choices'->0->'message'->>'content'$$)""")
    remote_db.execute("SELECT pxt.add_computed_column('ms_chat', 'emb', $$pxt.openai_embeddings(t, 'text-embedding-3-small', dimensions => 16)$$)")
    rows = remote_db.execute("SELECT t, answer, emb::text FROM ms_chat ORDER BY t").fetchall()
    for t, answer, emb in rows:
        assert answer == f"Echo: {t}"
        assert np.allclose(vec(emb), trigram_embedding(t, 16), atol=1e-6)
    reply = remote_db.execute(
        """SELECT pxt.anthropic_messages(jsonb_build_array(jsonb_build_object('role', 'user', 'content', 'hi there')),
                                         'claude-test', use_cache => false)->'content'->0->>'text'""").fetchone()[0]
    assert "hi there" in reply
    after = control(model_server, "stats")
    assert after["remote_batches"] == before["remote_batches"] + 3  # the column's batch, the embeddings, Anthropic
    assert after["remote_jobs"] >= before["remote_jobs"] + 5 + 1 + 1
    auth = {r.headers.get("authorization") for r in provider_server.records("/v1/chat/completions")}
    assert auth == {"Bearer sk-ms-test"}
    remote_db.execute(HAS_CLIENTS)
    assert remote_db.execute("SELECT pg_temp.has_clients()").fetchone()[0] == []  # nothing imported in the backend
    with psycopg.connect(dsn, autocommit=True) as local:  # the same call in the backend gives the same answer
        local.execute("SET pixelgres.model_server = ''")
        assert local.execute(CHAT, ("hello 1",)).fetchone()[0] == "Echo: hello 1"
        local.execute(HAS_CLIENTS)
        assert "openai" in local.execute("SELECT pg_temp.has_clients()").fetchone()[0]


def test_retries_run_on_the_servers_clock_and_errors_stay_per_row(remote_db, model_server, provider_server):
    provider_server.fail(429, times=3, path="/v1/chat/completions")
    assert remote_db.execute(CHAT, ("after three 429s",)).fetchone()[0] == "Echo: after three 429s"
    assert provider_server.count("/v1/chat/completions") == 4
    sleeps = [e for e in control(model_server, "clock", "events")["events"] if e["what"] == "sleep"]
    assert len(sleeps) >= 3  # the backoffs happened on the server's virtual clock, not in real time
    provider_server.fail(400, times=1, path="/v1/chat/completions", message="bad prompt")
    remote_db.execute("SELECT pxt.create_table('ms_err', '{\"t\": \"string\"}')")
    remote_db.execute("INSERT INTO ms_err (t) VALUES ('one'), ('two')")
    remote_db.execute("""SELECT pxt.add_computed_column('ms_err', 'answer', $$pxt.openai_chat_completions(
        jsonb_build_array(jsonb_build_object('role', 'user', 'content', t)), 'gpt-4o-mini')$$, on_error => 'ignore')""")
    errors = remote_db.execute("SELECT error_type, message FROM pxt.errors('ms_err')").fetchall()
    assert len(errors) == 1 and errors[0][0] == "OpenAIError" and "HTTP 400" in errors[0][1] and "bad prompt" in errors[0][1]
    assert remote_db.execute("SELECT count(*) FROM ms_err WHERE answer IS NOT NULL").fetchone()[0] == 1


def test_a_cancel_stops_the_servers_request_to_the_provider(remote_db, model_server, provider_server):
    provider_server.hang(times=1, path="/v1/chat/completions")
    remote_db.execute("SET statement_timeout = '300ms'")
    try:
        with pytest.raises(psycopg.errors.QueryCanceled):
            remote_db.execute(CHAT, ("never answered",))
    finally:
        remote_db.execute("RESET statement_timeout")
    provider_server.wait_for(1, "/v1/chat/completions")
    provider_server.wait_idle()  # the hung request ended: the server closed its connection on the cancel
    assert remote_db.execute(CHAT, ("answered",)).fetchone()[0] == "Echo: answered"
