"""Bucket media in the server: which buckets a role may use, how to reach them, the cache.

* ``pixelgres.allowed_buckets`` (superuser-only; per role with ``ALTER ROLE ... SET``) lists
  URI prefixes, each a directory: ``s3://photos/`` allows ``s3://photos/a.jpg`` and
  ``s3://photos/2024/b.jpg``, ``s3://photos/2024/`` not ``s3://photos/20245/``. Empty allows
  none. A URI is checked in its normal form (``objects.parse_uri``), so no spelling of it
  slips past a prefix.
* ``pixelgres.storage_config`` (superuser-only) names a TOML file on the server: one table
  per URI prefix, the longest matching one applies (``["s3://"]`` for every S3 bucket)::

      ["s3://photos/"]
      endpoint = "http://127.0.0.1:9000"   # MinIO, moto, R2 ...; allow_http = true for http
      region = "us-east-1"
      access_key_id = "..."                 # credential keys; without them the standard chain
      secret_access_key = "..."

  Secrets live in that file (readable by the server's OS user), never in a setting, so they
  cannot show in ``SHOW ALL``, ``pg_settings``, logs or ``pg_stat_activity``.
* Objects are read through the local cache (``media.cache``) under
  ``pixelgres.object_cache_dir`` (default ``<media_dir>/_objects``), at most
  ``pixelgres.object_cache_mb``. A hit checks the object's version with a HEAD unless one
  did in the last ``pixelgres.object_cache_max_age`` seconds. Content-addressed keys
  (``<sha256>.<ext>``, what destinations write) are immutable: a hit costs no request, and a
  miss checks the downloaded bytes against the name.
"""
from __future__ import annotations

import hashlib
import os
import pathlib
import re
import shutil
import tomllib

from ..core.errors import MediaError
from . import cache, objects, uploads
from .gucs import media_dir, setting, setting_list

MiB = 1024 * 1024
CONTENT_NAME = re.compile(r"([0-9a-f]{64})\.[a-z0-9]{1,8}")
_FIELDS = {"endpoint": str, "allow_http": bool, "region": str, "account": str, "retries": int,
           "connect_timeout": str, "read_timeout": str, "timeout": str}
_CREDENTIALS = {"access_key_id", "secret_access_key", "session_token", "service_account_key",
                "service_account_path", "application_credentials", "account_key", "sas_key", "sas_token",
                "bearer_token", "client_id", "client_secret", "tenant_id", "token"}
_config: dict = {}   # (path, mtime, size) -> {prefix: Settings}
_caches: dict = {}


def _error(e: objects.ObjectStoreError) -> MediaError:
    return MediaError(f"{e} (pixelgres.max_media_mb)" if e.kind == "too_large" else str(e))


def parse(uri: str, prefix: bool = False) -> objects.ObjectURI:
    try:
        return objects.parse_uri(uri, prefix=prefix)
    except objects.ObjectStoreError as e:
        raise _error(e) from None


def _as_prefix(text: str) -> str:
    u = parse(text, prefix=True)
    s = str(u)
    return s if s.endswith("/") else s + "/"


def allowed_prefixes() -> list[str]:
    out = []
    for p in setting_list("pixelgres.allowed_buckets"):
        try:
            out.append(_as_prefix(p))
        except MediaError as e:
            raise MediaError(f"pixelgres.allowed_buckets: {e}") from None
    return out


def check(uri: str, prefix: bool = False) -> objects.ObjectURI:
    """The parsed URI if ``pixelgres.allowed_buckets`` allows it; MediaError otherwise."""
    u = parse(uri, prefix=prefix)
    text = str(u)
    allowed = allowed_prefixes()
    if not any(text.startswith(p) or text + "/" == p for p in allowed):
        raise MediaError(f"{objects.display(text)} is outside pixelgres.allowed_buckets "
                         f"({', '.join(allowed) or 'none configured'})")
    return u


# --- settings -------------------------------------------------------------------------------
def _load_config(path: str) -> dict:
    try:
        st = os.stat(path)
        key = (path, st.st_mtime_ns, st.st_size)
        if key in _config:
            return _config[key]
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as e:
        # the file's text never goes into a message: it holds secrets
        raise MediaError(f"pixelgres.storage_config: cannot read {path!r} ({type(e).__name__})") from None
    out = {}
    for prefix, table in raw.items():
        if not isinstance(table, dict):
            raise MediaError(f"pixelgres.storage_config: {prefix!r} must be a table of settings")
        out[_config_prefix(prefix)] = _settings_of(prefix, table)
    _config.clear()
    objects.clear_stores()  # new settings or credentials take effect now
    _config[key] = out
    return out


def _config_prefix(prefix: str) -> str:
    scheme, sep, rest = prefix.partition("://")
    if sep and not rest and scheme in objects.BACKENDS:
        return prefix
    try:
        return _as_prefix(prefix)
    except MediaError as e:
        raise MediaError(f"pixelgres.storage_config: {e}") from None


def _settings_of(prefix: str, table: dict) -> objects.Settings:
    fields, creds, config = {}, {}, {}
    for k, v in table.items():
        if k in _FIELDS:
            if not isinstance(v, _FIELDS[k]):
                raise MediaError(f"pixelgres.storage_config: {prefix!r}.{k} must be a {_FIELDS[k].__name__}")
            fields[k] = v
        elif k in _CREDENTIALS:
            if not isinstance(v, str):
                raise MediaError(f"pixelgres.storage_config: {prefix!r}.{k} must be a string")
            creds[k] = v
        elif isinstance(v, (str, int, float, bool)):
            config[k] = str(v)
        else:
            raise MediaError(f"pixelgres.storage_config: {prefix!r}.{k} must be a plain value")
    return objects.Settings(credentials=creds, config=config, **fields)


def settings_for(u: objects.ObjectURI) -> objects.Settings:
    """The Settings of the longest prefix in pixelgres.storage_config holding ``u``."""
    path = setting("pixelgres.storage_config")
    if not path:
        return objects.Settings()
    text, best = str(u), None
    for prefix, s in _load_config(path).items():
        if text.startswith(prefix) and (best is None or len(prefix) > len(best[0])):
            best = (prefix, s)
    return best[1] if best else objects.Settings()


class _Resolved:
    """Settings looked up once per batch: the lookup reads the database (plpy), which threads
    of a download pool must not."""

    def __init__(self, uris):
        self.by_uri = {str(u): settings_for(u) for u in uris}

    def __call__(self, u: objects.ObjectURI) -> objects.Settings:
        return self.by_uri[str(u)]


# --- reading --------------------------------------------------------------------------------
def the_cache() -> cache.Cache:
    root = setting("pixelgres.object_cache_dir") or os.path.join(media_dir(), "_objects")
    limit = int(setting("pixelgres.object_cache_mb")) * MiB
    c = _caches.get((root, limit))
    if c is None:
        try:
            c = _caches[(root, limit)] = cache.Cache(root, limit)
        except OSError as e:
            raise MediaError(f"cannot use the object cache {root!r} ({e.strerror or type(e).__name__})") from None
    return c


def max_bytes() -> int:
    return int(setting("pixelgres.max_media_mb")) * MiB


def _content_hash(u: objects.ObjectURI) -> str | None:
    m = CONTENT_NAME.fullmatch(u.key.rsplit("/", 1)[-1])
    return m.group(1) if m else None


def max_age_ns() -> int:
    return int(setting("pixelgres.object_cache_max_age")) * 1_000_000_000


def _get(c: cache.Cache, u: objects.ObjectURI, limit: int, settings, max_age: int) -> str:
    """Object I/O only (no plpy): safe on a pool thread."""
    digest = _content_hash(u)
    if digest is not None:
        try:
            return c.get(str(u), lambda tmp: _download_checked(u, tmp, limit, settings, digest), limit,
                         "sha256:" + digest)
        except _NotContent:
            pass  # named like a hash but holding other bytes: an ordinary object
    return cache.get_object(c, str(u), limit, settings, max_age)


class _NotContent(Exception):
    """Named like a content hash, but the bytes do not hash to the name."""


def _download_checked(u, tmp: str, limit: int, settings, digest: str) -> None:
    objects.download(str(u), tmp, limit, settings)
    h = hashlib.sha256()
    with open(tmp, "rb") as f:
        while chunk := f.read(objects.CHUNK):
            h.update(chunk)
    if h.hexdigest() != digest:
        raise _NotContent()


def local_path(uri: str) -> str:
    """A local file holding the object ``uri`` names (through the cache)."""
    u = check(uri)
    try:
        return _get(the_cache(), u, max_bytes(), _Resolved([u]), max_age_ns())
    except objects.ObjectStoreError as e:
        raise _error(e) from None


def prefetch(uris) -> list[tuple[str, str | None]]:
    """Bring a batch of object URIs into the cache, ``pixelgres.object_concurrency`` at a
    time, so the rows that read them next find them: [(uri, error or None)] in input order.
    Values that are not object URIs are skipped; a refused or failed one reports its error."""
    out, todo = {}, []
    for uri in dict.fromkeys(x for x in uris if objects.is_object_uri(x)):
        try:
            todo.append((uri, check(uri)))
            out[uri] = None
        except MediaError as e:
            out[uri] = str(e)
    settings, c, limit, age = _Resolved([u for _, u in todo]), the_cache(), max_bytes(), max_age_ns()

    def one(item):
        try:
            _get(c, item[1], limit, settings, age)
            return None
        except objects.ObjectStoreError as e:
            return str(e)
    concurrency = int(setting("pixelgres.object_concurrency"))
    for (uri, _), err in zip(todo, objects.run_bounded(one, todo, concurrency)):
        out[uri] = err
    return list(out.items())


def forget(uri: str) -> None:
    """Drop a deleted content-addressed object from the cache (an upload then puts it back)."""
    digest = _content_hash(parse(uri))
    if digest is not None:
        the_cache().remove(uri, "sha256:" + digest)


# --- writing --------------------------------------------------------------------------------
def destination(prefix: str) -> str:
    """A checked destination prefix in normal form (ends with '/')."""
    p = _as_prefix(prefix)
    check(p, prefix=True)
    return p


def upload(path: str, uri: str, label: str = "") -> str:
    """Put the local file ``path`` at ``uri`` unless it is there already (content-addressed
    names: same name, same bytes), and seed the cache with it, so reading it back costs no
    download. The object is complete or absent: one conditional PUT, no multipart. Inside a
    statement with destinations the PUT runs concurrently (``media.uploads``)."""
    u = check(uri)
    c, digest = the_cache(), _content_hash(u)
    if digest is not None and c.has(str(u), "sha256:" + digest):
        return str(u)  # this server put it there, or read it back whole, before
    settings, limit = _Resolved([u]), max(max_bytes(), os.path.getsize(path))

    def put():
        try:
            objects.put(str(u), pathlib.Path(path), settings)
        except objects.ObjectStoreError as e:
            raise _error(e) from None
        if digest is not None:
            c.get(str(u), lambda tmp: _link(path, tmp), limit, "sha256:" + digest)
    name = f"{objects.display(str(u))}" + (f" ({label})" if label else "")
    if uploads.submit(put, name, int(setting("pixelgres.object_concurrency"))) is None:
        put()
    return str(u)


def _link(src: str, dst: str) -> None:
    try:
        os.link(src, dst)  # the store file and the cache entry share the bytes
    except OSError:
        shutil.copyfile(src, dst)
