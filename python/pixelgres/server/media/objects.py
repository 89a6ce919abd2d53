"""Media in object stores -- S3, GCS, Azure Blob/ADLS, Cloudflare R2 -- through obstore.

obstore (Rust's object_store) speaks every store's REST API and signing natively: one small
wheel, no SDK per vendor, and sync calls that release the GIL, so a bounded thread pool
downloads a batch concurrently. Nothing here imports plpy: the server reads its settings
and passes a ``Settings`` in, which keeps this module testable against a local S3 server.

A URI names one object and must be written in its one normal form (``parse_uri``):
``s3://bucket/key``, ``gs://bucket/key``, ``az://container/key``,
``abfs[s]://container@account.dfs.core.windows.net/key`` and ``r2://bucket/key`` (S3 API at
the account's R2 endpoint). Without explicit credentials each store uses its standard chain,
which obstore reads itself (environment variables, web identity, container and instance
metadata, GOOGLE_APPLICATION_CREDENTIALS, gcloud's default credentials); the AWS shared
credentials file is the one link it lacks, so ``~/.aws/credentials`` is read here.

Every failure is one ``ObjectStoreError`` whose ``kind`` says what to do about it and whose
text names the URI and never a credential (it is built from our own words, an HTTP status
and an S3 error code, not from the library's message, which quotes request URLs). Throttling
(429, 503 SlowDown) and transient network errors are retried with backoff and jitter from
core.clock, which tests make virtual; obstore's own retries are off so there is one policy.
"""
from __future__ import annotations

import configparser
import hashlib
import os
import re
import secrets
import threading
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Iterable, Mapping, NamedTuple

from ..core import clock

BACKENDS = {"s3": "s3", "r2": "s3", "gs": "gcs", "az": "azure", "abfs": "azure", "abfss": "azure"}
KINDS = ("not_found", "denied", "throttled", "too_large", "timeout", "invalid", "other")
CHUNK = 1 << 20                 # streaming chunk: bounds memory per concurrent download
MAX_KEY_BYTES = 1024            # S3's and GCS's limit on a key
_THROTTLE_CODES = {"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequests",
                   "RequestThrottled", "ServerBusy", "rateLimitExceeded", "TooManyRequestsException"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
_STATUS = re.compile(r"status code: (\d{3})|status: (\d{3})")
_CODE = re.compile(r"<Code>([A-Za-z]{1,64})</Code>")
_S3_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_GCS_BUCKET = re.compile(r"[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]")
_AZ_CONTAINER = re.compile(r"[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]")
_AZ_ACCOUNT = re.compile(r"[a-z0-9]{3,24}")
_ABFS_HOST = re.compile(r"([a-z0-9]{3,24})\.dfs\.core\.windows\.net")
_IPV4 = re.compile(r"\d+\.\d+\.\d+\.\d+")


# --- errors -------------------------------------------------------------------------------------
class ObjectStoreError(Exception):
    """One failed object-store operation: ``uri`` (display form), ``kind`` (KINDS), ``message``.

    ``retryable`` marks throttling and transient failures; ``status`` is the HTTP status if any.
    """

    def __init__(self, uri: str, kind: str, message: str, *, status: int | None = None, retryable: bool = False):
        super().__init__(f"{uri}: {message}")
        self.uri, self.kind, self.message, self.status, self.retryable = uri, kind, message, status, retryable

    def __reduce__(self):  # crosses process boundaries (a download pool, multiprocessing tests)
        return (_rebuild_error, (self.uri, self.kind, self.message, self.status, self.retryable))


def _rebuild_error(uri, kind, message, status, retryable):
    return ObjectStoreError(uri, kind, message, status=status, retryable=retryable)


def display(text) -> str:
    """A URI as it may appear in an error: no user info or query (where credentials hide),
    control characters escaped, at most 200 characters."""
    s = str(text)
    scheme, sep, rest = s.partition("://")
    if sep:
        authority, slash, path = rest.partition("/")
        user, at, host = authority.rpartition("@")
        if at and (scheme not in ("abfs", "abfss") or not _AZ_CONTAINER.fullmatch(user)):
            authority = "<redacted>@" + host
        s = scheme + sep + authority + slash + path
    cut = re.search(r"[?#]", s)
    if cut:
        s = s[:cut.end()] + "<redacted>"
    s = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in s)
    return s if len(s) <= 200 else s[:199] + "\u2026"


def _invalid(text, why: str) -> ObjectStoreError:
    return ObjectStoreError(display(text), "invalid", why)


# --- URIs ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ObjectURI:
    """A parsed object URI: ``bucket`` is the S3/GCS bucket or the Azure container."""
    scheme: str
    bucket: str
    key: str
    account: str | None = None  # abfs: the storage account named in the URI

    @property
    def backend(self) -> str:
        return BACKENDS[self.scheme]

    def with_key(self, key: str) -> "ObjectURI":
        return ObjectURI(self.scheme, self.bucket, key, self.account)

    def __str__(self) -> str:
        if self.scheme in ("abfs", "abfss"):
            return f"{self.scheme}://{self.bucket}@{self.account}.dfs.core.windows.net/{self.key}"
        return f"{self.scheme}://{self.bucket}/{self.key}"


def is_object_uri(text) -> bool:
    """Does ``text`` claim an object-store scheme (valid or not)? Local paths and URLs do not."""
    return isinstance(text, str) and text.partition("://")[0].lower() in BACKENDS and "://" in text


def parse_uri(text, prefix: bool = False) -> ObjectURI:
    """Parse and validate an object URI; ``prefix`` allows an empty key or a trailing '/'.

    Anything ambiguous is refused rather than guessed: '..' or '.' segments, empty segments,
    control characters, percent-escapes, a query or fragment, user info or a port,
    backslashes, upper-case schemes, text not in Unicode NFC, surrounding whitespace.
    """
    if not isinstance(text, str):
        raise _invalid(text, "an object URI must be text")
    if text != text.strip():
        raise _invalid(text, "whitespace around an object URI")
    scheme, sep, rest = text.partition("://")
    if not sep or scheme.lower() not in BACKENDS:
        raise _invalid(text, f"not an object URI (schemes: {', '.join(sorted(BACKENDS))})")
    _check_text(text, scheme, rest)
    authority, _, key = rest.partition("/")
    bucket, account = _authority(text, scheme, authority)
    _check_key(text, key, prefix)
    return ObjectURI(scheme, bucket, key, account)


def _check_text(text: str, scheme: str, rest: str) -> None:
    if scheme != scheme.lower():
        raise _invalid(text, f"write the scheme in lower case ({scheme.lower()}://)")
    if _CONTROL.search(text):
        raise _invalid(text, "control characters in an object URI")
    if "?" in rest or "#" in rest:
        raise _invalid(text, "an object URI has no query or fragment ('?', '#')")
    if "\\" in rest:
        raise _invalid(text, "backslashes in an object URI")
    if _PERCENT.search(rest):
        raise _invalid(text, "percent-escapes in an object URI: write the key as it is stored")
    if unicodedata.normalize("NFC", text) != text:
        raise _invalid(text, "an object URI must be in Unicode NFC form")


def _authority(text: str, scheme: str, authority: str) -> tuple[str, str | None]:
    """(bucket or container, abfs account) of the part before the first '/'."""
    if scheme in ("abfs", "abfss"):
        container, at, host = authority.partition("@")
        m = _ABFS_HOST.fullmatch(host)
        if not at or not m:
            raise _invalid(text, f"write {scheme}://container@account.dfs.core.windows.net/key")
        _check_bucket(text, "az", container)
        return container, m.group(1)
    if "@" in authority or ":" in authority:
        raise _invalid(text, "user info or a port in an object URI (credentials never go in a URI)")
    _check_bucket(text, scheme, authority)
    return authority, None


def _check_bucket(text: str, scheme: str, bucket: str) -> None:
    if not bucket:
        raise _invalid(text, "no bucket in the object URI")
    backend = BACKENDS[scheme]
    if backend == "azure":
        ok = bool(_AZ_CONTAINER.fullmatch(bucket))
    elif backend == "gcs":
        ok = bool(_GCS_BUCKET.fullmatch(bucket)) and ".." not in bucket and len(bucket) <= 222
    else:
        ok = bool(_S3_BUCKET.fullmatch(bucket)) and ".." not in bucket and not _IPV4.fullmatch(bucket)
    if not ok:  # the name itself is not echoed: in a hostile URI it may be anything
        raise _invalid(text, "invalid bucket name (S3, GCS: 3-63 of a-z 0-9 . -; Azure containers: a-z 0-9 -)")


def _check_key(text: str, key: str, prefix: bool) -> None:
    if len(key.encode()) > MAX_KEY_BYTES:
        raise _invalid(text, f"object key longer than {MAX_KEY_BYTES} bytes")
    if not key:
        if prefix:
            return
        raise _invalid(text, "no object key in the URI")
    body = key[:-1] if prefix and key.endswith("/") else key
    if not body:
        raise _invalid(text, "an empty path segment ('/') in the object key")
    for seg in body.split("/"):
        if seg == "":
            raise _invalid(text, "an empty path segment ('//' or a trailing '/') in the object key")
        if seg in (".", ".."):
            raise _invalid(text, f"a '{seg}' segment in the object key")


# --- settings and stores ------------------------------------------------------------------------
def _frozen(m) -> tuple:
    return tuple(sorted((str(k), v) for k, v in dict(m or ()).items()))


@dataclass(frozen=True)
class Settings:
    """How to reach a store, passed in by the caller (the server reads them from its GUCs).

    ``credentials`` are obstore config keys (access_key_id/secret_access_key/session_token,
    service_account_key, account_key, sas_key...); empty means the standard chain. ``config``
    holds other obstore config keys; ``account`` is the R2 account id or the Azure storage
    account. Dicts are frozen into sorted tuples, so a Settings is hashable (stores are cached
    per Settings), and credentials stay out of ``repr``.
    """
    endpoint: str | None = None       # override: MinIO, moto, a GCS emulator, Azurite, an R2 endpoint
    allow_http: bool = False
    region: str | None = None
    account: str | None = None
    credentials: tuple = field(default=(), repr=False)
    config: tuple = ()
    retries: int = 4                  # attempts after the first, on throttling and transient errors
    backoff_base: float = 0.2
    backoff_cap: float = 10.0
    connect_timeout: str = "5s"
    read_timeout: str = "30s"         # a stalled connection (resets after each read)
    timeout: str = "30min"            # a whole request, body included: large videos take a while

    def __post_init__(self):
        object.__setattr__(self, "credentials", _frozen(self.credentials))
        object.__setattr__(self, "config", _frozen(self.config))


SettingsArg = Settings | Callable[[ObjectURI], Settings] | None
_STORES: dict = {}
_STORES_LOCK = threading.Lock()


def _settings(settings: SettingsArg, u: ObjectURI) -> Settings:
    if settings is None:
        return Settings()
    return settings if isinstance(settings, Settings) else settings(u)


def clear_stores() -> None:
    """Forget cached stores (new settings or credentials take effect on the next call)."""
    with _STORES_LOCK:
        _STORES.clear()


def store_for(u: ObjectURI, s: Settings):
    """The obstore store of ``u``'s bucket under ``s``, built once per (scheme, bucket, settings)."""
    key = (u.scheme, u.bucket, u.account, s)
    with _STORES_LOCK:
        st = _STORES.get(key)
        if st is None:
            st = _STORES[key] = _obs(u, _build_store, u, s)
    return st


def _client_options(s: Settings) -> dict:
    return {"allow_http": s.allow_http, "connect_timeout": s.connect_timeout,
            "read_timeout": s.read_timeout, "timeout": s.timeout}


def _build_store(u: ObjectURI, s: Settings):
    cfg = dict(s.config)
    cfg.update(s.credentials)
    opts = {"client_options": _client_options(s), "retry_config": {"max_retries": 0}}
    if u.backend == "s3":
        from obstore.store import S3Store

        return S3Store(u.bucket, config=_s3_config(u, s, cfg), **opts)
    if u.backend == "gcs":
        from obstore.store import GCSStore

        if s.endpoint:
            cfg["base_url"] = s.endpoint
        return GCSStore(u.bucket, config=cfg, **opts)
    from obstore.store import AzureStore

    account = u.account or s.account
    if account:
        cfg["account_name"] = account
    if s.endpoint:
        cfg["endpoint"] = s.endpoint
    return AzureStore(u.bucket, config=cfg, **opts)


def _s3_config(u: ObjectURI, s: Settings, cfg: dict) -> dict:
    if u.scheme == "r2":
        if not (s.endpoint or s.account):
            raise _invalid(str(u), "r2:// needs the R2 account id (or an endpoint) in the settings")
        cfg.setdefault("region", "auto")
        cfg["endpoint"] = s.endpoint or f"https://{s.account}.r2.cloudflarestorage.com"
    elif s.endpoint:
        cfg["endpoint"] = s.endpoint
    if s.region:
        cfg["region"] = s.region
    if u.scheme == "s3" and "access_key_id" not in cfg:
        for k, v in shared_aws_profile(os.environ).items():
            cfg.setdefault(k, v)
    return cfg


def shared_aws_profile(environ: Mapping[str, str]) -> dict:
    """Static keys (and region) of the AWS profile in ~/.aws/credentials and ~/.aws/config.

    The AWS chain's file link, which obstore lacks. Skipped when the environment already
    chooses credentials (keys, web identity, a container endpoint), as the AWS SDKs do.
    """
    if any(environ.get(v) for v in ("AWS_ACCESS_KEY_ID", "AWS_WEB_IDENTITY_TOKEN_FILE",
                                    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI")):
        return {}
    home = os.path.expanduser("~")
    profile = environ.get("AWS_PROFILE") or environ.get("AWS_DEFAULT_PROFILE") or "default"
    creds = _ini_section(environ.get("AWS_SHARED_CREDENTIALS_FILE") or os.path.join(home, ".aws", "credentials"),
                         profile)
    out = {k: creds[f"aws_{k}"] for k in ("access_key_id", "secret_access_key", "session_token")
           if creds.get(f"aws_{k}") and creds.get("aws_access_key_id")}
    if not (environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")):
        conf = _ini_section(environ.get("AWS_CONFIG_FILE") or os.path.join(home, ".aws", "config"),
                            profile if profile == "default" else f"profile {profile}")
        if conf.get("region"):
            out["region"] = conf["region"]
    return out


def _ini_section(path: str, section: str) -> dict:
    cp = configparser.RawConfigParser()
    try:
        cp.read(path)
    except (configparser.Error, OSError, UnicodeDecodeError):
        return {}
    return dict(cp[section]) if cp.has_section(section) else {}


# --- classifying failures -----------------------------------------------------------------------
def _library_errors() -> tuple:
    from obstore import exceptions as ox

    return (ox.BaseError, FileNotFoundError, ValueError, TimeoutError, ConnectionError)


def _obs(u, fn, *args, **kwargs):
    """Call into obstore; its exceptions become ObjectStoreError (nothing else is caught).

    Raised outside the handler, so the library's exception -- whose text quotes request URLs,
    where an Azure SAS token would be -- is not even the new one's ``__context__``.
    """
    try:
        return fn(*args, **kwargs)
    except ObjectStoreError:
        raise
    except _library_errors() as e:
        err = classify(str(u), e)
    raise err


def classify(uri: str, exc: BaseException) -> ObjectStoreError:
    """The ObjectStoreError for an obstore exception. Only the exception type, the HTTP status
    and the S3 error code are read from it: its text (request URLs, bodies) is never shown."""
    from obstore import exceptions as ox

    text = str(exc)
    m = _STATUS.search(text)
    status = int(m.group(1) or m.group(2)) if m else None
    c = _CODE.search(text)
    code = c.group(1) if c else None
    detail = " ".join(x for x in (f"HTTP {status}" if status else None, code) if x)
    shown = display(uri)

    def err(kind, message, retryable=False):
        return ObjectStoreError(shown, kind, message + (f" ({detail})" if detail else ""), status=status,
                                retryable=retryable)

    if isinstance(exc, (FileNotFoundError, getattr(ox, "NotFoundError", ()))) or status == 404:
        return err("not_found", "no such object (or bucket)")
    if isinstance(exc, (ox.PermissionDeniedError, ox.UnauthenticatedError)) or status in (401, 403):
        return err("denied", "access denied")
    if status in (429, 503) or code in _THROTTLE_CODES:
        return err("throttled", "the store is throttling requests", retryable=True)
    if isinstance(exc, ox.PreconditionError) or status == 412:
        return err("other", "the object changed while it was being read")
    if isinstance(exc, ox.AlreadyExistsError):
        return err("other", "the object already exists")
    if isinstance(exc, ox.NotSupportedError):
        return err("invalid", "the store does not support this operation")
    if isinstance(exc, (ox.UnknownConfigurationKeyError, ox.InvalidPathError, ValueError)):
        return err("invalid", "invalid store settings or object path")
    if isinstance(exc, TimeoutError) or "kind: Timeout" in text or "timed out" in text.lower():
        return err("timeout", "the store did not answer in time", retryable=True)
    if status == 416:
        return err("invalid", "the byte range is outside the object")
    if status is not None:
        return err("other", "the store refused the request", retryable=status >= 500)
    if isinstance(exc, ConnectionError) or "error sending request" in text or "connection" in text.lower():
        return err("other", "could not reach the store", retryable=True)
    return err("other", "the object store failed")


# --- retries ------------------------------------------------------------------------------------
def _attempt(u: ObjectURI, s: Settings, op: Callable):
    """``op()`` with up to ``s.retries`` retries of retryable failures, backing off on core.clock."""
    for attempt in range(s.retries + 1):
        try:
            return op()
        except ObjectStoreError as e:
            if not e.retryable or attempt >= s.retries:
                raise
            clock.CLOCK.mark("object_retry", uri=str(u), kind=e.kind, attempt=attempt + 1)
        clock.CLOCK.sleep_sync(clock.backoff(attempt, s.backoff_base, s.backoff_cap))
    raise AssertionError("unreachable")


def _resolve(uri, settings: SettingsArg, prefix: bool = False):
    u = parse_uri(uri, prefix=prefix)
    s = _settings(settings, u)
    return u, s, store_for(u, s)


# --- operations ---------------------------------------------------------------------------------
class ObjectInfo(NamedTuple):
    size: int
    etag: str | None
    last_modified: datetime | None = None

    @property
    def version(self) -> str:
        """What identifies this content: the ETag, else size and modification time."""
        return self.etag or f"{self.size}@{self.last_modified.isoformat() if self.last_modified else ''}"


def _info(meta) -> ObjectInfo:
    return ObjectInfo(int(meta["size"]), meta.get("e_tag"), meta.get("last_modified"))


def head(uri, settings: SettingsArg = None) -> ObjectInfo:
    """Size, ETag and modification time of an object, without reading it."""
    import obstore

    u, s, st = _resolve(uri, settings)
    return _info(_attempt(u, s, lambda: _obs(u, obstore.head, st, u.key)))


def exists(uri, settings: SettingsArg = None) -> bool:
    try:
        head(uri, settings)
        return True
    except ObjectStoreError as e:
        if e.kind == "not_found":
            return False
        raise


def read_range(uri, start: int, length: int, settings: SettingsArg = None) -> bytes:
    """``length`` bytes from ``start`` (fewer at the end of the object)."""
    import obstore

    if start < 0 or length < 0:
        raise _invalid(uri, "a byte range needs start >= 0 and length >= 0")
    u, s, st = _resolve(uri, settings)
    if length == 0:
        return b""
    return bytes(_attempt(u, s, lambda: _obs(u, obstore.get_range, st, u.key, start=start, length=length)))


def too_large(uri, size: int, max_bytes: int) -> ObjectStoreError:
    return ObjectStoreError(display(uri), "too_large", f"the object has {size} bytes, more than the limit of "
                            f"{max_bytes}")


def copy_limited(uri, chunks: Iterable, fh, max_bytes: int) -> int:
    """Write ``chunks`` to ``fh``; too_large as soon as more than ``max_bytes`` arrived."""
    n = 0
    for chunk in chunks:
        n += len(chunk)
        if n > max_bytes:
            raise ObjectStoreError(display(uri), "too_large", f"more than the limit of {max_bytes} bytes")
        fh.write(chunk)
    return n


def _chunks(u: ObjectURI, stream):
    """Iterate an obstore byte stream, its failures classified like every other call's."""
    it = iter(stream)
    while True:
        try:
            chunk = _obs(u, next, it)
        except StopIteration:
            return
        yield chunk


def download(uri, dest_path: str, max_bytes: int, settings: SettingsArg = None,
             info: ObjectInfo | None = None) -> ObjectInfo:
    """Stream an object into ``dest_path`` (replaced atomically: a partial file never shows).

    Refused (too_large) when the HEAD -- or ``info``, the caller's own HEAD -- says it is over
    ``max_bytes``, when the GET's headers do, and while streaming as soon as the count does.
    The GET is pinned to the HEAD's ETag, so what lands is the version ``info`` describes.
    """
    u, s, st = _resolve(uri, settings)
    if info is None:
        info = head(uri, settings)
    if info.size > max_bytes:
        raise too_large(uri, info.size, max_bytes)
    return _attempt(u, s, lambda: _download_once(u, st, dest_path, max_bytes, info))


def _download_once(u: ObjectURI, st, dest_path: str, max_bytes: int, info: ObjectInfo) -> ObjectInfo:
    got, err = _fetch_to(u, st, dest_path, max_bytes, info)
    if err is not None:
        raise err  # raised here, once _fetch_to's frames -- and the open response they held -- are gone
    return got


def _fetch_to(u: ObjectURI, st, dest_path: str, max_bytes: int, info: ObjectInfo):
    """(info, None) once ``dest_path`` is complete, or (None, error without a traceback).

    A traceback would keep this frame, and with it the response and its connection, alive
    for as long as someone holds the exception: the server would go on sending the body.
    """
    import obstore

    tmp = f"{dest_path}.part-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        res = _obs(u, obstore.get, st, u.key, options={"if_match": info.etag} if info.etag else None)
        got = _info(res.meta)
        if got.size > max_bytes:
            return None, too_large(u, got.size, max_bytes)
        with open(tmp, "wb") as fh:
            copy_limited(u, _chunks(u, res.stream(min_chunk_size=CHUNK)), fh, max_bytes)
        os.replace(tmp, dest_path)
        return got, None
    except ObjectStoreError as e:
        return None, e.with_traceback(None)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def put(uri, data, settings: SettingsArg = None, overwrite: bool = False) -> bool:
    """Write ``data`` (bytes, or a local file as ``os.PathLike``) unless the object exists.

    Keys are content-addressed, so "already exists" means the same bytes are there: success,
    returning False (True: written now). A store without conditional writes gets a HEAD and
    a plain PUT instead. One request, no multipart (conditional puts forbid it): 5 GB at most.
    ``overwrite`` (an export to a name the user chose) replaces what is there.
    """
    if isinstance(data, str):
        raise TypeError("put() takes bytes or an os.PathLike file, not str")
    u, s, st = _resolve(uri, settings)
    payload = data if isinstance(data, (bytes, bytearray, memoryview)) else _as_path(data)
    if overwrite:
        import obstore

        _attempt(u, s, lambda: _obs(u, obstore.put, st, u.key, payload, use_multipart=False))
        return True
    return _attempt(u, s, lambda: _put_once(u, s, st, payload))


def _as_path(data):
    from pathlib import Path

    return Path(os.fspath(data))


def _put_once(u: ObjectURI, s: Settings, st, payload) -> bool:
    import obstore
    from obstore import exceptions as ox

    err = None
    try:
        obstore.put(st, u.key, payload, mode="create", use_multipart=False)
        return True
    except ox.AlreadyExistsError:
        return False
    except ox.NotSupportedError:
        pass
    except _library_errors() as e:
        err = classify(str(u), e)
    if err is not None:
        raise err
    if exists(str(u), s):  # no conditional writes here: look, then write
        return False
    _obs(u, obstore.put, st, u.key, payload, use_multipart=False)
    return True


def list_prefix(uri, settings: SettingsArg = None, limit: int | None = None) -> list[tuple[str, ObjectInfo]]:
    """(URI, info) of every object under a prefix, which is a directory path: ``s3://b/a/``
    holds ``a/x`` and ``a/y/z`` but not ``ab``. ``limit`` stops early."""
    import obstore

    u, s, st = _resolve(uri, settings, prefix=True)
    prefix = u.key.rstrip("/") or None

    def listing():
        out = []
        for batch in _chunks(u, obstore.list(st, prefix, chunk_size=1000)):
            for meta in batch:
                out.append((str(u.with_key(meta["path"])), _info(meta)))
                if limit is not None and len(out) >= limit:
                    return out
        return out
    return _attempt(u, s, listing)


def delete(uri, settings: SettingsArg = None) -> None:
    """Delete an object; one that is already gone is not an error."""
    import obstore

    u, s, st = _resolve(uri, settings)
    try:
        _attempt(u, s, lambda: _obs(u, obstore.delete, st, u.key))
    except ObjectStoreError as e:
        if e.kind != "not_found":
            raise


# --- batches ------------------------------------------------------------------------------------
def run_bounded(fn: Callable, items: list, concurrency: int) -> list:
    """``fn`` over ``items`` on at most ``concurrency`` threads; results in order.

    obstore releases the GIL while it waits on the network, so threads overlap downloads.
    ``fn`` must not call plpy (it is not thread-safe): object I/O only.
    """
    if concurrency <= 1 or len(items) <= 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=min(concurrency, len(items)), thread_name_prefix="pxt-objects") as ex:
        return list(ex.map(fn, items))


def local_name(uri: str) -> str:
    """A file name for ``uri``: a hash, and the key's extension (decoders read it)."""
    ext = os.path.splitext(uri.rsplit("/", 1)[-1])[1]
    ext = ext if re.fullmatch(r"\.[A-Za-z0-9]{1,10}", ext) else ""
    return hashlib.sha256(uri.encode()).hexdigest()[:40] + ext.lower()


def fetch_many(uris: Iterable[str], dest_dir: str, max_bytes: int, concurrency: int = 8,
               settings: SettingsArg = None) -> dict:
    """Download a batch, at most ``concurrency`` at once: {uri: local path or ObjectStoreError}.

    Each URI is fetched once however often it is listed; one failure does not stop the rest.
    """
    unique = list(dict.fromkeys(uris))

    def one(uri):
        try:
            dest = os.path.join(dest_dir, local_name(uri))
            download(uri, dest, max_bytes, settings)
            return dest
        except ObjectStoreError as e:
            return e
    return dict(zip(unique, run_bounded(one, unique, concurrency)))
