"""Hosted providers from SQL (Anthropic, Gemini, Ollama, Bedrock, Mistral, OpenAI-compatible
services) against the loopback stand-in that speaks each wire format (provider_servers.py).

The backend's real official clients talk to the stand-in; what they sent is read on the
server's side, so each test checks both the answer a row gets and the request that made it.
"""
import os
import uuid

import pytest
from PIL import Image

from conftest import set_for_database
from pixelgres.testing.openai_server import trigram_embedding
from pixelgres.testing.provider_servers import provider_server, provider_server_session  # noqa: F401

KEY = "test-key-" + uuid.uuid4().hex


@pytest.fixture
def prov(db, provider_server):
    """The test database with every provider pointed at the stand-in (loopback allowed)."""
    base = provider_server.base
    db.execute("SET pixelgres.allowed_url_hosts = '127.0.0.1'")
    for name, url in [("anthropic", base), ("gemini", base), ("mistral", base), ("ollama", base),
                      ("groq", base + "/v1"), ("bedrock", base)]:
        db.execute("SELECT set_config(%s, %s, false)", (f"pixelgres.{name}_base_url", url))
        db.execute("SELECT set_config(%s, %s, false)", (f"pixelgres.{name}_api_key", f"{name}-{KEY}"))
    db.execute("SET pixelgres.bedrock_region = 'us-east-1'")
    db.execute("SELECT set_config('pixelgres.bedrock_aws_access_key_id', 'AKIDTEST', false)")
    db.execute("SELECT set_config('pixelgres.bedrock_aws_secret_access_key', %s, false)", (KEY,))
    return db


def image_table(db, files, colours=(("red", (250, 10, 10)), ("blue", (10, 10, 250)))):
    db.execute("""SELECT pxt.create_table('imgs', '{"image": "image"}')""")
    paths = []
    for name, rgb in colours:
        p = files / f"{name}.png"
        Image.new("RGB", (64, 48), rgb).save(p)
        os.chmod(p, 0o644)
        paths.append(str(p))
    db.execute("INSERT INTO imgs (image) SELECT unnest(%s::text[])", (paths,))
    return dict(zip(paths, [c for c, _ in colours]))


MESSAGES = """jsonb_build_array(
    jsonb_build_object('role', 'system', 'content', 'Be brief.'),
    jsonb_build_object('role', 'user', 'content', jsonb_build_array(
        jsonb_build_object('type', 'text', 'text', 'Describe this image.'),
        jsonb_build_object('type', 'image_url', 'image_url', image))))"""


def captions(db, answer_path: str) -> dict:
    db.execute(f"SELECT pxt.add_computed_column('imgs', 'caption', $$response{answer_path}$$)")
    assert db.execute("SELECT count(*) FROM pxt.errors('imgs')").fetchone()[0] == 0
    return dict(db.execute("SELECT image, caption FROM imgs").fetchall())


def vector(db, sql: str, *args) -> list:
    text = db.execute(sql, args or None).fetchone()[0]
    return [float(x) for x in text.strip("[]").split(",")]


# --- Anthropic ----------------------------------------------------------------------------------
def test_anthropic_messages_with_images(prov, provider_server, files):
    rows = image_table(prov, files)
    prov.execute(f"""SELECT pxt.add_computed_column('imgs', 'response',
                     $$pxt.anthropic_messages({MESSAGES}, 'claude-sonnet-4-5')$$)""")
    got = captions(prov, "->'content'->0->>'text'")
    assert got == {p: f"A 64x48 image, mostly {c}." for p, c in rows.items()}
    rec = provider_server.records("/v1/messages")
    assert len(rec) == 2
    body = rec[0].body
    assert body["max_tokens"] == 1024 and body["system"] == "Be brief."  # system message moved out
    assert [m["role"] for m in body["messages"]] == ["user"]
    image = body["messages"][0]["content"][1]
    assert image["type"] == "image" and image["source"]["media_type"] == "image/png"
    assert rec[0].headers.get("anthropic-version")
    assert f"anthropic-{KEY}" in (rec[0].headers.get("x-api-key", "") + rec[0].headers.get("authorization", ""))
    # the result cache: the same images again send nothing
    prov.execute("INSERT INTO imgs (image) SELECT image FROM imgs")
    assert provider_server.count("/v1/messages") == 2


def test_anthropic_overload_is_retried_and_a_refusal_is_the_rows_error(prov, provider_server, virtual_clock):
    prov.execute("""SELECT pxt.create_table('q', '{"q": "string"}')""")
    prov.execute("""SELECT pxt.add_computed_column('q', 'r', $$pxt.anthropic_messages(
        jsonb_build_array(jsonb_build_object('role', 'user', 'content', q)), 'claude-haiku-4-5',
        max_tokens => 50)$$, on_error => 'ignore')""")
    provider_server.fail(529, times=2, path="/v1/messages")
    prov.execute("INSERT INTO q (q) VALUES ('hello')")
    assert prov.execute("SELECT r->'content'->0->>'text' FROM q").fetchone()[0] == "Echo: hello"
    assert provider_server.count("/v1/messages") == 3
    assert provider_server.bodies("/v1/messages")[-1]["max_tokens"] == 50

    provider_server.fail(400, times=1, path="/v1/messages", message="prompt is too long")
    prov.execute("INSERT INTO q (q) VALUES ('too long')")
    err = prov.execute("SELECT error_type, message FROM pxt.errors('q')").fetchone()
    assert err[0] == "AnthropicError" and err[1].startswith("AnthropicError: HTTP 400: ") and "prompt is too long" in err[1]
    assert KEY not in err[1]


# --- Gemini -------------------------------------------------------------------------------------
def test_gemini_generate_content_from_messages(prov, provider_server, files):
    rows = image_table(prov, files)
    prov.execute(f"""SELECT pxt.add_computed_column('imgs', 'response',
                     $$pxt.gemini_generate_content({MESSAGES}, 'gemini-2.5-flash',
                                                   config => '{{"temperature": 0}}')$$)""")
    got = captions(prov, "->'candidates'->0->'content'->'parts'->0->>'text'")
    assert got == {p: f"A 64x48 image, mostly {c}." for p, c in rows.items()}
    rec = provider_server.records(":generateContent")
    assert len(rec) == 2 and "gemini-2.5-flash" in rec[0].path
    assert rec[0].headers.get("x-goog-api-key") == f"gemini-{KEY}"
    body = rec[0].body
    assert body["systemInstruction"]["parts"][0]["text"] == "Be brief."
    assert body["generationConfig"]["temperature"] == 0
    parts = body["contents"][0]["parts"]
    assert parts[0] == {"text": "Describe this image."} and parts[1]["inlineData"].get("mimeType", parts[1]["inlineData"].get("mime_type")) == "image/png"


def test_gemini_embed_batches_and_plain_string_contents(prov, provider_server):
    prov.execute("""SELECT pxt.create_table('t', '{"s": "string"}')""")
    prov.execute("""SELECT pxt.add_computed_column('t', 'e', $$pxt.gemini_embed(s, dimensions => 16)$$)""")
    texts = [f"text number {i}" for i in range(5)]
    prov.execute("INSERT INTO t (s) SELECT unnest(%s::text[])", (texts,))
    assert provider_server.count(":batchEmbedContents") == 1  # one request for the statement's five texts
    assert vector(prov, "SELECT e::text FROM t WHERE s = %s", texts[3]) == pytest.approx(
        trigram_embedding(texts[3], 16), abs=1e-6)
    r = prov.execute("""SELECT pxt.gemini_generate_content('"just a string"', 'gemini-2.5-flash')
                        ->'candidates'->0->'content'->'parts'->0->>'text'""").fetchone()[0]
    assert r == "Echo: just a string"


# --- Ollama -------------------------------------------------------------------------------------
def test_ollama_chat_and_embed(prov, provider_server, files):
    rows = image_table(prov, files)
    prov.execute(f"""SELECT pxt.add_computed_column('imgs', 'response',
                     $$pxt.ollama_chat({MESSAGES}, 'llava', options => '{{"temperature": 0}}')$$)""")
    got = captions(prov, "->'message'->>'content'")
    assert got == {p: f"A 64x48 image, mostly {c}." for p, c in rows.items()}
    body = provider_server.bodies("/api/chat")[0]
    user = body["messages"][1]
    assert user["content"] == "Describe this image." and len(user["images"]) == 1
    assert body["options"] == {"temperature": 0} and body["stream"] is False
    prov.execute("""SELECT pxt.add_computed_column('imgs', 'emb', $$pxt.ollama_embed(caption, 'nomic-embed-text')$$)""")
    assert provider_server.count("/api/embed") == 1
    assert len(provider_server.bodies("/api/embed")[0]["input"]) == 2
    v = vector(prov, "SELECT emb::text FROM imgs WHERE caption LIKE '%red%'")
    assert v == pytest.approx(trigram_embedding("A 64x48 image, mostly red.", 64), abs=1e-6)


# --- Bedrock ------------------------------------------------------------------------------------
def test_bedrock_converse_and_titan_embeddings(prov, provider_server, files, virtual_clock):
    rows = image_table(prov, files)
    provider_server.fail(429, times=1, path="/converse")  # ThrottlingException, retried
    prov.execute(f"""SELECT pxt.add_computed_column('imgs', 'response',
                     $$pxt.bedrock_converse({MESSAGES}, 'anthropic.claude-3-haiku-20240307-v1:0',
                                            inference_config => '{{"maxTokens": 64}}')$$)""")
    got = captions(prov, "->'output'->'message'->'content'->0->>'text'")
    assert got == {p: f"A 64x48 image, mostly {c}." for p, c in rows.items()}
    rec = provider_server.records("/converse")
    assert len(rec) == 3
    assert rec[-1].headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDTEST/")
    body = rec[-1].body
    assert body["system"] == [{"text": "Be brief."}] and body["inferenceConfig"] == {"maxTokens": 64}
    assert body["messages"][0]["content"][1]["image"]["format"] == "png"
    prov.execute("""SELECT pxt.add_computed_column('imgs', 'emb', $$pxt.bedrock_embed(caption, dimensions => 8)$$)""")
    assert provider_server.count("/invoke") == 2  # Titan: one text per request
    v = vector(prov, "SELECT emb::text FROM imgs WHERE caption LIKE '%blue%'")
    assert v == pytest.approx(trigram_embedding("A 64x48 image, mostly blue.", 8), abs=1e-6)


def test_bedrock_needs_a_region_and_never_leaks_the_secret(prov, provider_server):
    prov.execute("RESET pixelgres.bedrock_region")
    with pytest.raises(Exception, match="no AWS region"):
        prov.execute("""SELECT pxt.bedrock_converse('[{"role": "user", "content": "hi"}]', 'm')""")
    prov.execute("SET pixelgres.bedrock_region = 'us-east-1'")
    provider_server.fail(400, times=1, path="/converse", echo_auth=True, message="bad")
    with pytest.raises(Exception) as e:
        prov.execute("""SELECT pxt.bedrock_converse('[{"role": "user", "content": "hi"}]', 'm')""")
    assert "BedrockError" in str(e.value) and KEY not in str(e.value)


# --- Mistral and the OpenAI-compatible services -------------------------------------------------
def test_mistral_chat_and_embeddings(prov, provider_server, files):
    rows = image_table(prov, files)
    prov.execute(f"""SELECT pxt.add_computed_column('imgs', 'response',
                     $$pxt.mistral_chat_completions({MESSAGES}, 'pixtral-12b', max_tokens => 30)$$)""")
    got = captions(prov, "->'choices'->0->'message'->>'content'")
    assert got == {p: f"A 64x48 image, mostly {c}." for p, c in rows.items()}
    rec = provider_server.records("/v1/chat/completions")
    assert rec[0].auth == f"Bearer mistral-{KEY}" and rec[0].body["max_tokens"] == 30
    prov.execute("""SELECT pxt.add_computed_column('imgs', 'emb', $$pxt.mistral_embeddings(caption)$$)""")
    assert provider_server.count("/v1/embeddings") == 1
    assert provider_server.bodies("/v1/embeddings")[0]["model"] == "mistral-embed"


def test_openai_compatible_providers_and_base_url(prov, provider_server):
    def ask(args: str):
        return prov.execute("""SELECT pxt.chat_completions('[{"role": "user", "content": "hi"}]', 'llama-3.3-70b', """
                            + args + ")->'choices'->0->'message'->>'content'").fetchone()[0]

    assert ask("provider => 'groq'") == "Echo: hi"
    assert provider_server.records("/v1/chat/completions")[-1].auth == f"Bearer groq-{KEY}"
    # a base_url in the call (the table owner's choice) gets no key, not the session's
    ask(f"provider => 'groq', base_url => '{provider_server.base}/v1/', use_cache => false")  # the configured one
    assert provider_server.records("/v1/chat/completions")[-1].auth == f"Bearer groq-{KEY}"
    prov.execute("SET pixelgres.openai_base_url = 'https://api.openai.com/v1'")
    ask(f"base_url => '{provider_server.base}/v1', use_cache => false")  # the same URL: else a cache hit
    assert provider_server.count("/v1/chat/completions") == 3
    assert provider_server.records("/v1/chat/completions")[-1].auth == "Bearer EMPTY"
    v = vector(prov, "SELECT pxt.embeddings('hello', 'e5', provider => 'groq', dimensions => 8)::text")
    assert v == pytest.approx(trigram_embedding("hello", 8), abs=1e-6)
    with pytest.raises(Exception, match="unknown OpenAI-compatible provider 'nope'"):
        ask("provider => 'nope'")


def test_a_private_base_url_is_refused_without_allow_host(prov, provider_server):
    prov.execute("RESET pixelgres.allowed_url_hosts")
    with pytest.raises(Exception, match="AnthropicError: pixelgres.anthropic_base_url: .*127.0.0.1"):
        prov.execute("""SELECT pxt.anthropic_messages('[{"role": "user", "content": "hi"}]', 'm')""")
    assert provider_server.count() == 0


# --- Python -------------------------------------------------------------------------------------
def test_python_wrappers(db, dbname, dsn, provider_server, monkeypatch):
    """pixelgres.functions.<provider> build the SQL calls; the client's keys reach the session."""
    import pixelgres as pxt
    from pixelgres.client import session
    from pixelgres.functions import anthropic, gemini, groq, ollama

    base = provider_server.base
    set_for_database(db, dbname, {"pixelgres.allowed_url_hosts": "127.0.0.1", "pixelgres.anthropic_base_url": base,
                                  "pixelgres.gemini_base_url": base, "pixelgres.ollama_base_url": base,
                                  "pixelgres.groq_base_url": base + "/v1"})
    for var in ("ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GROQ_API_KEY"):
        monkeypatch.setenv(var, f"{var}-{KEY}")
    pxt.init(dsn)
    try:
        t = pxt.create_table("py_prov", {"q": pxt.String})
        msgs = [{"role": "user", "content": t.q}]
        t.add_computed_column(a=anthropic.messages(msgs, model="claude", model_kwargs={"temperature": 0.5}))
        t.add_computed_column(g=gemini.generate_content(msgs, model="gemini-2.5-flash", config={"temperature": 0}))
        t.add_computed_column(o=ollama.chat(msgs, model="llama3"))
        t.add_computed_column(c=groq.chat_completions(msgs, model="llama-3.3-70b"))
        t.add_computed_column(e=gemini.embed(t.q, dimensions=8))
        t.insert([{"q": "ping"}])
        row = t.select(t.a, t.g, t.o, t.c).collect()[0]
        assert row["a"]["content"][0]["text"] == "Echo: ping"
        assert row["g"]["candidates"][0]["content"]["parts"][0]["text"] == "Echo: ping"
        assert row["o"]["message"]["content"] == "Echo: ping"
        assert row["c"]["choices"][0]["message"]["content"] == "Echo: ping"
        assert provider_server.bodies("/v1/messages")[-1]["temperature"] == 0.5
        assert provider_server.records(":generateContent")[-1].headers["x-goog-api-key"] == f"GEMINI_API_KEY-{KEY}"
        assert provider_server.records("/v1/chat/completions")[-1].auth == f"Bearer GROQ_API_KEY-{KEY}"
    finally:
        if session._current is not None:
            session._current.close()
            session._current = None
