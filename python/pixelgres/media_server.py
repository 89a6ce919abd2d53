"""``pixelgres media-server``: a small read-only HTTP server for the links ``pxt.media_url`` signs.

It answers ``GET``/``HEAD /m/<token>/<name>`` only, for a token that verifies under the
cluster's key and has not expired (server/media/links.py); it never takes a path from a
request. Files go out through werkzeug's ``send_file``: the type from the name, ETag and
Last-Modified, and Range requests (a video plays and seeks in a browser). Anything else is
403 (forged), 410 (expired) or 404.
"""
from __future__ import annotations

import mimetypes
import os
import time

from werkzeug.exceptions import HTTPException, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.utils import send_file
from werkzeug.wrappers import Request, Response

from .server.media import links


class MediaApp:
    """The WSGI application; ``now`` is injectable so tests check expiry without waiting."""

    def __init__(self, key: bytes, now=time.time, max_age: int = 300):
        self.key, self.now, self.max_age = key, now, max_age
        self.urls = Map([Rule("/m/<token>/<name>", endpoint="media", methods=["GET", "HEAD"])])

    def __call__(self, environ, start_response):
        request = Request(environ)
        try:
            self.urls.bind_to_environ(environ).match()
            token = request.path.split("/")[2]
            try:
                path = links.verify(self.key, token, self.now())
            except links.LinkError as e:
                response = Response(str(e), status=e.status, mimetype="text/plain")
            else:
                if not os.path.isfile(path):
                    raise NotFound("the file of this link is gone")
                mime = mimetypes.guess_type(path)[0] or "application/octet-stream"
                response = send_file(path, environ, mimetype=mime, conditional=True, etag=True,
                                     max_age=self.max_age)
                response.headers["Cache-Control"] = f"private, max-age={self.max_age}"
        except HTTPException as e:
            response = e.get_response(environ)
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response(environ, start_response)


def make_server(host: str, port: int, key: bytes):
    """A threaded werkzeug server for ``MediaApp`` (port 0: any free port, see ``.server_port``)."""
    from werkzeug.serving import make_server as _make

    return _make(host, port, MediaApp(key), threaded=True)
