"""``pxt.media_url(ref, expires)``: an http(s) link to a media value that a BI tool, a browser
or an HTML report can open.

* bucket media (s3://, gs://, az://, r2://): the store's own presigned GET URL (obstore.sign),
  after the bucket allow-list, with the credentials of pixelgres.storage_config;
* http(s) media: the URL itself;
* local files and the media store: a link to ``pixelgres media-server`` signed with the key in
  ``pixelgres.media_url_key_file`` (links.py), for the file ``store.local_path`` resolves,
  i.e. only what the caller could read through pixelgres anyway.
"""
from __future__ import annotations

import datetime
import os
import time
import urllib.parse

import plpy

from ..core.errors import MediaError
from . import buckets, links, objects
from .gucs import plan, setting
from .store import local_path

MAX_SECONDS = 7 * 24 * 3600  # S3's limit for presigned URLs; the same for every link
_KEYS: dict = {}


def _seconds(expires) -> int:
    s = plpy.execute(plan("SELECT extract(epoch FROM $1::interval)::float8 AS s", ["text"]), [expires])[0]["s"]
    if s is None or not 1 <= s <= MAX_SECONDS:
        raise MediaError(f"expires must be between 1 second and 7 days, not {expires!r}")
    return int(s)


def _key(path: str) -> bytes:
    st = os.stat(path)
    hit = _KEYS.get(path)
    if hit is None or hit[0] != (st.st_mtime_ns, st.st_ino):
        hit = _KEYS[path] = ((st.st_mtime_ns, st.st_ino), links.read_key(path))
    return hit[1]


def media_url(ref, expires="1 hour"):
    if ref is None:
        return None
    seconds = _seconds(expires or "1 hour")
    if ref.startswith(("http://", "https://")):
        return ref
    if objects.is_object_uri(ref):
        u = buckets.check(ref)
        import obstore

        store = objects.store_for(u, buckets.settings_for(u))
        try:
            return obstore.sign(store, "GET", u.key, datetime.timedelta(seconds=seconds))
        except Exception as e:  # a store without signing credentials (anonymous, instance roles...)
            raise MediaError(f"cannot sign a URL for {objects.display(ref)}: {type(e).__name__}: {e}") from None
    path = local_path(ref)
    base, key_file = setting("pixelgres.media_url_base").rstrip("/"), setting("pixelgres.media_url_key_file")
    if not base or not key_file:
        raise MediaError("no media server serves local media: start `pixelgres media-server` (it sets "
                         "pixelgres.media_url_base and pixelgres.media_url_key_file)")
    try:
        key = _key(key_file)
    except (OSError, ValueError) as e:
        raise MediaError(f"cannot read the media server's key (pixelgres.media_url_key_file): {e}") from None
    token = links.sign(key, path, int(time.time()) + seconds)
    return f"{base}/m/{token}/{urllib.parse.quote(os.path.basename(path))}"
