"""A local cache of remote objects: content-addressed, size-bounded, shared by backends.

A second pass over a bucket's video must not download it again, and several backends read
the same objects at once. An entry is named by a hash of (URI, version) -- the version is the
ETag, or size and modification time -- so a changed object is a new entry and an entry never
changes. Under ``root``::

    <aa>/<key>                    entries (aa: the key's first two hex digits)
    .locks/<key>.lock             flock per entry: exclusive while downloading, shared while serving
    .tmp/<key>.<pid>.<rand>       downloads in progress, renamed into place only when complete
    .verified/<sha256(uri)>       the version a HEAD last found (content), and when (mtime)
    .evict.lock                   one evictor at a time

Concurrent backends: the exclusive entry lock makes the second one wait for the first one's
download and then find it (one download, not two); a killed download leaves only a file in
.tmp, which is never served and is removed by a later eviction. Eviction goes by access time,
oldest first, which every hit sets explicitly (``os.utime``: noatime mounts do not matter); it
skips entries whose lock is held, re-stats before deleting and spares an entry touched since
the scan. A caller opens the returned path at once (``open``): on Linux an open file survives
its eviction. flock locks belong to an open file, so threads of one backend exclude each other
too. No plpy: the server passes the directory and the limit in.

Freshness: a hit normally costs one HEAD (is the object still that version?). A caller that
accepts an answer up to ``max_age_ns`` old (``get_object``'s ``max_age_ns``) is served from
``.verified`` without a request while that HEAD is recent enough -- by any backend.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import secrets
import threading
import time
from typing import Callable

from . import objects

RESCAN_EVERY = 32  # inserts between full scans (other backends' inserts are seen then)


class Cache:
    def __init__(self, root: str, limit_bytes: int, now_ns: Callable[[], int] = time.time_ns):
        self.root = os.path.abspath(root)
        self.limit_bytes = int(limit_bytes)
        self.now_ns = now_ns  # access times; tests pass a counter to order them without clocks
        for d in (self.root, self._locks, self._tmp, self._verified):
            os.makedirs(d, exist_ok=True)
        self._mutex = threading.Lock()
        self.hits = self.misses = self.evicted_bytes = 0
        self._estimate: int | None = None  # this process's idea of the total size
        self._inserts = 0

    @property
    def _locks(self) -> str:
        return os.path.join(self.root, ".locks")

    @property
    def _tmp(self) -> str:
        return os.path.join(self.root, ".tmp")

    @property
    def _verified(self) -> str:
        return os.path.join(self.root, ".verified")

    def _verified_path(self, uri: str) -> str:
        return os.path.join(self._verified, hashlib.sha256(uri.encode()).hexdigest())

    def verified(self, uri: str, version: str) -> None:
        """Record that ``uri`` was seen at ``version`` now (after a HEAD)."""
        final = self._verified_path(uri)
        tmp = f"{final}.{os.getpid()}.{secrets.token_hex(4)}"
        with open(tmp, "w") as f:
            f.write(version)
        now = self.now_ns()
        os.utime(tmp, ns=(now, now))
        os.replace(tmp, final)

    def fresh(self, uri: str, max_bytes: int, max_age_ns: int) -> str | None:
        """The cached path of ``uri`` if a HEAD found its version at most ``max_age_ns`` ago."""
        if max_age_ns <= 0:
            return None
        try:
            idx = self._verified_path(uri)
            if self.now_ns() - os.stat(idx).st_mtime_ns > max_age_ns:
                return None
            with open(idx) as f:
                version = f.read()
        except FileNotFoundError:
            return None
        key = self.key(uri, version)
        with self._locked(key, fcntl.LOCK_SH):
            if self._touch(self.path(key), uri, max_bytes):
                return self._count("hits", self.path(key))
        return None

    @staticmethod
    def key(uri: str, version: str) -> str:
        return hashlib.sha256(f"{uri}\0{version}".encode()).hexdigest()

    def path(self, key: str) -> str:
        return os.path.join(self.root, key[:2], key)

    # -- reading -----------------------------------------------------------------------------
    def get(self, uri: str, fetch_fn: Callable[[str], object], max_bytes: int, version: str) -> str:
        """The local path of ``uri`` at ``version``; on a miss ``fetch_fn(tmp_path)`` writes it.

        ``fetch_fn`` writes the complete object to the path it is given (``objects.download``);
        it is renamed into place only if it returned and the file is within ``max_bytes``.
        """
        key = self.key(uri, version)
        path = self.path(key)
        if os.path.exists(path):
            with self._locked(key, fcntl.LOCK_SH):
                if self._touch(path, uri, max_bytes):
                    return self._count("hits", path)
        with self._locked(key, fcntl.LOCK_EX):
            if self._touch(path, uri, max_bytes):  # another backend fetched it while we waited
                return self._count("hits", path)
            size = self._fill(key, path, fetch_fn, uri, max_bytes)
        self._count("misses", path)
        self._inserted(size, key)
        return path

    def has(self, uri: str, version: str) -> bool:
        return os.path.exists(self.path(self.key(uri, version)))

    def remove(self, uri: str, version: str) -> None:
        key = self.key(uri, version)
        with self._locked(key, fcntl.LOCK_EX):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path(key))

    def open(self, uri: str, fetch_fn: Callable[[str], object], max_bytes: int, version: str):
        """``get``, opened for reading: the open file stays readable even if evicted."""
        for _ in range(3):
            try:
                return open(self.get(uri, fetch_fn, max_bytes, version), "rb")
            except FileNotFoundError:  # evicted between get and open: fetch again
                continue
        raise objects.ObjectStoreError(objects.display(uri), "other", "the cache evicted the object repeatedly")

    def _count(self, what: str, path: str) -> str:
        with self._mutex:
            setattr(self, what, getattr(self, what) + 1)
        return path

    def _touch(self, path: str, uri: str, max_bytes: int) -> bool:
        """Is the entry there? If so, mark it used now (LRU) and check it fits the caller's limit."""
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return False
        if st.st_size > max_bytes:
            raise objects.too_large(uri, st.st_size, max_bytes)
        os.utime(path, ns=(self.now_ns(), st.st_mtime_ns))
        return True

    def _fill(self, key: str, path: str, fetch_fn, uri: str, max_bytes: int) -> int:
        tmp = os.path.join(self._tmp, f"{key}.{os.getpid()}.{secrets.token_hex(4)}")
        try:
            fetch_fn(tmp)
            size = os.stat(tmp).st_size
            if size > max_bytes:
                raise objects.too_large(uri, size, max_bytes)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            now = self.now_ns()
            os.utime(tmp, ns=(now, now))
            os.replace(tmp, path)
            return size
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    # -- locks -------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self, key: str, mode: int, blocking: bool = True):
        """Hold the entry's flock; yields False if not ``blocking`` and someone else holds it.

        An evictor deletes a lock file while holding it, so after acquiring, check that the
        file is still the one at the path; if not, lock the new one.
        """
        path = os.path.join(self._locks, key + ".lock")
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                try:
                    fcntl.flock(fd, mode | (0 if blocking else fcntl.LOCK_NB))
                except BlockingIOError:
                    yield False
                    return
                if _same_file(fd, path):
                    yield True
                    return
            finally:
                os.close(fd)

    @contextlib.contextmanager
    def _evicting(self, blocking: bool):
        fd = os.open(os.path.join(self.root, ".evict.lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)

    # -- size bound --------------------------------------------------------------------------
    def _inserted(self, size: int, key: str) -> None:
        with self._mutex:
            self._inserts += 1
            rescan = self._estimate is None or self._inserts % RESCAN_EVERY == 0
            if not rescan:
                self._estimate += size
            over = rescan or self._estimate > self.limit_bytes
        if over:
            with self._evicting(blocking=False) as mine:
                if mine:  # else another backend is evicting right now
                    self._evict(self.limit_bytes, keep={key})

    def evict(self, limit_bytes: int | None = None) -> int:
        """Delete least recently used entries until at most ``limit_bytes`` (default: the
        cache's limit) remain; returns the bytes freed. Entries in use are spared."""
        with self._evicting(blocking=True):
            return self._evict(self.limit_bytes if limit_bytes is None else int(limit_bytes), keep=set())

    def _evict(self, limit: int, keep: set) -> int:
        entries = sorted(self._scan())
        total = sum(e[1] for e in entries)
        freed = 0
        for atime, size, key, path in entries:
            if total <= limit:
                break
            if key in keep:
                continue
            gone = self._remove_unused(key, path, atime)
            if gone:
                total -= size
                freed += size if gone == "removed" else 0
        self._clean_tmp()
        with self._mutex:
            self._estimate = total
            self.evicted_bytes += freed
        return freed

    def _remove_unused(self, key: str, path: str, atime: int) -> str | None:
        """Delete the entry unless it is locked or was used since the scan saw ``atime``."""
        with self._locked(key, fcntl.LOCK_EX, blocking=False) as mine:
            if not mine:
                return None
            try:
                st = os.stat(path)
            except FileNotFoundError:
                return "vanished"
            if st.st_atime_ns != atime:
                return None
            os.unlink(path)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(self._locks, key + ".lock"))
            return "removed"

    def _clean_tmp(self) -> None:
        """Remove downloads nobody is doing any more (a killed backend's partial files)."""
        for e in _scandir(self._tmp):
            key = e.name.split(".", 1)[0]
            with self._locked(key, fcntl.LOCK_EX, blocking=False) as mine:
                if mine:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(e.path)

    def _scan(self) -> list[tuple[int, int, str, str]]:
        """(access time ns, size, key, path) of every entry."""
        out = []
        for sub in _scandir(self.root):
            if len(sub.name) != 2 or not sub.is_dir():
                continue
            for e in _scandir(sub.path):
                try:
                    st = e.stat()
                except FileNotFoundError:
                    continue
                out.append((st.st_atime_ns, st.st_size, e.name, e.path))
        return out

    def stats(self) -> dict:
        """Entries and bytes on disk (all backends'), and this process's hits, misses, evictions."""
        entries = self._scan()
        with self._mutex:
            return {"entries": len(entries), "bytes": sum(e[1] for e in entries), "limit_bytes": self.limit_bytes,
                    "hits": self.hits, "misses": self.misses, "evicted_bytes": self.evicted_bytes,
                    "partial": len(_scandir(self._tmp))}


def _same_file(fd: int, path: str) -> bool:
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


def _scandir(path: str) -> list:
    try:
        with os.scandir(path) as it:
            return list(it)
    except FileNotFoundError:
        return []


# --- objects through the cache --------------------------------------------------------------------
def get_object(cache: Cache, uri: str, max_bytes: int, settings: objects.SettingsArg = None,
               max_age_ns: int = 0) -> str:
    """The local path of an object-store URI, read through ``cache``: one HEAD (the version),
    and a download pinned to that version only on a miss; no request at all if a HEAD at most
    ``max_age_ns`` ago found the version cached."""
    path = cache.fresh(uri, max_bytes, max_age_ns)
    if path is not None:
        return path
    info = objects.head(uri, settings)
    if info.size > max_bytes:
        raise objects.too_large(uri, info.size, max_bytes)
    path = cache.get(uri, lambda tmp: objects.download(uri, tmp, max_bytes, settings, info=info),
                     max_bytes, info.version)
    cache.verified(uri, info.version)
    return path


def get_objects(cache: Cache, uris, max_bytes: int, concurrency: int = 8,
                settings: objects.SettingsArg = None, max_age_ns: int = 0) -> dict:
    """``get_object`` for a batch, at most ``concurrency`` at once: {uri: path or ObjectStoreError}."""
    unique = list(dict.fromkeys(uris))

    def one(uri):
        try:
            return get_object(cache, uri, max_bytes, settings, max_age_ns)
        except objects.ObjectStoreError as e:
            return e
    return dict(zip(unique, objects.run_bounded(one, unique, concurrency)))
