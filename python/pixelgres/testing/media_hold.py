"""Fault injection for tests of the media helper threads (``pxt_test.media_hold`` and
``pxt_test.media_release`` in batch_probe.sql, test databases only): until released, each
pxt.rotate of an input whose name ends in ``hold.png`` appends the name of the thread that
runs it to a marker file and, if asked, blocks there, so that a test can cancel a statement
while a helper is known to be busy, without guessing how long anything takes."""
import threading

from pixelgres.server.media import image

_RELEASE = threading.Event()
_ORIGINAL = image._make_rotate


def hold(marker: str, block: bool) -> None:
    _RELEASE.clear()

    def held(uri, path, limit, *args):
        if uri.endswith("hold.png"):
            with open(marker, "a") as f:
                f.write(threading.current_thread().name + "\n")
            if block:
                _RELEASE.wait()
        return _ORIGINAL(uri, path, limit, *args)

    image._make_rotate = held


def release() -> None:
    _RELEASE.set()
    image._make_rotate = _ORIGINAL
