"""AWS Bedrock (``pxt.bedrock_converse``, ``pxt.bedrock_embed``) through ``boto3``'s
bedrock-runtime client: the Converse API for every chat model, InvokeModel for Titan text
embeddings.

Credentials: the session's ``pixelgres.bedrock_aws_*`` settings, else the server's AWS
credential chain — which, like the other providers' server keys, is only used with the
endpoint the server is configured with (``pixelgres.bedrock_base_url`` set by a session
needs the session's own credentials). boto3 is synchronous: its calls run on a small pool of
threads with signals blocked, under the same semaphore, limits and retries as every provider.
"""
from __future__ import annotations

import asyncio
import base64
import json
import os
from typing import NamedTuple

import plpy

from ...core import batch, deps
from ...core.threads import quiet_pool
from ...core.errors import MediaError
from ...media.store import host_allowed
from .. import calls, messages, remote

THREADS = 8
IMAGE_TOKENS = 1600


class BedrockError(remote.RemoteError):
    """A failed Bedrock call: HTTP status, the AWS error code and message."""


BedrockError.__module__ = "builtins"
BEDROCK = remote.Provider("bedrock", "", error=BedrockError)
_POOL = []


class ChatArgs(NamedTuple):
    messages: str
    model: str
    system: str | None
    inference_config: str | None
    params: str | None
    image_max_side: int | None
    concurrency: int | None
    timeout: float | None
    max_retries: int | None
    use_cache: bool | None


class BedrockEndpoint(remote.Endpoint):
    region: str
    access: tuple  # (key id, secret, session token) or () for the server's chain


def endpoint() -> BedrockEndpoint:
    r = plpy.execute(remote.plan("bedrock_endpoint", """
        SELECT current_setting('pixelgres.bedrock_base_url', true) AS url,
               (SELECT source FROM pg_catalog.pg_settings WHERE name = 'pixelgres.bedrock_base_url') AS source,
               current_setting('pixelgres.bedrock_region', true) AS region,
               current_setting('pixelgres.bedrock_aws_access_key_id', true) AS key_id,
               current_setting('pixelgres.bedrock_aws_secret_access_key', true) AS secret,
               current_setting('pixelgres.bedrock_aws_session_token', true) AS token,
               coalesce((SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user), false) AS su,
               current_setting('pixelgres.ai_cache', true) AS cache,
               current_setting('pixelgres.ai_concurrency', true) AS concurrency"""))[0]
    region = (r["region"] or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "").strip()
    if not region:
        raise BedrockError("no AWS region: set pixelgres.bedrock_region or the server's AWS_REGION")
    url = (r["url"] or "").strip()
    trusted = not url or r["source"] in remote.TRUSTED_SOURCES
    url = (url or os.environ.get("AWS_ENDPOINT_URL_BEDROCK_RUNTIME") or
           f"https://bedrock-runtime.{region}.amazonaws.com").rstrip("/")
    access = (r["key_id"], r["secret"], r["token"] or None) if r["key_id"] and r["secret"] else ()
    if not access and not trusted and not r["su"]:
        raise BedrockError("pixelgres.bedrock_base_url is set by this session; the server's AWS credentials are "
                           "only used with the endpoint the server is configured with: set "
                           "pixelgres.bedrock_aws_access_key_id and pixelgres.bedrock_aws_secret_access_key as well")
    if not trusted:
        parsed = remote.check_url(BEDROCK, url, "pixelgres.bedrock_base_url")
        try:
            host_allowed(parsed.hostname)
        except MediaError as e:
            raise BedrockError(f"pixelgres.bedrock_base_url: {e}")
    ep = BedrockEndpoint(BEDROCK, url, access[1] if access else "", (r["cache"] or "on").lower() not in
                         ("off", "false", "0", "no"), int(r["concurrency"] or remote.DEFAULT_CONCURRENCY))
    ep.region, ep.access = region, access
    ep.key_id = remote.digest(repr((region, access)))[:16]  # one client per region and credentials
    return ep


def _pool():
    if not _POOL:
        _POOL.append(quiet_pool(THREADS, "pixelgres-bedrock"))
    return _POOL[0]


def _image(uri: str, part: dict) -> dict:
    mime, data = messages.split_data_uri(uri)
    return {"image": {"format": messages.mime_format(mime), "source": {"bytes": data}}}


def _blocks(content) -> list:
    if isinstance(content, str):
        return [{"text": content}]
    return [{"text": p["text"]} if isinstance(p, dict) and p.get("type") == "text" else p for p in content or []]


def _as_bytes(msgs: list) -> list:
    """Image bytes as bytes (boto3 encodes blobs itself)."""
    out = []
    for m in msgs:
        blocks = []
        for b in m["content"]:
            img = b.get("image") if isinstance(b, dict) else None
            src = img.get("source") if isinstance(img, dict) else None
            if isinstance(src, dict) and isinstance(src.get("bytes"), str):
                b = {"image": {**img, "source": {"bytes": base64.b64decode(src["bytes"])}}}
            blocks.append(b)
        out.append({"role": m["role"], "content": blocks})
    return out


class BedrockAPI(calls.API):
    chat_func = "bedrock.converse"
    embed_func = "bedrock.embed"
    embed_chunk = 1  # Titan embeds one text per request

    def endpoint(self, p, base_url):
        return endpoint()

    def classify(self, e):
        exc = deps.need("botocore.exceptions")
        if isinstance(e, exc.ClientError):
            meta = e.response.get("ResponseMetadata", {})
            err = e.response.get("Error", {})
            status = meta.get("HTTPStatusCode") or 500
            if err.get("Code") == "ThrottlingException":
                status = 429
            return remote.http_failure(status, f"{err.get('Code', 'Error')}: {err.get('Message', e)}",
                                       meta.get("HTTPHeaders"))
        if isinstance(e, (exc.ReadTimeoutError, exc.ConnectTimeoutError)):
            return remote.TIMED_OUT
        if isinstance(e, (exc.EndpointConnectionError, exc.ConnectionClosedError)):
            return remote.Failure(f"connection error: {e}", retry=True)
        if isinstance(e, exc.ParamValidationError):
            return remote.Failure(f"invalid request: {' '.join(str(e).split())}")
        return None

    def _client(self, ep: BedrockEndpoint):
        def make(ep):
            boto3 = deps.need("boto3")
            config = deps.need("botocore.config").Config(
                retries={"total_max_attempts": 1},  # one attempt: retries are ours
                read_timeout=remote.DEFAULT_TIMEOUT, connect_timeout=10, max_pool_connections=THREADS)
            creds = dict(zip(("aws_access_key_id", "aws_secret_access_key", "aws_session_token"), ep.access))
            return boto3.session.Session().client("bedrock-runtime", region_name=ep.region, endpoint_url=ep.url,
                                                  config=config, **creds)
        return remote.client(ep, make)

    def _call(self, ep, fn):
        c = self._client(ep)

        async def send(*args):
            return await asyncio.get_running_loop().run_in_executor(_pool(), lambda: fn(c, *args))
        return send

    def chat_sender(self, ep):
        def converse(c, model, msgs, opts, timeout):
            resp = c.converse(modelId=model, messages=_as_bytes(msgs), **opts)
            meta = resp.pop("ResponseMetadata", {})
            return resp, meta.get("HTTPHeaders")
        return self._call(ep, converse)

    def check_chat(self, data):
        out = data.get("output") if isinstance(data, dict) else None
        return None if isinstance(out, dict) and "message" in out else "the response has no output message"

    def chat_tokens(self, data):
        u = data.get("usage")
        return u.get("totalTokens") if isinstance(u, dict) else None

    def embed_sender(self, ep):
        def invoke(c, model, texts, opts, timeout):
            resp = c.invoke_model(modelId=model, body=json.dumps({"inputText": texts[0], **opts}),
                                  contentType="application/json", accept="application/json")
            return json.loads(resp["body"].read()), resp.get("ResponseMetadata", {}).get("HTTPHeaders")
        return self._call(ep, invoke)

    def vectors(self, data, n):
        return calls.check_vectors(BedrockError, [data.get("embedding")] if isinstance(data, dict) else None, n)

    def embed_tokens(self, data):
        return data.get("inputTextTokenCount")


API = BedrockAPI()


def _chat(i: int, a: ChatArgs, ep) -> calls.Chat:
    msgs = messages.parse(a.messages)
    system = [b for m in msgs if m.get("role") == "system" for b in _blocks(m.get("content"))]
    msgs = [{"role": m.get("role"), "content": _blocks(m.get("content"))} for m in msgs if m.get("role") != "system"]
    if not msgs:
        raise ValueError("messages has no user message")
    chars, images = messages.convert(msgs, messages.max_side(a.image_max_side), _image)
    if a.system:
        system.insert(0, {"text": a.system})
    opts = calls.request_fields(a.params, ("modelId", "messages"), system=system or None,
                                inferenceConfig=json.loads(a.inference_config) if a.inference_config else None)
    tokens = (chars + sum(len(b.get("text", "")) for b in system)) / 4 + images * IMAGE_TOKENS + \
        ((opts.get("inferenceConfig") or {}).get("maxTokens") or 0)
    return calls.chat(i, a, ep, msgs, opts, tokens)


def _text(i: int, a: calls.EmbedArgs, ep) -> calls.Text:
    return calls.text(i, a, ep, {"dimensions": a.dimensions} if a.dimensions is not None else {})


@batch.batched("bedrock_converse")
def converse(batch_args: list[tuple]) -> list:
    return calls.run(API, [(BEDROCK, None, ChatArgs(*a)) for a in batch_args], _chat, calls.chats)


@batch.batched("bedrock_embed")
def embed(batch_args: list[tuple]) -> list:
    return calls.run(API, [(BEDROCK, None, calls.EmbedArgs(*a)) for a in batch_args], _text, calls.embeddings)
