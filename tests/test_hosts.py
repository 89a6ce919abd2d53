"""`pixelgres allow-host`: one role's sessions may reach a loopback AI endpoint (a local
OpenAI-compatible server); other roles keep the protection."""
import subprocess
import sys
import uuid

import psycopg
import pytest

from openai_server import openai_server, openai_server_session  # noqa: F401


def cli(dsn, *args):
    return subprocess.run([sys.executable, "-m", "pixelgres.cli", "allow-host", "--dsn", dsn, *args],
                          capture_output=True, text=True)


def test_allow_host_for_one_role(db, dsn, openai_server):
    owner, other = ("r_" + uuid.uuid4().hex[:8] for _ in range(2))
    for r in (owner, other):
        db.execute(f"CREATE ROLE {r} LOGIN IN ROLE pxt_user")
    try:
        out = cli(dsn, "127.0.0.1", "--role", owner)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == f"role {owner}: pixelgres.allowed_url_hosts = 127.0.0.1"
        again = cli(dsn, "LocalHost", "--role", owner)
        assert again.stdout.strip().endswith("= 127.0.0.1,localhost")
        assert cli(dsn, "127.0.0.1", "--role", owner).stdout.strip().endswith("= 127.0.0.1,localhost")  # once
        bad = cli(dsn, "x; DROP ROLE postgres", "--role", owner)
        assert bad.returncode != 0 and "not a host name" in bad.stderr
        chat = ("SELECT pxt.openai_chat_completions(jsonb_build_array(jsonb_build_object("
                "'role', 'user', 'content', 'hi')), 'm')")
        for r, allowed in ((owner, True), (other, False)):
            with psycopg.connect(dsn, user=r, autocommit=True) as c:
                c.execute("SELECT set_config('pixelgres.openai_base_url', %s, false)", (openai_server.base_url,))
                c.execute("SELECT set_config('pixelgres.openai_api_key', 'sk-local', false)")
                if allowed:
                    assert c.execute(chat).fetchone()[0] is not None
                else:
                    with pytest.raises(psycopg.Error, match="non-public address"):
                        c.execute(chat)
                    with pytest.raises(psycopg.errors.InsufficientPrivilege):
                        c.execute("SET pixelgres.allowed_url_hosts = '127.0.0.1'")
        assert openai_server.count() == 1
    finally:
        for r in (owner, other):
            db.execute(f"DROP ROLE {r}")
