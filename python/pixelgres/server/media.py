"""Media references: resolve a URI to a local file, and the content-addressed store.

A media value is text: an absolute local path, ``file://`` URI, ``http(s)://`` URL, or
``media://<sha256>.<ext>`` naming a file in the store (``pixelgres.media_dir``, laid out as
``<aa>/<sha256>.<ext>``). Store files are written once (temp file + atomic rename) and never
changed, so every version and snapshot that references one stays valid.

Local paths are honoured only under ``pixelgres.allowed_roots`` after resolving symlinks
and '..'; URLs are fetched into ``<media_dir>/_url_cache`` within size and time limits.
"""
import hashlib
import ipaddress
import os
import socket
import tempfile
import urllib.parse

import plpy

KINDS = ("image", "video", "audio", "document")
_settings_cache: dict = {}


class MediaError(Exception):
    """A media value that cannot be used; the message names the value."""


_plans: dict = {}


def _plan(query: str, types: list[str]):
    """A prepared plan, kept for the session (several lookups per image: parsing and planning
    each time cost as much as running them)."""
    plan = _plans.get(query)
    if plan is None:
        plan = _plans[query] = plpy.prepare(query, types)
    return plan


def setting(name: str) -> str:
    return plpy.execute(_plan("SELECT current_setting($1) AS v", ["text"]), [name])[0]["v"]


def media_dir() -> str:
    d = plpy.execute(_plan("SELECT pxt._media_dir() AS d", []))[0]["d"]
    os.makedirs(d, exist_ok=True)
    return d


def allowed_roots() -> list[str]:
    raw = setting("pixelgres.allowed_roots")
    return [os.path.realpath(r.strip()) for r in raw.split(",") if r.strip()]


def _under(path: str, roots: list[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def store_path(ref: str) -> str:
    name = ref[len("media://"):]
    stem, _, ext = name.partition(".")
    if len(stem) != 64 or any(ch not in "0123456789abcdef" for ch in stem) or not ext.isalnum() or len(ext) > 8:
        raise MediaError(f"invalid media store reference {ref!r}")
    return os.path.join(media_dir(), stem[:2], name)


def local_path(uri: str) -> str:
    """A readable local file for ``uri``; raises MediaError saying why not."""
    if not isinstance(uri, str) or not uri:
        raise MediaError("empty media reference")
    if uri.startswith("media://"):
        path = store_path(uri)
    elif uri.startswith(("http://", "https://")):
        path = fetch_url(uri)
    elif uri.startswith("pxt-frame:"):  # a virtual video frame: decoded once, cached as PNG
        from . import video

        path = video.frame_file(uri)
    else:
        if uri.startswith("file://"):
            parsed = urllib.parse.urlparse(uri)
            if parsed.netloc not in ("", "localhost"):
                raise MediaError(f"file URI with a remote host is not supported: {uri!r}")
            raw = urllib.parse.unquote(parsed.path)
        elif uri.startswith("/"):
            raw = uri
        elif "://" in uri:
            raise MediaError(f"unsupported media URI scheme in {uri!r}")
        else:
            raise MediaError(f"media path must be absolute: {uri!r}")
        path = os.path.realpath(raw)
        roots = allowed_roots()
        if not _under(path, roots):
            raise MediaError(f"{uri!r} is outside pixelgres.allowed_roots "
                             f"({', '.join(roots) or 'none configured'})")
    if not os.path.isfile(path):
        raise MediaError(f"media file not found: {uri!r}")
    if os.path.getsize(path) == 0:
        raise MediaError(f"media file is empty (0 bytes): {uri!r}")
    return path


# --- the store -------------------------------------------------------------------------
def store_bytes(data: bytes, ext: str) -> str:
    digest = hashlib.sha256(data).hexdigest()
    ext = ext.lower().lstrip(".")
    ref = f"media://{digest}.{ext}"
    final = store_path(ref)
    if not os.path.exists(final):
        d = os.path.dirname(final)
        os.makedirs(d, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.chmod(tmp, 0o644)
            os.replace(tmp, final)  # atomic; identical content if two writers race
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
    return ref


# --- URLs ----------------------------------------------------------------------------------
def _host_allowed(host: str) -> None:
    allowed = [h.strip() for h in setting("pixelgres.allowed_url_hosts").split(",") if h.strip()]
    if host in allowed:
        return
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror as e:
        raise MediaError(f"cannot resolve host {host!r}: {e}")
    nets = []
    for a in allowed:
        try:
            nets.append(ipaddress.ip_network(a, strict=False))
        except ValueError:
            pass
    for info in infos:
        ip = ipaddress.ip_address(info[4][0])
        if any(ip in n for n in nets):
            continue
        if ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved or ip.is_multicast or ip.is_unspecified:
            raise MediaError(f"URL host {host!r} resolves to a non-public address ({ip}); "
                             "allow it with pixelgres.allowed_url_hosts")


def fetch_url(url: str) -> str:
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise MediaError(f"unsupported URL {url!r}")
    cache = os.path.join(media_dir(), "_url_cache")
    os.makedirs(cache, exist_ok=True)
    ext = os.path.splitext(parsed.path)[1][:9]
    path = os.path.join(cache, hashlib.sha256(url.encode()).hexdigest() + ext)
    if os.path.exists(path):
        return path
    _host_allowed(parsed.hostname)
    import httpx

    limit = int(setting("pixelgres.url_max_bytes"))
    timeout = int(setting("pixelgres.url_timeout_ms")) / 1000.0
    fd, tmp = tempfile.mkstemp(dir=cache, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f, httpx.stream("GET", url, timeout=timeout, follow_redirects=False) as r:
            if r.status_code != 200:
                raise MediaError(f"fetching {url!r}: HTTP {r.status_code}")
            size = 0
            for chunk in r.iter_bytes():
                size += len(chunk)
                if size > limit:
                    raise MediaError(f"fetching {url!r}: larger than pixelgres.url_max_bytes ({limit})")
                f.write(chunk)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except httpx.HTTPError as e:
        raise MediaError(f"fetching {url!r}: {type(e).__name__}: {e}")
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
