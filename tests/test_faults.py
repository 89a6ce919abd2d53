"""Remote faults during a 500-row insert with a chat-completions computed column.

The loopback OpenAI-compatible stand-in (pixelgres.testing.openai_server) injects faults by
count -- "the next N requests (after the first M) hang / return 429 / reset the
connection" -- while one INSERT of 500 rows runs; the backend's retry policy runs on a
virtual clock with seeded jitter where a test looks at its waits. Nothing here measures
elapsed time: waits are on the stand-in's events, and timings belong to bench/. Whatever happens, the statement must end in one of two clean states:

* on_error => 'ignore': every row is inserted, and each has either its own answer (the one
  for *its* prompt) or a recorded error: values + errors == 500, nothing left pending;
* on_error => 'abort': the statement fails, naming the column and row, and inserts nothing.

Every test runs under a statement_timeout far above what it needs, so a backend that hangs
fails the test with an error instead of hanging the suite. Cancelling the statement
(psycopg's cancel from another thread, or pg_cancel_backend) ends it although its requests
would wait an hour, and leaves the connection usable.
"""
from __future__ import annotations

import threading
import uuid

import psycopg
import pytest

from openai_server import openai_server, openai_server_session  # noqa: F401

N = 500
KEY = "sk-test-" + uuid.uuid4().hex
CHAT = "/chat/completions"
GUARD = "60s"  # statement_timeout: a hung backend fails the test instead of hanging it
PROMPT = "jsonb_build_array(jsonb_build_object('role', 'user', 'content', q))"


@pytest.fixture
def ai(db, openai_server):
    """The test database pointed at the stand-in (loopback allowed), with a session key."""
    db.execute("SELECT set_config('pixelgres.openai_base_url', %s, false)", (openai_server.base_url,))
    db.execute("SET pixelgres.allowed_url_hosts = '127.0.0.1'")
    db.execute("SELECT set_config('pixelgres.openai_api_key', %s, false)", (KEY,))
    db.execute(f"SET statement_timeout = '{GUARD}'")
    db.execute("""SELECT pxt.create_table('t', '{"q": "string"}')""")
    return db


def add_chat_column(db, on_error: str, **args) -> None:
    extra = "".join(f", {k} => {v}" for k, v in args.items())
    db.execute(f"SELECT pxt.add_computed_column('t', 'r', "
               f"$$pxt.openai_chat_completions({PROMPT}, 'm'{extra})$$, on_error => '{on_error}')")


def insert_500(db) -> None:
    db.execute(f"INSERT INTO t (q) SELECT 'question ' || g FROM generate_series(1, {N}) g")


def outcome(db) -> dict:
    """Counts that say whether every row ended computed (with its own answer) or errored."""
    r = db.execute("""
        SELECT count(*),
               count(r),
               count(*) FILTER (WHERE r IS NOT NULL
                                  AND r->'choices'->0->'message'->>'content' = 'Echo: ' || q),
               count(*) FILTER (WHERE _pxt_errors ? 'r'),
               count(*) FILTER (WHERE r IS NULL AND NOT coalesce(_pxt_errors ? 'r', false)),
               count(*) FILTER (WHERE r IS NOT NULL AND _pxt_errors ? 'r')
        FROM pxt_data."public.t"
        """).fetchone()
    return dict(zip(("rows", "values", "own_answers", "errors", "pending", "both"), r))


def error_messages(db) -> set[str]:
    return {m for (m,) in db.execute("SELECT message FROM pxt.errors('t')")}


def assert_settled(db, values: int | None = None) -> dict:
    """on_error 'ignore': all rows there, each with its own answer or an error."""
    o = outcome(db)
    assert o["rows"] == N
    assert o["values"] + o["errors"] == N, o
    assert o["own_answers"] == o["values"], o  # every answer is the one for its row's prompt
    assert o["pending"] == 0 and o["both"] == 0, o
    if values is not None:
        assert o["values"] == values, o
    assert db.execute("SELECT 1").fetchone() == (1,)
    return o


def assert_aborted(db, server, exc: pytest.ExceptionInfo, cause: str) -> None:
    """on_error 'abort': the error names the column and a row; nothing was inserted; the
    connection (and its batch state) works on once the server is well."""
    msg = str(exc.value)
    assert "computed column r of public.t failed for row (_pxt_rowid=" in msg, msg
    assert cause in msg, msg
    assert db.execute("SELECT count(*) FROM t").fetchone()[0] == 0
    assert db.execute("SELECT 1").fetchone() == (1,)
    server.reset()
    db.execute("INSERT INTO t (q) VALUES ('afterwards')")
    assert db.execute("SELECT r->'choices'->0->'message'->>'content' FROM t").fetchone()[0] == "Echo: afterwards"


def statuses(server) -> dict:
    """HTTP status -> requests (-1: reset by the server; 0: hung until the client gave up)."""
    server.wait_idle()
    out: dict = {}
    for rec in server.requests:
        out[rec.status] = out.get(rec.status, 0) + 1
    return out


# --- latency ----------------------------------------------------------------------------------
def test_latency_below_the_timeout_is_waited_for(ai, openai_server):
    openai_server.latency = 0.1
    add_chat_column(ai, "abort", timeout=5, max_retries=0, concurrency=100)
    insert_500(ai)
    assert_settled(ai, values=N)
    assert openai_server.count(CHAT) == N
    assert 1 < openai_server.max_in_flight <= 100


def test_requests_hanging_mid_insert_time_out_and_are_sent_again(ai, openai_server, virtual_clock):
    """50 requests in the middle of the insert never get an answer: each times out, is sent
    again after its backoff, and every row ends with its own answer."""
    openai_server.hang(times=50, after=100, path=CHAT)
    add_chat_column(ai, "ignore", timeout=3, max_retries=4, concurrency=100)
    insert_500(ai)
    assert_settled(ai, values=N)
    st = statuses(openai_server)
    assert st[0] == 50 and st[200] >= N, st  # the 50 hung until the backend gave up on them
    assert openai_server.count(CHAT) == sum(st.values()) >= N + 50  # and were sent again
    backoffs = [e for e in virtual_clock.events() if e["what"] == "sleep"]
    assert len(backoffs) >= 50 and all(0.25 <= e["seconds"] <= 0.5 for e in backoffs[:50]), backoffs[:5]


# --- 429 storms ---------------------------------------------------------------------------------
def test_429_storm_with_retry_after_then_recovery(ai, openai_server, virtual_clock):
    openai_server.fail(429, times=100, retry_after=0.3, message="Rate limit reached for requests")
    add_chat_column(ai, "abort", max_retries=8, concurrency=100)
    insert_500(ai)
    assert_settled(ai, values=N)
    assert statuses(openai_server) == {429: 100, 200: N}
    # each retry-after paused the model; no request was admitted before that pause ended
    events = virtual_clock.events()
    pauses = [e for e in events if e["what"] == "pause"]
    assert len(pauses) == 100 and {e["seconds"] for e in pauses} == {0.3}
    assert sum(1 for e in events if e["what"] == "admit") == 100 + N
    assert virtual_clock.admitted_during_a_pause(events) == []


@pytest.mark.slow
def test_permanent_429_storm_records_every_row(ai, openai_server):
    openai_server.fail(429, retry_after=0.2, message="Rate limit reached for requests")
    add_chat_column(ai, "ignore", max_retries=1, concurrency=250)
    insert_500(ai)
    assert_settled(ai, values=0)
    assert error_messages(ai) == {"OpenAIError: HTTP 429: Rate limit reached for requests (after 2 attempts)"}
    assert statuses(openai_server) == {429: 2 * N}


# --- 500s ----------------------------------------------------------------------------------------
def test_500s_are_retried(ai, openai_server):
    openai_server.fail(500, times=150, message="the model is on fire")
    add_chat_column(ai, "abort", max_retries=5, concurrency=100)
    insert_500(ai)
    assert_settled(ai, values=N)
    assert statuses(openai_server) == {500: 150, 200: N}


def test_500s_without_retries_fail_exactly_their_rows(ai, openai_server):
    openai_server.fail(500, times=150, message="the model is on fire")
    add_chat_column(ai, "ignore", max_retries=0, concurrency=100)
    insert_500(ai)
    assert_settled(ai, values=N - 150)
    assert error_messages(ai) == {"OpenAIError: HTTP 500: the model is on fire"}
    assert {c for (c,) in ai.execute("SELECT DISTINCT \"column\" FROM pxt.errors('t')")} == {"r"}


def test_500s_abort_cleanly(ai, openai_server):
    openai_server.fail(500, times=150, message="the model is on fire")
    add_chat_column(ai, "abort", max_retries=0, concurrency=100)
    with pytest.raises(psycopg.Error) as e:
        insert_500(ai)
    assert_aborted(ai, openai_server, e, "OpenAIError: HTTP 500: the model is on fire")


# --- connection resets ------------------------------------------------------------------------------
def test_connection_resets_are_retried(ai, openai_server):
    openai_server.reset_connections(times=100)
    add_chat_column(ai, "abort", max_retries=5, concurrency=100)
    insert_500(ai)
    assert_settled(ai, values=N)
    assert statuses(openai_server) == {-1: 100, 200: N}


def test_connection_resets_without_retries(ai, openai_server):
    openai_server.reset_connections(times=100)
    add_chat_column(ai, "ignore", max_retries=0, concurrency=100)
    insert_500(ai)
    assert_settled(ai, values=N - 100)
    msgs = error_messages(ai)
    assert msgs and all(m.startswith("OpenAIError: connection error: ") for m in msgs), msgs


# --- hangs -----------------------------------------------------------------------------------------------
def test_some_requests_hang_then_retry(ai, openai_server, virtual_clock):
    openai_server.hang(times=40)
    add_chat_column(ai, "abort", timeout=3, max_retries=2, concurrency=100)
    insert_500(ai)
    assert_settled(ai, values=N)
    st = statuses(openai_server)
    assert st[0] == 40 and st[200] >= N, st
    assert openai_server.count(CHAT) >= N + 40  # the 40 were sent again


@pytest.mark.slow
@pytest.mark.parametrize("on_error", ["ignore", "abort"])
def test_server_hangs_forever(ai, openai_server, virtual_clock, on_error):
    """Every request hangs: the per-attempt timeout ends each, so the statement ends long
    before the guard (and the server's 60 s hang) with every row errored, or aborted."""
    openai_server.hang()
    add_chat_column(ai, on_error, timeout=0.4, max_retries=1, concurrency=250)
    cause = "OpenAIError: request timed out after 0.4 s (after 2 attempts)"
    if on_error == "abort":
        with pytest.raises(psycopg.Error) as e:
            insert_500(ai)
    else:
        insert_500(ai)
    # every row made its 2 attempts (a request the stand-in had not read yet when it timed
    # out is not in its log)
    assert 0 < openai_server.count(CHAT) <= 2 * N
    if on_error == "abort":
        assert_aborted(ai, openai_server, e, cause)
    else:
        assert_settled(ai, values=0)
        assert error_messages(ai) == {cause}


# --- cancel ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["psycopg", "pg_cancel_backend"])
def test_cancel_ends_a_hung_insert_and_the_connection_stays_usable(ai, openai_server, dsn, how):
    """Requests that would wait an hour: only the cancel can end the statement, and it is
    the cancel that does (SQLSTATE 57014 'user request', not the guard's statement timeout)."""
    openai_server.hang()
    add_chat_column(ai, "ignore", timeout=3600, max_retries=0, concurrency=250)
    pid = ai.info.backend_pid
    if how == "psycopg":
        cancel = getattr(ai, "cancel_safe", ai.cancel)
    else:
        def cancel():
            with psycopg.connect(dsn, autocommit=True) as other:
                assert other.execute("SELECT pg_cancel_backend(%s)", (pid,)).fetchone()[0]
    failures: list = []

    def canceller():
        try:
            openai_server.wait_for(100, CHAT)  # requests are hanging
            cancel()
        except BaseException as e:  # reported by the test thread
            failures.append(e)

    t = threading.Thread(target=canceller, daemon=True)
    t.start()
    with pytest.raises(psycopg.errors.QueryCanceled) as e:  # SQLSTATE 57014, not a routine error
        insert_500(ai)
    t.join(60)
    assert not failures, failures
    assert "canceling statement due to user request" in str(e.value)
    # the same connection: nothing was inserted, and it works, AI calls included
    assert ai.execute("SELECT count(*) FROM t").fetchone()[0] == 0
    assert ai.execute("SELECT 1").fetchone() == (1,)
    openai_server.reset()
    ai.execute("INSERT INTO t (q) VALUES ('after the cancel')")
    assert ai.execute("SELECT r->'choices'->0->'message'->>'content' FROM t").fetchone()[0] == "Echo: after the cancel"
