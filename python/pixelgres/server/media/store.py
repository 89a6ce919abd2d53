"""Media references: resolve a URI to a local file, and the content-addressed store.

A media value is text: an absolute local path, ``file://`` URI, ``http(s)://`` URL, an
object-store URI (``s3://``, ``gs://``, ``az://``, ``r2://``...: ``media.buckets``), or
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
import itertools
import tempfile
import threading
import urllib.parse

from ..core.errors import MediaError
from ..core.errors import error
from ..core.spi import on_replica
from . import buckets, objects
from .gucs import media_dir, setting, setting_list

_DIRS: set = set()             # store directories known to exist
_TMP_TOKEN = os.urandom(6).hex()  # temp file names: this process's token, the thread, a sequence number
_TMP_SEQ = itertools.count()      # (next() is atomic under the GIL)

KINDS = ("image", "video", "audio", "document")
FRAME_SCHEME = "pxt-frame:"  # a virtual video frame (media.video.frame_ref)


def allowed_roots() -> list[str]:
    return [os.path.realpath(r) for r in setting_list("pixelgres.allowed_roots")]


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
    elif objects.is_object_uri(uri):
        path = buckets.local_path(uri)
    elif uri.startswith(FRAME_SCHEME):  # media.resolve reads frames; nothing else takes one
        raise MediaError(f"{uri!r} is a video frame: only image inputs accept one")
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
def _name(root: str, data: bytes, ext: str) -> tuple[str, str]:
    """(reference, file path) of ``data`` in the store at ``root``."""
    digest = hashlib.sha256(data).hexdigest()
    ext = ext.lower().lstrip(".")
    if not ext.isalnum() or len(ext) > 8:
        raise MediaError(f"invalid media file extension {ext!r}")
    return f"media://{digest}.{ext}", os.path.join(root, digest[:2], f"{digest}.{ext}")


def store_bytes(data: bytes, ext: str) -> str:
    return writer()(data, ext)


def writer():
    """``store_bytes`` as a function that helper threads may call (they may not call plpy): the
    store directory and whether this is a replica are read here, on the main thread."""
    root, replica = media_dir(), on_replica()

    def put(data: bytes, ext: str) -> str:
        ref, final = _name(root, data, ext)
        if not os.path.exists(final):
            if replica:  # media the primary already stored is found above: only new files are refused
                raise error("cannot write media on a read-only replica: this function produces a media "
                            "file the store does not have yet", sqlstate="25006")
            write_atomic(final, data)
        return ref
    return put


def store_media(data: bytes, ext: str) -> str:
    """pxt.store_media: bytes a client uploads, under a file extension it names."""
    if not ext.isalnum() or len(ext) > 8:
        raise ValueError(f"invalid file extension {ext!r}: letters and digits, at most 8")
    return store_bytes(data, ext)


def to_destination(value: str, destination: str, label: str = "") -> str:
    """pxt._to_destination: a computed media value in the store, put in its column's bucket
    destination under the same content-addressed name; other values pass unchanged."""
    if not value.startswith("media://"):
        return value
    path = store_path(value)
    return buckets.upload(path, buckets.destination(destination) + value[len("media://"):], label)


def write_atomic(final: str, data: bytes) -> None:
    """Write through a ``.tmp-`` file renamed into place: readers never see a partial file, two
    writers of the same content race harmlessly, and an interrupted write leaves only a temp
    file (removed here, or by the media vacuum after a crash). Plain descriptor calls, with the
    directories already made remembered: a statement storing 1800 frames spent a third of its
    storing time in mkstemp, makedirs and chmod by path."""
    d = os.path.dirname(final)
    tmp = os.path.join(d, f".tmp-{_TMP_TOKEN}-{threading.get_ident()}-{next(_TMP_SEQ)}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    if d not in _DIRS:
        os.makedirs(d, exist_ok=True)
        _DIRS.add(d)
    try:
        fd = os.open(tmp, flags, 0o644)
    except FileNotFoundError:  # the directory was removed since (media vacuum of an empty one)
        os.makedirs(d, exist_ok=True)
        fd = os.open(tmp, flags, 0o644)
    try:
        try:
            os.fchmod(fd, 0o644)  # readable by other backends' roles, whatever the umask
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        os.replace(tmp, final)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# --- URLs ----------------------------------------------------------------------------------
def _refused(ip) -> bool:
    """Anything but a global unicast address: private, loopback, link-local (cloud metadata),
    shared (100.64/10), reserved, unspecified, multicast; IPv4-mapped IPv6 judged as IPv4."""
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


def host_allowed(host: str) -> str:
    """Resolve ``host`` once and return the address to connect to, refusing non-public
    addresses unless pixelgres.allowed_url_hosts lists the host or a network holding it.
    Callers connect to this address (not the name again), so a DNS answer cannot change
    between the check and the connection (rebinding)."""
    allowed = setting_list("pixelgres.allowed_url_hosts")
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except socket.gaierror as e:
        raise MediaError(f"cannot resolve host {host!r}: {e}")
    if not infos:
        raise MediaError(f"cannot resolve host {host!r}")
    if host in allowed:
        return infos[0][4][0]
    nets = []
    for a in allowed:
        try:
            nets.append(ipaddress.ip_network(a, strict=False))
        except ValueError:
            pass
    for info in infos:
        ip = ipaddress.ip_address(info[4][0].split("%")[0])
        if any(ip in n for n in nets):
            continue
        if _refused(ip):
            raise MediaError(f"URL host {host!r} resolves to a non-public address ({ip}); "
                             "allow it with pixelgres.allowed_url_hosts")
    return infos[0][4][0]


def fetch_url(url: str) -> str:
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise MediaError(f"unsupported URL {url!r}")
    address = host_allowed(parsed.hostname)  # before the cache: an allowance may have ended
    cache = os.path.join(media_dir(), "_url_cache")
    os.makedirs(cache, exist_ok=True)
    ext = os.path.splitext(parsed.path)[1][:9]
    path = os.path.join(cache, hashlib.sha256(url.encode()).hexdigest() + ext)
    if os.path.exists(path):
        return path
    import httpx

    limit = int(setting("pixelgres.url_max_bytes"))
    timeout = int(setting("pixelgres.url_timeout_ms")) / 1000.0
    # connect to the checked address; the name still goes in Host and in TLS (SNI + certificate)
    host_part = f"[{address}]" if ":" in address else address
    port = f":{parsed.port}" if parsed.port else ""
    target = parsed._replace(netloc=f"{host_part}{port}").geturl()
    extensions = {"sni_hostname": parsed.hostname} if parsed.scheme == "https" else {}
    fd, tmp = tempfile.mkstemp(dir=cache, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f, httpx.Client(timeout=timeout, follow_redirects=False) as client:
            r = client.send(client.build_request("GET", target, headers={"Host": parsed.netloc.rpartition("@")[2]},
                                                 extensions=extensions), stream=True)
            try:
                if r.status_code != 200:
                    raise MediaError(f"fetching {url!r}: HTTP {r.status_code}")
                size = 0
                for chunk in r.iter_bytes():
                    size += len(chunk)
                    if size > limit:
                        raise MediaError(f"fetching {url!r}: larger than pixelgres.url_max_bytes ({limit})")
                    f.write(chunk)
            finally:
                r.close()
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except httpx.HTTPError as e:
        raise MediaError(f"fetching {url!r}: {type(e).__name__}: {e}")
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def check_limits(uri: str, path: str, seconds: float | None = None) -> None:
    """Size (pixelgres.max_media_mb) and duration (pixelgres.max_media_seconds) limits of a
    video, audio or document file, checked before decoding."""
    mb = int(setting("pixelgres.max_media_mb"))
    size = os.path.getsize(path)
    if size > mb * 1024 * 1024:
        raise MediaError(f"{uri!r} is {size // (1024 * 1024)} MB, more than pixelgres.max_media_mb ({mb})")
    if seconds is not None:
        limit = int(setting("pixelgres.max_media_seconds"))
        if seconds > limit:
            raise MediaError(f"{uri!r} lasts {seconds:.0f} s, more than pixelgres.max_media_seconds ({limit})")
