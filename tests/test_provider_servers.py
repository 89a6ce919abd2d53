"""The providers' official SDKs against pixelgres.testing.provider_servers, no database.

Each provider: an image message answered with its description, an embedding of the requested
size, a request of the wrong shape refused in the provider's words, and one counted fault
raised as the SDK's own error type.
"""
from __future__ import annotations

import asyncio
import importlib
import base64
import io
import json

import httpx
import pytest
from PIL import Image

from pixelgres.testing.provider_servers import provider_server, provider_server_session  # noqa: F401
from pixelgres.testing.openai_server import trigram_embedding

RED = "A 8x6 image, mostly red."


@pytest.fixture
def s(provider_server):
    return provider_server


@pytest.fixture(scope="module")
def jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 6), (240, 20, 20)).save(buf, "JPEG")
    return buf.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# -- Anthropic ---------------------------------------------------------------------------------
@pytest.fixture
def claude(s):
    anthropic = importlib.import_module("anthropic")
    with anthropic.Anthropic(base_url=s.base, api_key="k", max_retries=0) as c:
        yield c


def test_anthropic_describes_an_image(s, claude, jpeg):
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": b64(jpeg)}}
    msg = claude.messages.create(model="claude-x", max_tokens=50, system="Be brief.",
                                 messages=[{"role": "user", "content": [image, {"type": "text", "text": "What?"}]}])
    assert (msg.content[0].text, msg.stop_reason, msg.role) == (RED, "end_turn", "assistant")
    assert msg.usage.input_tokens > 0 and msg.id.startswith("msg_")
    rec = s.records("/v1/messages")[0]
    assert rec.headers["anthropic-version"] and rec.auth == "Bearer k"  # 2.x sends the key as a bearer token
    assert rec.body["system"] == "Be brief." and s.images == [(8, 6)]


def test_anthropic_refuses_a_request_without_max_tokens(s):
    r = httpx.post(s.base + "/v1/messages", headers={"x-api-key": "k", "anthropic-version": "2023-06-01"},
                   json={"model": "claude-x", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 400
    assert r.json() == {"type": "error", "error": {"type": "invalid_request_error",
                                                   "message": "max_tokens: Field required"}}


def test_anthropic_checks_the_media_type_against_the_bytes(s, claude, jpeg):
    anthropic = importlib.import_module("anthropic")
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": b64(jpeg)}}
    with pytest.raises(anthropic.BadRequestError, match="declared image/png but the bytes are image/jpeg"):
        claude.messages.create(model="claude-x", max_tokens=5, messages=[{"role": "user", "content": [image]}])


def test_anthropic_rate_limit_then_success(s, claude):
    anthropic = importlib.import_module("anthropic")
    s.fail(429, times=1, path="/v1/messages", message="slow down")
    with pytest.raises(anthropic.RateLimitError) as e:
        claude.messages.create(model="claude-x", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
    assert e.value.status_code == 429 and e.value.body["error"] == {"type": "rate_limit_error", "message": "slow down"}
    msg = claude.messages.create(model="claude-x", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
    assert msg.content[0].text == "Echo: hi"


# -- Gemini ------------------------------------------------------------------------------------
@pytest.fixture
def gemini(s):
    genai = importlib.import_module("google.genai")
    with genai.Client(api_key="k", http_options=genai.types.HttpOptions(base_url=s.base)) as c:
        yield c


def test_gemini_describes_an_image(s, gemini, jpeg):
    from google.genai import types

    r = gemini.models.generate_content(
        model="gemini-x", contents=[types.Part.from_bytes(data=jpeg, mime_type="image/jpeg"), "What?"],
        config=types.GenerateContentConfig(system_instruction="Be brief.", max_output_tokens=50))
    assert r.text == RED and r.usage_metadata.total_token_count > 0
    rec = s.records(":generateContent")[0]
    assert rec.headers["x-goog-api-key"] == "k"
    assert rec.body["generationConfig"] == {"maxOutputTokens": 50}
    blob = {"data": base64.urlsafe_b64encode(jpeg).decode(), "mime_type": "image/jpeg"}  # URL-safe, snake_case
    assert rec.body["contents"][0]["parts"][0] == {"inlineData": blob}


def test_gemini_embeds_with_the_requested_dimensions(s, gemini):
    from google.genai import types

    r = gemini.models.embed_content(model="gemini-embedding-001", contents=["red apple", "blue sky"],
                                    config=types.EmbedContentConfig(output_dimensionality=8))
    want = [pytest.approx(trigram_embedding(t, 8)) for t in ("red apple", "blue sky")]
    assert [e.values for e in r.embeddings] == want
    assert s.count("/v1/models/gemini-embedding-001:batchEmbedContents") == 1
    assert s.bodies()[0]["requests"][0]["outputDimensionality"] == 8


def test_gemini_refuses_a_wrong_mime_type(s, gemini, jpeg):
    from google.genai import errors, types

    with pytest.raises(errors.ClientError) as e:
        gemini.models.generate_content(model="g", contents=types.Part.from_bytes(data=jpeg, mime_type="image/webp"))
    assert (e.value.code, e.value.status) == (400, "INVALID_ARGUMENT") and "image/jpeg" in e.value.message


def test_gemini_resource_exhausted_then_success(s, gemini):
    from google.genai import errors

    s.fail(429, times=1, path=":generateContent")
    with pytest.raises(errors.ClientError) as e:
        gemini.models.generate_content(model="gemini-x", contents="hi")
    assert (e.value.code, e.value.status) == (429, "RESOURCE_EXHAUSTED")
    assert gemini.models.generate_content(model="gemini-x", contents="hi").text == "Echo: hi"


# -- Ollama ------------------------------------------------------------------------------------
@pytest.fixture
def llama(s):
    ollama = importlib.import_module("ollama")
    with ollama.Client(host=s.base) as c:
        yield c


def test_ollama_describes_an_image(s, llama, jpeg):
    r = llama.chat(model="llava", messages=[{"role": "user", "content": "What?", "images": [jpeg]}])
    assert (r.message.content, r.done_reason) == (RED, "stop")
    assert s.bodies("/api/chat")[0]["messages"][0]["images"] == [b64(jpeg)]


def test_ollama_embeds_with_the_requested_dimensions(s, llama):
    r = llama.embed(model="nomic-embed-text", input=["red apple", "blue sky"], dimensions=8)
    assert r.embeddings == [pytest.approx(trigram_embedding(t, 8)) for t in ("red apple", "blue sky")]


def test_ollama_refuses_to_stream(s):
    r = httpx.post(s.base + "/api/chat", json={"model": "llava", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 400 and "stream" in r.json()["error"]


def test_ollama_rate_limit_then_success(s, llama):
    import ollama

    s.fail(429, times=1, path="/api/embed", message="busy")
    with pytest.raises(ollama.ResponseError) as e:
        llama.embed(model="nomic-embed-text", input="hi")
    assert (e.value.status_code, e.value.error) == (429, "busy")
    assert len(llama.embed(model="nomic-embed-text", input="hi").embeddings[0]) == 64


# -- Bedrock -----------------------------------------------------------------------------------
@pytest.fixture
def bedrock(s):
    boto3 = importlib.import_module("boto3")
    from botocore.config import Config

    # max_attempts counts retries (1 = two tries): total_max_attempts=1 lets a fault through
    c = boto3.client("bedrock-runtime", endpoint_url=s.base, region_name="us-east-1", aws_access_key_id="AK",
                     aws_secret_access_key="SK", config=Config(retries={"total_max_attempts": 1}))
    yield c
    c.close()


def test_bedrock_converse_describes_an_image(s, bedrock, jpeg):
    image = {"image": {"format": "jpeg", "source": {"bytes": jpeg}}}
    r = bedrock.converse(modelId="anthropic.claude-x-v1:0", system=[{"text": "Be brief."}],
                         messages=[{"role": "user", "content": [image, {"text": "What?"}]}],
                         inferenceConfig={"maxTokens": 50})
    assert (r["output"]["message"]["content"][0]["text"], r["stopReason"]) == (RED, "end_turn")
    rec = s.records("/model/anthropic.claude-x-v1:0/converse")[0]
    assert rec.path == "/model/anthropic.claude-x-v1%3A0/converse"
    assert rec.body["messages"][0]["content"][0]["image"]["source"]["bytes"] == b64(jpeg)  # blobs travel as base64
    assert "/us-east-1/bedrock/aws4_request" in rec.auth


def test_bedrock_titan_embeds_with_the_requested_dimensions(s, bedrock):
    r = bedrock.invoke_model(modelId="amazon.titan-embed-text-v2:0",
                             body=json.dumps({"inputText": "red apple", "dimensions": 8}))
    out = json.loads(r["body"].read())
    assert out["embedding"] == pytest.approx(trigram_embedding("red apple", 8)) and out["inputTextTokenCount"] > 0


def test_bedrock_refuses_an_unknown_image_format(s, bedrock, jpeg):
    with pytest.raises(bedrock.exceptions.ValidationException, match="image.format"):
        bedrock.converse(modelId="m", messages=[{"role": "user", "content": [
            {"image": {"format": "tiff", "source": {"bytes": jpeg}}}]}])


def test_bedrock_throttling_then_success(s, bedrock):
    s.fail(429, times=1, path="/converse", message="Too many requests")
    msgs = [{"role": "user", "content": [{"text": "hi"}]}]
    with pytest.raises(bedrock.exceptions.ThrottlingException) as e:
        bedrock.converse(modelId="m", messages=msgs)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert e.value.response["Error"]["Message"] == "Too many requests"
    assert bedrock.converse(modelId="m", messages=msgs)["output"]["message"]["content"][0]["text"] == "Echo: hi"


# -- Mistral -----------------------------------------------------------------------------------
@pytest.fixture
def mistral(s):
    """run(f): await f(client) in a fresh event loop with a client that is closed after."""
    client = importlib.import_module("mistralai.client")

    def run(f):
        async def go():
            async with client.Mistral(api_key="k", server_url=s.base) as m:
                return await f(m)
        return asyncio.run(go())
    return run


def test_mistral_describes_an_image(s, mistral, jpeg):
    url = "data:image/jpeg;base64," + b64(jpeg)
    r = mistral(lambda m: m.chat.complete_async(model="pixtral-x", messages=[{"role": "user", "content": [
        {"type": "text", "text": "What?"}, {"type": "image_url", "image_url": url}]}]))
    assert r.choices[0].message.content == RED
    assert s.bodies("/v1/chat/completions")[0]["messages"][0]["content"][1]["image_url"] == url
    assert s.requests[0].auth == "Bearer k"


def test_mistral_embeds_with_the_requested_dimensions(s, mistral):
    r = mistral(lambda m: m.embeddings.create_async(model="mistral-embed", inputs=["red apple"], output_dimension=8))
    assert r.data[0].embedding == pytest.approx(trigram_embedding("red apple", 8))
    assert s.bodies("/v1/embeddings") == [{"model": "mistral-embed", "input": ["red apple"], "output_dimension": 8}]


def test_mistral_rate_limit_then_success(s, mistral):
    from mistralai.client import errors

    async def twice(m):
        with pytest.raises(errors.SDKError) as e:
            await m.embeddings.create_async(model="mistral-embed", inputs=["hi"])
        assert e.value.status_code == 429
        return await m.embeddings.create_async(model="mistral-embed", inputs=["hi"])

    s.fail(429, times=1, path="/v1/embeddings")
    assert len(mistral(twice).data) == 1


# -- OpenAI, and what is not served ------------------------------------------------------------
def test_openai_routes_are_served_too(s):
    openai = importlib.import_module("openai")
    with openai.OpenAI(base_url=s.base + "/v1", api_key="k", max_retries=0) as c:
        r = c.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
        assert r.choices[0].message.content == "Echo: hi"
        assert len(c.embeddings.create(model="e", input="hi", dimensions=8).data[0].embedding) == 8


def test_unknown_paths_are_404_in_the_format_of_their_prefix(s):
    r = httpx.post(s.base + "/api/generate", json={})
    assert (r.status_code, r.json()) == (404, {"error": "no route /api/generate"})
