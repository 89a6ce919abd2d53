"""Signed, expiring links to media files, for ``pxt.media_url`` and ``pixelgres media-server``.

A link names one file and when it stops working: ``<payload>.<signature>``, both base64url,
the payload the JSON ``[path, expires_at]`` and the signature its HMAC-SHA256 under a key
only the server's OS user reads. The backend signs only a path the caller could read through
pixelgres (``store.local_path`` checked it); the media server serves only what verifies, so
it never takes a path from a request. No plpy: the media server runs outside PostgreSQL.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os

KEY_BYTES = 32


class LinkError(Exception):
    """A link that does not verify: ``status`` is the HTTP answer (403 forged, 410 expired)."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


def new_key_file(path: str) -> bytes:
    """A fresh random key written to ``path`` (mode 0600; links signed before stop working)."""
    key = os.urandom(KEY_BYTES)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key.hex())
    return key


def read_key(path: str) -> bytes:
    with open(path) as f:
        key = bytes.fromhex(f.read().strip())
    if len(key) < KEY_BYTES:
        raise ValueError(f"{path} does not hold a {KEY_BYTES}-byte key")
    return key


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, payload: str) -> str:
    return _b64(hmac.new(key, payload.encode(), hashlib.sha256).digest())


def sign(key: bytes, path: str, expires_at: int) -> str:
    payload = _b64(json.dumps([path, int(expires_at)], separators=(",", ":")).encode())
    return f"{payload}.{_mac(key, payload)}"


def verify(key: bytes, token: str, now: float) -> str:
    """The path a valid, unexpired ``token`` names; LinkError otherwise."""
    payload, _, mac = token.partition(".")
    if not payload or not mac or not hmac.compare_digest(_mac(key, payload), mac):
        raise LinkError("this link is not signed by this server", 403)
    try:
        path, expires_at = json.loads(_unb64(payload))
    except (ValueError, TypeError):
        raise LinkError("this link is malformed", 403) from None
    if not isinstance(path, str) or not isinstance(expires_at, int):
        raise LinkError("this link is malformed", 403)
    if now >= expires_at:
        raise LinkError("this link has expired", 410)
    return path
