"""A backend's side of the shared model server (model_server.py): ``pixelgres.model_server``.

When the setting names the server's socket, local embedding models run there, loaded once
for the whole cluster, and this backend never imports torch; remote API requests go there
too (calls.send), so it never imports a provider's client either. One connection per backend,
kept; while a request is out, a cancel or statement_timeout is checked every INTERRUPT_CHECK
seconds, and on one the connection is dropped (the server discards the answer).
"""
from __future__ import annotations

import contextlib
from multiprocessing.connection import Client

import plpy

from ..media.gucs import setting

INTERRUPT_CHECK = 0.1
_CONN: dict = {}


class ModelServerError(Exception):
    """The model server is not reachable or refused the request."""


ModelServerError.__module__ = "builtins"


def configured() -> str:
    """The model server's socket, or '' when models run in this backend."""
    return (setting("pixelgres.model_server") or "").strip()


def _connect(path: str):
    c = _CONN.get(path)
    if c is not None:
        return c
    try:
        with open(path + ".key", "rb") as f:
            key = bytes.fromhex(f.read().decode().strip())
        c = Client(path, family="AF_UNIX", authkey=key)
    except (OSError, ValueError, EOFError) as e:
        raise ModelServerError(
            f"the model server at {path} (pixelgres.model_server) is not reachable: {type(e).__name__}: {e}; "
            "start it with 'pixelgres model-server', or RESET pixelgres.model_server to run models in each backend")
    _CONN.clear()
    _CONN[path] = c
    return c


def _drop(path: str) -> None:
    c = _CONN.pop(path, None)
    if c is not None:
        with contextlib.suppress(OSError):  # already broken: nothing left to close
            c.close()


def request(msg: tuple) -> dict:
    path = configured()
    conn = _connect(path)
    try:
        conn.send(msg)
        while not conn.poll(INTERRUPT_CHECK):
            plpy.execute("SELECT 1")  # a cancel or statement_timeout takes effect here
        reply = conn.recv()
    except BaseException as e:
        _drop(path)
        if isinstance(e, (OSError, EOFError)):
            raise ModelServerError(f"the model server at {path} closed the connection: {type(e).__name__}: {e}")
        raise
    if "error" in reply:
        raise ValueError(reply["error"])
    return reply


def embed(kind: str, path: str, inputs: list) -> tuple[list, int]:
    """(unit vectors, dimensions) of ``inputs`` by the model in directory ``path``."""
    reply = request(("embed", kind, path, inputs))
    return reply["vectors"], reply["dims"]


def task(kind: str, path: str, inputs: list, opts: dict) -> list:
    """Results of detection, captions or speech (inference.TASKS) on ``inputs`` by the model in ``path``."""
    return request(("task", kind, path, inputs, opts))["results"]


def stats() -> dict:
    return request(("stats",))


def remote(api, ep, kind: str, jobs: list, limits: dict, concurrency: int) -> list:
    """calls.send's jobs run by the server: the endpoint (key included) travels over the
    owner-only socket; results and errors come back as plain data."""
    from .remote import result_from_wire  # only remote calls need it (asyncio and the media stack)

    reply = request(("remote", type(api).__module__, kind, ep.wire(), jobs, limits, concurrency))
    return [result_from_wire(ep, w) for w in reply["results"]]
