"""AI functions from SQL against the loopback OpenAI-compatible test server (openai_server.py).

The backend's real ``openai`` client talks to the test server; every assertion about how
many requests were sent, and when, is made on the server's side.
"""
import os
import uuid

import psycopg
import pytest
from PIL import Image

from openai_server import max_overlap, openai_server, openai_server_session, trigram_embedding  # noqa: F401
from pixelgres.server.ai import ratelimit

KEY = "sk-test-" + uuid.uuid4().hex
CHAT = "/chat/completions"
EMB = "/embeddings"


def prompt(text_sql: str) -> str:
    return f"jsonb_build_array(jsonb_build_object('role', 'user', 'content', {text_sql}))"


@pytest.fixture
def ai(db, openai_server):
    """The test database, pointed at the test server (loopback allowed), with a session key."""
    db.execute("SELECT set_config('pixelgres.openai_base_url', %s, false)", (openai_server.base_url,))
    db.execute("SET pixelgres.allowed_url_hosts = '127.0.0.1'")
    db.execute("SELECT set_config('pixelgres.openai_api_key', %s, false)", (KEY,))
    return db


def text_table(db, n: int, name: str = "t", prefix: str = "question") -> None:
    db.execute(f"SELECT pxt.create_table('{name}', '{{\"q\": \"string\"}}')")
    db.execute(f"INSERT INTO {name} (q) SELECT '{prefix} ' || g FROM generate_series(1, %s) g", (n,))


def image_file(files, name: str, colour, size=(640, 480)) -> str:
    p = files / name
    Image.new("RGB", size, colour).save(p)
    os.chmod(p, 0o644)
    return str(p)


# --- the seed pipeline ------------------------------------------------------------------------
def test_caption_pipeline_end_to_end(ai, openai_server, files):
    db = ai
    db.execute("""SELECT pxt.create_table('ml.images', '{"image": "image"}')""")
    db.execute("""SELECT pxt.add_computed_column('ml.images', 'response', $$
      pxt.openai_chat_completions(
        jsonb_build_array(jsonb_build_object('role','user','content', jsonb_build_array(
          jsonb_build_object('type','text','text','Describe this image in one sentence.'),
          jsonb_build_object('type','image_url','image_url', pxt.image_url(image))))),
        model => 'gpt-4o-mini')$$)""")
    db.execute("""SELECT pxt.add_computed_column('ml.images', 'caption',
                  $$response->'choices'->0->'message'->>'content'$$)""")
    db.execute("""SELECT pxt.add_computed_column('ml.images', 'embedding',
                  $$pxt.openai_embeddings(caption, 'text-embedding-3-small')$$)""")
    colours = {"red": (250, 10, 10), "green": (10, 170, 10), "blue": (10, 10, 250), "yellow": (250, 250, 0)}
    paths = [image_file(files, f"{k}.png", v) for k, v in colours.items()]
    db.execute("INSERT INTO ml.images (image) SELECT unnest(%s::text[])", (paths,))

    rows = dict(db.execute("SELECT image, caption FROM ml.images").fetchall())
    assert rows == {p: f"A 640x480 image, mostly {k}." for p, k in zip(paths, colours)}
    assert openai_server.count(CHAT) == 4
    assert openai_server.count(EMB) == 1  # the statement's captions in one multi-input request
    assert len(openai_server.bodies(EMB)[0]["input"]) == 4
    body = openai_server.bodies(CHAT)[0]
    assert body["model"] == "gpt-4o-mini"
    assert body["messages"][0]["content"][1]["image_url"]["url"].startswith("data:image/png;base64,")
    assert {r.auth for r in openai_server.requests} == {f"Bearer {KEY}"}
    assert db.execute("SELECT count(*) FROM pxt.errors('ml.images')").fetchone()[0] == 0

    # the embeddings are the server's, and similar texts are near: nearest to "mostly red" is red
    vec = db.execute("SELECT embedding::text FROM ml.images WHERE caption LIKE '%red%'").fetchone()[0]
    want = trigram_embedding("A 640x480 image, mostly red.", 64)
    assert [float(x) for x in vec.strip("[]").split(",")] == pytest.approx(want, abs=1e-6)
    best = db.execute("""SELECT caption FROM ml.images ORDER BY embedding <=>
                         pxt.openai_embeddings('an image that is mostly red', 'text-embedding-3-small') LIMIT 1""")
    assert best.fetchone()[0] == "A 640x480 image, mostly red."

    # the full response is there as jsonb
    usage = db.execute("SELECT response->'usage'->>'total_tokens' FROM ml.images LIMIT 1").fetchone()[0]
    assert int(usage) > 0


def test_images_are_downscaled_to_image_max_side(ai, openai_server, files):
    db = ai
    big = image_file(files, "big.jpg", (200, 20, 20), size=(3000, 1000))
    db.execute("""SELECT pxt.create_table('pics', '{"image": "image"}')""")
    msg = ("jsonb_build_array(jsonb_build_object('role','user','content', jsonb_build_array("
           "jsonb_build_object('type','image_url','image_url', jsonb_build_object('url', {})))))")
    # a media reference given directly is sent as a data URI, default cap 2048
    db.execute(f"SELECT pxt.add_computed_column('pics', 'a', $$pxt.openai_chat_completions({msg.format('image')}, 'm')$$)")
    # a data URI made by pxt.image_url is re-fitted to image_max_side
    db.execute(f"SELECT pxt.add_computed_column('pics', 'b', $$pxt.openai_chat_completions("
               f"{msg.format('pxt.image_url(image)')}, 'm', image_max_side => 300)$$)")
    db.execute("INSERT INTO pics (image) VALUES (%s)", (big,))
    assert sorted(openai_server.images) == [(300, 100), (2048, 683)]
    caps = db.execute("SELECT a->'choices'->0->'message'->>'content', b->'choices'->0->'message'->>'content' "
                      "FROM pics").fetchone()
    assert caps == ("A 2048x683 image, mostly red.", "A 300x100 image, mostly red.")


def test_direct_call_outside_a_table(ai, openai_server):
    r = ai.execute("""SELECT pxt.openai_chat_completions('[{"role": "user", "content": "hi there"}]', 'm',
                        temperature => 0.2, max_tokens => 5, params => '{"seed": 7}')
                      ->'choices'->0->'message'->>'content'""").fetchone()[0]
    assert r == "Echo: hi there"
    body = openai_server.bodies(CHAT)[0]
    assert (body["temperature"], body["max_tokens"], body["seed"]) == (0.2, 5, 7)
    assert ai.execute("SELECT pxt.openai_chat_completions(NULL, 'm')").fetchone()[0] is None
    dims = ai.execute("SELECT vector_dims(pxt.openai_embeddings('hello', 'e', dimensions => 16))").fetchone()[0]
    assert dims == 16
    for call, msg in [
        ("""pxt.openai_chat_completions('{"role": "user"}', 'm')""", "messages must be a non-empty JSON array"),
        ("""pxt.openai_chat_completions('[{"role": "user", "content": "x"}]', 'm', concurrency => 0)""",
         "concurrency must be between 1 and 1024, not 0"),
        ("""pxt.openai_chat_completions('[{"role": "user", "content": "x"}]', 'm', params => '{"stream": true}')""",
         "params may not set 'stream'"),
        ("pxt.openai_embeddings('x', 'e', timeout => -1)", "timeout must be between"),
    ]:
        with pytest.raises(psycopg.Error) as e:
            ai.execute(f"SELECT {call}")
        assert "ValueError: " + msg in str(e.value)
    assert openai_server.count() == 2


# --- concurrency and rate limits --------------------------------------------------------------------
def test_100_rows_make_concurrent_requests(ai, openai_server):
    db = ai
    text_table(db, 100)
    openai_server.latency = 0.2
    db.execute(f"SELECT pxt.add_computed_column('t', 'r', $$pxt.openai_chat_completions({prompt('q')}, 'm')$$)")
    assert openai_server.count(CHAT) == 100
    assert db.execute("SELECT count(*) FROM t WHERE r->'choices'->0->'message'->>'content' = 'Echo: ' || q"
                      ).fetchone()[0] == 100
    openai_server.wait_idle()  # every record has its end
    peak = max_overlap(openai_server.requests)
    assert peak > 1, "requests were sent one after another"
    assert peak <= 32 and openai_server.max_in_flight <= 32  # the default bound


def test_concurrency_argument_bounds_requests_in_flight(ai, openai_server):
    db = ai
    text_table(db, 24)
    openai_server.latency = 0.1
    db.execute(f"SELECT pxt.add_computed_column('t', 'r', "
               f"$$pxt.openai_chat_completions({prompt('q')}, 'm', concurrency => 4)$$)")
    assert openai_server.count(CHAT) == 24
    assert 1 < openai_server.max_in_flight <= 4


def admits(events: list[dict]) -> list[float]:
    return [e["t"] for e in events if e["what"] == "admit"]


def test_rate_limit_table_paces_requests(ai, openai_server, virtual_clock):
    db = ai
    db.execute("INSERT INTO pxt.ai_rate_limits VALUES ('slow-model', 120, NULL)")  # 2 per second
    text_table(db, 6)
    db.execute(f"SELECT pxt.add_computed_column('t', 'r', $$pxt.openai_chat_completions({prompt('q')}, 'slow-model')$$)")
    assert openai_server.count(CHAT) == 6
    # a burst of at most one second's worth (2), then 2 per second of (virtual) time:
    # in any window of w seconds at most 2 + 2 w requests were let through
    t = admits(virtual_clock.events())
    assert len(t) == 6 and t == sorted(t)
    for i in range(6):
        for j in range(i + 1, 6):
            assert j - i + 1 <= 2 + 2 * (t[j] - t[i]) + 1e-9, t
    assert t[5] - t[0] >= 2.0 - 1e-9, t  # 4 requests past the burst need 2 s


def test_ratelimit_headers_pause_the_model(ai, openai_server, virtual_clock):
    db = ai
    openai_server.extra_headers = {"x-ratelimit-limit-requests": "10000", "x-ratelimit-remaining-requests": "0",
                                   "x-ratelimit-reset-requests": "1.5s"}
    db.execute(f"SELECT pxt.openai_chat_completions({prompt(repr('one'))}, 'hdr-model')")
    openai_server.extra_headers = {}
    db.execute(f"SELECT pxt.openai_chat_completions({prompt(repr('two'))}, 'hdr-model')")
    assert openai_server.count(CHAT) == 2
    events = [e for e in virtual_clock.events() if e["what"] in ("admit", "pause")]
    first, pause, second = events  # the announced reset paused the model before the 2nd request
    assert (first["what"], pause["what"], second["what"]) == ("admit", "pause", "admit")
    assert pause["seconds"] == 1.5 and second["t"] >= pause["until"] == first["t"] + 1.5


def test_429_with_retry_after_then_success(ai, openai_server, virtual_clock):
    db = ai
    text_table(db, 3)
    openai_server.fail(429, times=3, retry_after=1, message="Rate limit reached")
    db.execute(f"SELECT pxt.add_computed_column('t', 'r', $$pxt.openai_chat_completions({prompt('q')}, 'm')$$)")
    assert db.execute("SELECT count(r) FROM t").fetchone()[0] == 3
    openai_server.wait_idle()
    reqs = openai_server.requests
    assert [r.status for r in reqs].count(429) == 3 and [r.status for r in reqs].count(200) == 3
    # retry-after honoured: each 429 paused the model for 1 s, and no request was let through
    # before a pause announced earlier had ended
    events = virtual_clock.events()
    assert [e["seconds"] for e in events if e["what"] == "pause"] == [1.0, 1.0, 1.0]
    assert sum(1 for e in events if e["what"] == "admit") == 6
    assert virtual_clock.admitted_during_a_pause(events) == []


def test_connection_resets_are_retried(ai, openai_server):
    db = ai
    text_table(db, 4)
    openai_server.reset_connections(times=2)
    db.execute(f"SELECT pxt.add_computed_column('t', 'r', $$pxt.openai_chat_completions({prompt('q')}, 'm')$$)")
    assert db.execute("SELECT count(r) FROM t").fetchone()[0] == 4
    assert openai_server.count(CHAT) == 6


# --- failures -----------------------------------------------------------------------------------
def test_permanent_500_records_per_row_errors_with_ignore(ai, openai_server):
    db = ai
    text_table(db, 3)
    openai_server.fail(500, message="the model is on fire")
    db.execute(f"SELECT pxt.add_computed_column('t', 'r', "
               f"$$pxt.openai_chat_completions({prompt('q')}, 'm', max_retries => 1)$$, on_error => 'ignore')")
    errs = db.execute('SELECT "column", error_type, message FROM pxt.errors(\'t\')').fetchall()
    assert len(errs) == 3
    for col, typ, msg in errs:
        assert (col, typ) == ("r", "OpenAIError")
        assert msg == "OpenAIError: HTTP 500: the model is on fire (after 2 attempts)"
    assert db.execute("SELECT count(*) FROM t WHERE r IS NULL").fetchone()[0] == 3
    assert openai_server.count(CHAT) == 6  # one retry each
    # the server recovers: recomputing the failed cells fills them
    openai_server.reset()
    db.execute("SELECT pxt.recompute_columns('t', ARRAY['r'], errors_only => true)")
    assert db.execute("SELECT count(r) FROM t").fetchone()[0] == 3
    assert db.execute("SELECT count(*) FROM pxt.errors('t')").fetchone()[0] == 0


def test_permanent_500_aborts_clearly_with_abort(ai, openai_server):
    db = ai
    text_table(db, 0)
    db.execute(f"SELECT pxt.add_computed_column('t', 'r', $$pxt.openai_chat_completions({prompt('q')}, 'm', max_retries => 0)$$)")
    openai_server.fail(500, message="the model is on fire")
    with pytest.raises(psycopg.Error) as e:
        db.execute("INSERT INTO t (q) VALUES ('a'), ('b')")
    msg = str(e.value)
    assert "computed column r of public.t failed for row" in msg
    assert "OpenAIError: HTTP 500: the model is on fire" in msg
    assert db.execute("SELECT count(*) FROM t").fetchone()[0] == 0


def test_client_errors_are_not_retried(ai, openai_server):
    db = ai
    openai_server.fail(400, message="Invalid value for 'model'")
    with pytest.raises(psycopg.Error) as e:
        db.execute(f"SELECT pxt.openai_chat_completions({prompt(repr('x'))}, 'nope')")
    assert "OpenAIError: HTTP 400: Invalid value for 'model'" in str(e.value)
    assert openai_server.count() == 1


def test_hanging_server_hits_the_timeout(ai, openai_server):
    db = ai
    text_table(db, 2)
    openai_server.hang()
    db.execute(f"SELECT pxt.add_computed_column('t', 'r', $$pxt.openai_chat_completions({prompt('q')}, 'm', "
               f"timeout => 0.5, max_retries => 1)$$, on_error => 'ignore')")
    msgs = {m for (m,) in db.execute("SELECT message FROM pxt.errors('t')")}
    assert msgs == {"OpenAIError: request timed out after 0.5 s (after 2 attempts)"}
    assert openai_server.count(CHAT) == 4


def test_statement_timeout_cancels_a_waiting_batch(ai, openai_server):
    db = ai
    text_table(db, 2)
    db.execute(f"SELECT pxt.openai_chat_completions({prompt(repr('warm up'))}, 'm')")  # imports done
    openai_server.hang()
    db.execute("SET statement_timeout = '2s'")  # far below the 120 s request timeout
    with pytest.raises(psycopg.Error) as e:
        db.execute(f"SELECT pxt.add_computed_column('t', 'r', $$pxt.openai_chat_completions({prompt('q')}, 'm')$$)")
    assert "canceling statement due to statement timeout" in str(e.value)
    assert openai_server.count(CHAT) == 3
    db.execute("RESET statement_timeout")
    openai_server.reset()
    # the backend is still usable, and so is its event loop
    assert ai.execute(f"SELECT pxt.openai_chat_completions({prompt(repr('after'))}, 'm')->'choices'->0->'message'->>'content'"
                      ).fetchone()[0] == "Echo: after"


# --- cache --------------------------------------------------------------------------------------
def test_cache_delete_reinsert_and_recompute_send_no_requests(ai, openai_server):
    db = ai
    text_table(db, 5)
    db.execute(f"SELECT pxt.add_computed_column('t', 'r', $$pxt.openai_chat_completions({prompt('q')}, 'm')$$)")
    db.execute("SELECT pxt.add_computed_column('t', 'e', $$pxt.openai_embeddings(q, 'emb')$$)")
    assert (openai_server.count(CHAT), openai_server.count(EMB)) == (5, 1)
    before = db.execute("SELECT q, r::text, e::text FROM t ORDER BY q").fetchall()

    db.execute("DELETE FROM t")
    db.execute("INSERT INTO t (q) SELECT 'question ' || g FROM generate_series(1, 5) g")
    db.execute("SELECT pxt.recompute_columns('t', ARRAY['r', 'e'])")
    assert (openai_server.count(CHAT), openai_server.count(EMB)) == (5, 1)  # nothing new
    assert db.execute("SELECT q, r::text, e::text FROM t ORDER BY q").fetchall() == before
    assert db.execute("SELECT sum(hits) FROM pxt.ai_cache WHERE func = 'chat.completions'").fetchone()[0] == 10

    # a changed parameter is a different entry
    db.execute(f"SELECT pxt.alter_computed_column('t', 'r', $$pxt.openai_chat_completions({prompt('q')}, 'm', temperature => 0)$$)")
    assert openai_server.count(CHAT) == 10
    # use_cache => false bypasses it
    db.execute(f"SELECT pxt.alter_computed_column('t', 'r', "
               f"$$pxt.openai_chat_completions({prompt('q')}, 'm', temperature => 0, use_cache => false)$$)")
    assert openai_server.count(CHAT) == 15
    # vacuum: nothing is older than a day; everything goes with NULL
    assert db.execute("SELECT pxt.vacuum_cache('1 day')").fetchone()[0] == 0
    assert db.execute("SELECT pxt.vacuum_cache(func => 'embeddings')").fetchone()[0] == 5
    assert db.execute("SELECT pxt.vacuum_cache()").fetchone()[0] == 10
    db.execute("SELECT pxt.recompute_columns('t', ARRAY['e'])")
    assert openai_server.count(EMB) == 2


def test_identical_requests_in_one_statement_are_sent_once(ai, openai_server):
    db = ai
    db.execute("""SELECT pxt.create_table('t', '{"q": "string", "secs": "float"}')""")
    # the timeout is not part of the request: rows differing only in it make one request
    db.execute(f"SELECT pxt.add_computed_column('t', 'r', $$pxt.openai_chat_completions({prompt('q')}, 'm', "
               f"timeout => secs)$$)")
    db.execute("SELECT pxt.add_computed_column('t', 'e', $$pxt.openai_embeddings(q, 'emb', timeout => secs)$$)")
    db.execute("INSERT INTO t (q, secs) VALUES ('same', 10), ('same', 20), ('same', 30), ('other', 10)")
    assert openai_server.count(CHAT) == 2
    assert db.execute("SELECT count(DISTINCT r::text), count(DISTINCT e::text), count(e) FROM t").fetchone() == (2, 2, 4)
    assert db.execute("SELECT count(*) FROM pxt.ai_cache").fetchone()[0] == 4


def test_cache_is_per_role(ai, openai_server):
    db = ai
    db.execute(f"SELECT pxt.openai_chat_completions({prompt(repr('shared'))}, 'm')")
    assert db.execute("SELECT count(*) FROM pxt.ai_cache").fetchone()[0] == 1
    role = "r_" + uuid.uuid4().hex[:8]
    db.execute(f"CREATE ROLE {role} IN ROLE pxt_user")
    try:
        db.execute(f"SET ROLE {role}")
        assert db.execute("SELECT count(*) FROM pxt.ai_cache").fetchone()[0] == 0
        # loopback is allowed for it too (allowed_url_hosts was set by the superuser); its own key
        db.execute(f"SELECT pxt.openai_chat_completions({prompt(repr('shared'))}, 'm')")
        assert openai_server.count() == 2  # the superuser's entry is not visible to it
        assert db.execute("SELECT count(*) FROM pxt.ai_cache").fetchone()[0] == 1
        with pytest.raises(psycopg.Error):
            db.execute("INSERT INTO pxt.ai_cache (owner, key, func, model, input_hash, result) "
                       "VALUES ('postgres', 'k', 'f', 'm', 'h', '{}')")
    finally:
        db.execute("RESET ROLE")
        db.execute(f"DELETE FROM pxt.ai_cache WHERE owner = '{role}'")
        db.execute(f"DROP ROLE {role}")


def test_session_base_url_must_pass_the_host_rules(ai, openai_server):
    db = ai
    db.execute("RESET pixelgres.allowed_url_hosts")
    role = "r_" + uuid.uuid4().hex[:8]
    db.execute(f"CREATE ROLE {role} IN ROLE pxt_user")
    try:
        db.execute(f"SET ROLE {role}")
        with pytest.raises(psycopg.Error) as e:
            db.execute(f"SELECT pxt.openai_chat_completions({prompt(repr('x'))}, 'm')")
        assert "non-public address" in str(e.value) and "pixelgres.allowed_url_hosts" in str(e.value)
        assert openai_server.count() == 0
    finally:
        db.execute("RESET ROLE")
        db.execute(f"DROP ROLE {role}")


# --- embeddings ---------------------------------------------------------------------------------
def test_embeddings_are_sent_in_multi_input_requests(ai, openai_server):
    db = ai
    text_table(db, 600, prefix="some text number")
    db.execute("SELECT pxt.add_computed_column('t', 'e', $$pxt.openai_embeddings(q, 'emb', dimensions => 32)$$)")
    sizes = sorted(len(b["input"]) for b in openai_server.bodies(EMB))
    assert sizes == [88, 256, 256]
    q, e = db.execute("SELECT q, e::text FROM t WHERE q = 'some text number 77'").fetchone()
    assert [float(x) for x in e.strip("[]").split(",")] == pytest.approx(trigram_embedding(q, 32), abs=1e-6)
    assert db.execute("SELECT count(*) FROM t WHERE vector_dims(e) = 32").fetchone()[0] == 600


def test_one_bad_input_fails_only_its_row(ai, openai_server):
    db = ai
    db.execute("""SELECT pxt.create_table('t', '{"q": "string"}')""")
    db.execute("SELECT pxt.add_computed_column('t', 'e', $$pxt.openai_embeddings(q, 'emb')$$, on_error => 'ignore')")
    db.execute("INSERT INTO t (q) SELECT CASE WHEN g = 13 THEN 'an INVALID one' WHEN g = 5 THEN '' "
               "ELSE 'fine ' || g END FROM generate_series(1, 20) g")
    errs = dict(db.execute("SELECT t.q, e.message FROM pxt.errors('t') e JOIN pxt_data.\"public.t\" t ON t._pxt_rowid = e.rowid"))
    assert errs == {"an INVALID one": "OpenAIError: HTTP 400: Invalid 'input[0]': refused",
                    "": "ValueError: cannot embed an empty string"}
    assert db.execute("SELECT count(e) FROM t").fetchone()[0] == 18
    assert openai_server.count(EMB) <= 12  # bisected, not one request per input


# --- the key --------------------------------------------------------------------------------------
def test_key_never_appears_in_errors_tables_or_activity(ai, openai_server, server, dsn):
    db = ai
    text_table(db, 2)
    openai_server.fail(401, message="Incorrect API key provided", echo_auth=True)
    db.execute(f"SELECT pxt.add_computed_column('t', 'r', $$pxt.openai_chat_completions({prompt('q')}, 'm')$$, "
               f"on_error => 'ignore')")
    assert openai_server.requests[0].auth == f"Bearer {KEY}"  # it was sent, and echoed back
    msgs = [m for (m,) in db.execute("SELECT message FROM pxt.errors('t')")]
    assert len(msgs) == 2 and all(m.startswith("OpenAIError: HTTP 401: Incorrect API key provided") for m in msgs)
    assert all("[api key]" in m and KEY not in m for m in msgs)
    with pytest.raises(psycopg.Error) as e:
        db.execute(f"SELECT pxt.openai_chat_completions({prompt(repr('x'))}, 'm')")
    assert KEY not in str(e.value) and "[api key]" in str(e.value)
    # no table in the database holds it (the dump of every user and pxt table)
    openai_server.reset()
    db.execute(f"SELECT pxt.openai_chat_completions({prompt(repr('cached'))}, 'm')")
    tables = db.execute("""SELECT format('%I.%I', table_schema, table_name) FROM information_schema.tables
                           WHERE table_schema NOT IN ('pg_catalog', 'information_schema')
                             AND table_type = 'BASE TABLE'""").fetchall()
    assert tables
    for (tname,) in tables:
        dump = db.execute(f"SELECT coalesce(string_agg(x::text, ' '), '') FROM {tname} x").fetchone()[0]
        assert KEY not in dump, tname
    # nor does any statement text another session can see
    with psycopg.connect(dsn, autocommit=True) as other:
        texts = [q or "" for (q,) in other.execute("SELECT query FROM pg_stat_activity")]
    assert texts and not any(KEY in t for t in texts)
    # nor SHOW ALL / pg_settings
    assert not any(KEY in str(r) for r in db.execute("SHOW ALL").fetchall())
    # nor the server log
    if server.cluster is not None and server.cluster.logfile.exists():
        assert KEY not in server.cluster.logfile.read_text(errors="replace")


# --- pure unit tests of the rate-limit helpers ----------------------------------------------------
def test_parse_duration_and_retry_after():
    assert ratelimit.parse_duration("1s") == 1.0
    assert ratelimit.parse_duration("6m0s") == 360.0
    assert ratelimit.parse_duration("20ms") == pytest.approx(0.02)
    assert ratelimit.parse_duration("1h2m3.5s") == pytest.approx(3723.5)
    assert ratelimit.parse_duration("0.25") == 0.25
    assert ratelimit.parse_duration("soon") is None
    assert ratelimit.retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert ratelimit.retry_after({"retry-after": "2"}) == 2.0
    assert ratelimit.retry_after({"retry-after": "100000"}) == ratelimit.MAX_PAUSE
    assert ratelimit.retry_after({}) is None


def test_backoff_grows_with_jitter_and_is_capped():
    ratelimit.use_virtual_clock(3)
    try:
        for attempt in range(8):
            d = min(30.0, 0.5 * 2 ** attempt)
            xs = [ratelimit.backoff(attempt) for _ in range(50)]
            assert all(d / 2 <= x <= d for x in xs)
            assert len(set(xs)) > 1
    finally:
        ratelimit.use_real_clock()


def test_seeded_jitter_repeats():
    ratelimit.use_virtual_clock(11)
    a = [ratelimit.backoff(n) for n in range(6)]
    ratelimit.use_virtual_clock(11)
    b = [ratelimit.backoff(n) for n in range(6)]
    ratelimit.use_real_clock()
    assert a == b


def test_virtual_clock_paces_a_bucket_without_real_time():
    import asyncio

    clock = ratelimit.use_virtual_clock(0)
    try:
        lim = ratelimit.RateLimiter()
        lim.configure(60, None)  # 1 per second, burst of 1

        async def five():
            for _ in range(5):
                await lim.acquire(1)
        asyncio.run(five())
        t = [e["t"] for e in clock.events if e["what"] == "admit"]
        assert t == pytest.approx([0.0, 1.0, 2.0, 3.0, 4.0])
        lim.pause(10)
        assert lim.delay(1) == pytest.approx(10.0)
        asyncio.run(lim.acquire(1))
        assert clock.events[-1] == {"what": "admit", "t": pytest.approx(14.0)}
    finally:
        ratelimit.use_real_clock()


def test_limiter_learns_limits_and_pauses_from_headers():
    lim = ratelimit.RateLimiter()
    lim.observe({"x-ratelimit-limit-requests": "600", "x-ratelimit-remaining-requests": "10"})
    assert lim.requests.per_minute == 600
    assert lim.delay(1) <= 0
    lim.observe({"x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "2s"})
    assert 1.5 < lim.delay(1) <= 2.0
    lim2 = ratelimit.RateLimiter()
    lim2.configure(60, None)  # configured limits win over headers
    lim2.observe({"x-ratelimit-limit-requests": "6000"})
    assert lim2.requests.per_minute == 60
