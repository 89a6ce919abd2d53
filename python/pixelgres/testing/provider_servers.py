"""One loopback stand-in for the hosted AI providers, checked against their official SDKs.

``ProviderServer`` serves, on one port, the wire formats of:

* Anthropic Messages: ``POST /v1/messages`` (``anthropic.Anthropic(base_url=s.base)``);
* Gemini, API-key mode: ``POST /v1[beta]/models/{model}:generateContent``, ``:embedContent``,
  ``:batchEmbedContents`` (``genai.Client(http_options=HttpOptions(base_url=s.base))``);
* Ollama: ``POST /api/chat``, ``POST /api/embed`` (``ollama.Client(host=s.base)``);
* Bedrock runtime: ``POST /model/{modelId}/converse``, ``/model/{modelId}/invoke`` for Titan
  text embeddings (``boto3.client('bedrock-runtime', endpoint_url=s.base)``);
* OpenAI and Mistral: ``POST /v1/chat/completions``, ``POST /v1/embeddings``
  (``OpenAI(base_url=s.base + '/v1')``, ``Mistral(server_url=s.base)``).

It checks the request shape each real API insists on (auth headers, required fields, image
bytes matching their declared type) and answers a wrong one with 400 in the provider's own
error format, saying what is wrong. Answers are the ones of openai_server.py: "A WxH image,
mostly <colour>." per image of the last user turn, else "Echo: <its text>"; embeddings are
``trigram_embedding(text, dimensions or dim)``. Faults, records and waits are http_stub's:
``s.fail(429, times=1, path='/v1/messages')`` is answered as Anthropic would, and
``s.bodies('/v1/messages')`` or ``s.records(':generateContent')[0].headers`` show what an SDK
sent.
"""
from __future__ import annotations

import base64
import copy
import json
import re
import zlib
from urllib.parse import unquote, urlsplit

from .http_stub import StubServer
from .openai_server import chat_completion, decode_image, embeddings, openai_error, trigram_embedding

try:  # the fixtures are for pytest
    import pytest
except ImportError:  # pragma: no cover
    pytest = None

_MIME = {"jpeg": "image/jpeg", "png": "image/png", "gif": "image/gif", "webp": "image/webp"}

_ANTHROPIC_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                    404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
                    500: "api_error", 503: "overloaded_error", 529: "overloaded_error"}
_GOOGLE_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                  409: "ABORTED", 429: "RESOURCE_EXHAUSTED", 499: "CANCELLED", 500: "INTERNAL",
                  503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
_AWS_TYPES = {400: "ValidationException", 403: "AccessDeniedException", 404: "ResourceNotFoundException",
              408: "ModelTimeoutException", 424: "ModelErrorException", 429: "ThrottlingException",
              500: "InternalServerException", 503: "ServiceUnavailableException"}

_GEMINI = r"/v1(?:beta)?/models/(?P<model>[^/:]+)"
_ROUTES = [(re.compile(p), provider, name) for p, provider, name in [
    (r"/v1/messages", "anthropic", "_anthropic_messages"),
    (r"/v1/chat/completions", "openai", "_openai_chat"),
    (r"/v1/embeddings", "openai", "_openai_embeddings"),
    (_GEMINI + ":generateContent", "gemini", "_gemini_generate"),
    (_GEMINI + ":embedContent", "gemini", "_gemini_embed"),
    (_GEMINI + ":batchEmbedContents", "gemini", "_gemini_batch_embed"),
    (r"/api/chat", "ollama", "_ollama_chat"),
    (r"/api/embed", "ollama", "_ollama_embed"),
    (r"/model/(?P<model>[^/]+)/converse", "bedrock", "_bedrock_converse"),
    (r"/model/(?P<model>[^/]+)/invoke", "bedrock", "_bedrock_invoke"),
]]


class Reject(Exception):
    """A request the real API would refuse: answered with ``status`` in the provider's format."""

    def __init__(self, message: str, status: int = 400, kind: str | None = None):
        super().__init__(message)
        self.status, self.kind = status, kind


def provider_of(path: str) -> str:
    """Whose error format an answer on ``path`` takes: the route's, else a guess by prefix."""
    p = urlsplit(path).path
    for rx, provider, _ in _ROUTES:
        if rx.fullmatch(p):
            return provider
    for prefix, provider in (("/api/", "ollama"), ("/model/", "bedrock"), ("/v1beta/", "gemini"),
                             ("/v1/models/", "gemini"), ("/v1/messages", "anthropic")):
        if p.startswith(prefix):
            return provider
    return "openai"


def error_body(provider: str, status: int, message: str, kind: str | None = None) -> tuple[dict, dict]:
    """(payload, headers) of an error as ``provider`` sends it."""
    if provider == "anthropic":
        kind = kind or _ANTHROPIC_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
        return {"type": "error", "error": {"type": kind, "message": message}}, {}
    if provider == "gemini":
        kind = kind or _GOOGLE_STATUS.get(status, "INTERNAL" if status >= 500 else "FAILED_PRECONDITION")
        return {"error": {"code": status, "message": message, "status": kind}}, {}
    if provider == "ollama":
        return {"error": message}, {}
    if provider == "bedrock":
        kind = kind or _AWS_TYPES.get(status, "InternalServerException" if status >= 500 else "ValidationException")
        return {"message": message}, {"x-amzn-ErrorType": kind}
    return openai_error(status, message), {}


def b64decode(data: str) -> bytes:
    """Either base64 alphabet (google-genai sends the URL-safe one), padding optional."""
    s = data.replace("-", "+").replace("_", "/")
    return base64.b64decode(s + "=" * (-len(s) % 4), validate=True)


def _tokens(x) -> int:
    return max(1, len(json.dumps(x)) // 4)


def _crc(x) -> str:
    return format(zlib.crc32(json.dumps(x, sort_keys=True).encode()), "08x")


def _need(d, key: str, typ, where: str):
    """``d[key]`` if it has type ``typ`` (non-empty for str and list), else Reject naming it."""
    v = d.get(key) if isinstance(d, dict) else None
    if v is None:
        raise Reject(f"{where}{key}: Field required")
    if not isinstance(v, typ) or isinstance(v, bool) or (isinstance(v, (str, list)) and not v):
        what = {str: "a non-empty string", list: "a non-empty list", dict: "an object"}[typ]
        raise Reject(f"{where}{key}: expected {what}, got {json.dumps(v)[:80]}")
    return v


def _g(d: dict, camel: str):
    """A Gemini field in either casing (the REST API accepts both; the SDK mixes them)."""
    return d.get(camel, d.get(re.sub(r"[A-Z]", lambda m: "_" + m.group().lower(), camel)))


def _reply(turns: list[tuple[str, list[str], list[str]]]) -> str:
    """The answer to (role, texts, image descriptions) turns: about the last user turn."""
    mine = [t for t in turns if t[0] == "user"] or turns
    _, texts, descs = mine[-1]
    return " ".join(descs) if descs else "Echo: " + " ".join(texts)


class ProviderServer(StubServer):
    thread_name = "provider-test-server"

    def __init__(self, dim: int = 64, host: str = "127.0.0.1", port: int = 0):
        self.dim = dim
        super().__init__(host, port)

    def reset(self) -> None:
        """Forget requests, faults and images; no latency; release hung requests."""
        super().reset()
        with self.lock:
            self.images: list[tuple[int, int]] = []

    # -- dispatch ----------------------------------------------------------------------------
    def route(self, method, path, headers, body):
        p = urlsplit(path).path
        for rx, provider, name in _ROUTES:
            m = rx.fullmatch(p)
            if m:
                break
        else:
            return 404, *error_body(provider_of(path), 404, f"no route {p}")
        try:
            status, payload = getattr(self, name)(headers, body, **{k: unquote(v) for k, v in m.groupdict().items()})
            return status, payload, {}
        except Reject as e:
            return e.status, *error_body(provider, e.status, str(e), e.kind)

    def error_payload(self, path, status, message):
        return error_body(provider_of(path), status, message)

    def _image(self, data, declared: str | None, where: str) -> str:
        """The description of base64 image ``data``; its bytes must be the ``declared`` format."""
        if not isinstance(data, str) or not data:
            raise Reject(f"{where}: base64 image data is required")
        try:
            raw = b64decode(data)
        except ValueError:
            raise Reject(f"{where}: not valid base64") from None
        try:
            desc, size, fmt = decode_image(raw)
        except Exception as e:
            raise Reject(f"{where}: could not decode the image ({e})") from None
        if declared is not None and declared.removeprefix("image/") != fmt:
            raise Reject(f"{where}: declared {declared} but the bytes are {_MIME.get(fmt, fmt or 'unknown')}")
        with self.lock:
            self.images.append(size)
        return desc

    # -- Anthropic ---------------------------------------------------------------------------
    def _anthropic_messages(self, headers, body):
        # anthropic-python 2.x sends the api_key as "Authorization: Bearer"; older ones as x-api-key
        if not headers.get("x-api-key") and not headers.get("authorization", "").startswith("Bearer "):
            raise Reject("x-api-key header is required", 401)
        if not headers.get("anthropic-version"):
            raise Reject("anthropic-version: header is required")
        model = _need(body, "model", str, "")
        if "max_tokens" not in body:
            raise Reject("max_tokens: Field required")
        if type(body["max_tokens"]) is not int or body["max_tokens"] < 1:
            raise Reject("max_tokens: Input should be a positive integer")
        system = body.get("system")
        if system is not None and not isinstance(system, str):
            if not isinstance(system, list) or not all(isinstance(b, dict) and b.get("type") == "text"
                                                       and isinstance(b.get("text"), str) for b in system):
                raise Reject("system: Input should be a string or a list of text blocks")
        turns = []
        for i, msg in enumerate(_need(body, "messages", list, "")):
            where = f"messages.{i}."
            role = _need(msg, "role", str, where)
            if role not in ("user", "assistant"):
                raise Reject(f"{where}role: Input should be 'user' or 'assistant'")
            content = msg.get("content")
            if isinstance(content, str):
                content = [{"type": "text", "text": content}]
            content = _need({"content": content}, "content", list, where)
            texts, descs = [], []
            for j, block in enumerate(content):
                w = f"{where}content.{j}."
                kind = _need(block, "type", str, w)
                if kind == "text":
                    texts.append(_need(block, "text", str, w))
                elif kind == "image":
                    src = _need(block, "source", dict, w)
                    if src.get("type") != "base64":
                        raise Reject(f"{w}source.type: the stub takes base64 images only")
                    mt = _need(src, "media_type", str, f"{w}source.")
                    if mt not in _MIME.values():
                        raise Reject(f"{w}source.media_type: Input should be one of {', '.join(_MIME.values())}")
                    descs.append(self._image(src.get("data"), mt, f"{w}source.data"))
                else:
                    raise Reject(f"{w}type: the stub takes 'text' and 'image' blocks, not {kind!r}")
            turns.append((role, texts, descs))
        answer = _reply(turns)
        return 200, {"id": "msg_" + _crc(body), "type": "message", "role": "assistant", "model": model,
                     "content": [{"type": "text", "text": answer}], "stop_reason": "end_turn",
                     "stop_sequence": None,
                     "usage": {"input_tokens": _tokens(body["messages"]), "output_tokens": _tokens(answer)}}

    # -- OpenAI and Mistral ------------------------------------------------------------------
    @staticmethod
    def _bearer(headers):
        if not headers.get("authorization", "").startswith("Bearer "):
            raise Reject("missing bearer token: send 'Authorization: Bearer <key>'", 401)

    def _openai_chat(self, headers, body):
        self._bearer(headers)
        body = copy.deepcopy(body)  # the record keeps what was sent
        for msg in body.get("messages") or []:
            for part in (msg.get("content") if isinstance(msg, dict) and isinstance(msg.get("content"), list) else []):
                if isinstance(part, dict) and isinstance(part.get("image_url"), str):  # Mistral's short form
                    part["image_url"] = {"url": part["image_url"]}
        return chat_completion(body, self._seen)

    def _openai_embeddings(self, headers, body):
        self._bearer(headers)
        if body.get("output_dimension") and not body.get("dimensions"):  # Mistral's name for it
            body = {**body, "dimensions": body["output_dimension"]}
        status, payload = embeddings(body, self.dim)
        if status == 200:
            payload["id"] = "emb-" + _crc(body)  # Mistral's client requires it; OpenAI's ignores it
        return status, payload

    def _seen(self, size):
        with self.lock:
            self.images.append(size)

    # -- Gemini ------------------------------------------------------------------------------
    @staticmethod
    def _google_key(headers):
        if not headers.get("x-goog-api-key"):
            raise Reject("Method doesn't allow unregistered callers: send the x-goog-api-key header", 403)

    def _gemini_contents(self, contents: list, where: str) -> list:
        turns = []
        for i, c in enumerate(contents):
            w = f"{where}[{i}]."
            if not isinstance(c, dict):
                raise Reject(f"{where}[{i}]: expected a Content object")
            role = c.get("role", "user")
            if role not in ("user", "model"):
                raise Reject(f"{w}role: Please use a valid role: user, model.")
            texts, descs = [], []
            for j, part in enumerate(_need(c, "parts", list, w)):
                pw = f"{w}parts[{j}]"
                blob = _g(part, "inlineData") if isinstance(part, dict) else None
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    texts.append(part["text"])
                elif isinstance(blob, dict):
                    mime = _g(blob, "mimeType")
                    if not isinstance(mime, str) or not mime.startswith("image/"):
                        raise Reject(f"{pw}.inlineData.mimeType: an image/* type is required, got {mime!r}")
                    descs.append(self._image(blob.get("data"), mime, f"{pw}.inlineData.data"))
                else:
                    raise Reject(f"{pw}: the stub takes 'text' and 'inlineData' parts, got {json.dumps(part)[:80]}")
            turns.append((role, texts, descs))
        return turns

    def _gemini_generate(self, headers, body, model):
        self._google_key(headers)
        turns = self._gemini_contents(_need(body, "contents", list, ""), "contents")
        system = _g(body, "systemInstruction")
        if system is not None:
            if not isinstance(system, dict):
                raise Reject("systemInstruction: expected a Content object")
            self._gemini_contents([{"parts": system.get("parts"), "role": "user"}], "systemInstruction")
        config = _g(body, "generationConfig")
        if config is not None and not isinstance(config, dict):
            raise Reject("generationConfig: expected an object")
        answer = _reply(turns)
        prompt, out = _tokens(body["contents"]), _tokens(answer)
        return 200, {"candidates": [{"content": {"role": "model", "parts": [{"text": answer}]},
                                     "finishReason": "STOP", "index": 0}],
                     "usageMetadata": {"promptTokenCount": prompt, "candidatesTokenCount": out,
                                       "totalTokenCount": prompt + out},
                     "modelVersion": model}

    def _gemini_embedding(self, req: dict, where: str) -> dict:
        content = _need(req, "content", dict, where)
        parts = _need(content, "parts", list, f"{where}content.")
        if not all(isinstance(p, dict) and isinstance(p.get("text"), str) for p in parts):
            raise Reject(f"{where}content.parts: only text parts can be embedded")
        dim = _g(req, "outputDimensionality")
        if dim is not None and (type(dim) is not int or dim < 1):
            raise Reject(f"{where}outputDimensionality: expected a positive integer, got {dim!r}")
        return {"values": trigram_embedding(" ".join(p["text"] for p in parts), dim or self.dim)}

    def _gemini_embed(self, headers, body, model):
        self._google_key(headers)
        return 200, {"embedding": self._gemini_embedding(body, "")}

    def _gemini_batch_embed(self, headers, body, model):
        self._google_key(headers)
        out = []
        for i, req in enumerate(_need(body, "requests", list, "")):
            if isinstance(req, dict) and req.get("model") not in (None, f"models/{model}"):
                raise Reject(f"requests[{i}].model: {req.get('model')!r} differs from the URL's models/{model}")
            out.append(self._gemini_embedding(req, f"requests[{i}]."))
        return 200, {"embeddings": out}

    # -- Ollama ------------------------------------------------------------------------------
    @staticmethod
    def _ollama_auth(headers):
        auth = headers.get("authorization")
        if auth is not None and not auth.startswith("Bearer "):
            raise Reject("Authorization: expected 'Bearer <key>'", 401)

    def _ollama_chat(self, headers, body):
        self._ollama_auth(headers)
        if body.get("stream") is not False:  # the real server streams unless told not to
            raise Reject("stream: the stub does not stream, send \"stream\": false")
        model = _need(body, "model", str, "")
        if body.get("options") is not None and not isinstance(body["options"], dict):
            raise Reject("options: expected an object")
        if body.get("format") not in (None, "", "json") and not isinstance(body["format"], dict):
            raise Reject("format: expected \"json\" or a JSON schema")
        turns = []
        for i, msg in enumerate(_need(body, "messages", list, "")):
            where = f"messages[{i}]."
            role = _need(msg, "role", str, where)
            if role not in ("system", "user", "assistant", "tool"):
                raise Reject(f"{where}role: unknown role {role!r}")
            if not isinstance(msg.get("content", ""), str):
                raise Reject(f"{where}content: expected a string")
            images = msg.get("images") or []
            if not isinstance(images, list):
                raise Reject(f"{where}images: expected a list of base64 strings")
            descs = [self._image(b, None, f"{where}images[{j}]") for j, b in enumerate(images)]
            turns.append((role, [msg.get("content", "")], descs))
        answer = _reply(turns)
        return 200, {"model": model, "created_at": "2024-01-01T00:00:00Z",
                     "message": {"role": "assistant", "content": answer}, "done": True, "done_reason": "stop",
                     "total_duration": 1, "prompt_eval_count": _tokens(body["messages"]),
                     "eval_count": _tokens(answer)}

    def _ollama_embed(self, headers, body):
        self._ollama_auth(headers)
        model = _need(body, "model", str, "")
        inputs = body.get("input")
        inputs = [inputs] if isinstance(inputs, str) else inputs
        if not isinstance(inputs, list) or not inputs or not all(isinstance(t, str) and t for t in inputs):
            raise Reject("input: expected a non-empty string or list of non-empty strings")
        dim = body.get("dimensions")
        if dim is not None and (type(dim) is not int or dim < 1):
            raise Reject(f"dimensions: expected a positive integer, got {dim!r}")
        return 200, {"model": model, "embeddings": [trigram_embedding(t, dim or self.dim) for t in inputs],
                     "total_duration": 1, "prompt_eval_count": sum(_tokens(t) for t in inputs)}

    # -- Bedrock -----------------------------------------------------------------------------
    @staticmethod
    def _sigv4(headers):
        auth = headers.get("authorization", "")
        if not auth.startswith("AWS4-HMAC-SHA256 Credential=") or "/bedrock/aws4_request" not in auth:
            raise Reject("Authorization: expected a SigV4 signature for the bedrock service", 403,
                         "IncompleteSignatureException")
        if not headers.get("x-amz-date"):
            raise Reject("X-Amz-Date header is required", 403, "IncompleteSignatureException")

    def _bedrock_converse(self, headers, body, model):
        self._sigv4(headers)
        turns = []
        for i, msg in enumerate(_need(body, "messages", list, "")):
            where = f"messages.{i}."
            role = _need(msg, "role", str, where)
            if role not in ("user", "assistant"):
                raise Reject(f"{where}role: Member must satisfy enum value set: [user, assistant]")
            texts, descs = [], []
            for j, block in enumerate(_need(msg, "content", list, where)):
                w = f"{where}content.{j}."
                if isinstance(block, dict) and isinstance(block.get("text"), str):
                    texts.append(block["text"])
                elif isinstance(block, dict) and isinstance(block.get("image"), dict):
                    fmt = _need(block["image"], "format", str, f"{w}image.")
                    if fmt not in _MIME:
                        raise Reject(f"{w}image.format: Member must satisfy enum value set: [{', '.join(_MIME)}]")
                    src = _need(block["image"], "source", dict, f"{w}image.")
                    descs.append(self._image(src.get("bytes"), fmt, f"{w}image.source.bytes"))
                else:
                    raise Reject(f"{w}: the stub takes text and image blocks, got {json.dumps(block)[:80]}")
            turns.append((role, texts, descs))
        system = body.get("system")
        if system is not None and not (isinstance(system, list) and all(
                isinstance(b, dict) and isinstance(b.get("text"), str) for b in system)):
            raise Reject("system: expected a list of {\"text\": ...} blocks")
        config = body.get("inferenceConfig")
        if config is not None:
            if not isinstance(config, dict):
                raise Reject("inferenceConfig: expected an object")
            if "maxTokens" in config and (type(config["maxTokens"]) is not int or config["maxTokens"] < 1):
                raise Reject("inferenceConfig.maxTokens: Member must be a positive integer")
        answer = _reply(turns)
        prompt, out = _tokens(body["messages"]), _tokens(answer)
        return 200, {"output": {"message": {"role": "assistant", "content": [{"text": answer}]}},
                     "stopReason": "end_turn",
                     "usage": {"inputTokens": prompt, "outputTokens": out, "totalTokens": prompt + out},
                     "metrics": {"latencyMs": 1}}

    def _bedrock_invoke(self, headers, body, model):
        self._sigv4(headers)
        if not model.startswith("amazon.titan-embed"):
            raise Reject(f"The provided model identifier is invalid: the stub invokes amazon.titan-embed* only, "
                         f"not {model}")
        text = _need(body, "inputText", str, "")
        dim = body.get("dimensions")
        if dim is not None and (type(dim) is not int or dim < 1):
            raise Reject(f"dimensions: expected a positive integer, got {dim!r}")
        if not isinstance(body.get("normalize", True), bool):
            raise Reject("normalize: expected a boolean")
        return 200, {"embedding": trigram_embedding(text, dim or self.dim), "inputTextTokenCount": _tokens(text)}


if pytest is not None:
    @pytest.fixture(scope="session")
    def provider_server_session():
        s = ProviderServer().start()
        yield s
        s.stop()

    @pytest.fixture
    def provider_server(provider_server_session):
        """The session's provider stand-in, with its requests and faults cleared."""
        provider_server_session.reset()
        yield provider_server_session
        provider_server_session.reset()
