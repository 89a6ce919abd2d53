"""Checking a media value on write, wherever it lives: an image must decode; a video, audio
file or document must open and show its headers (media.probe: no decoding), within the size
limit. So a fake or broken file is an error at insert, naming its row and column, and not at
the first read."""
from . import probe, store


def media(value: str, kind: str) -> None:
    if kind == "image":
        from . import image  # lazy: Pillow loads only when an image column is written

        image.validate(value)
        return
    path = store.local_path(value)
    store.check_limits(value, path)
    probe.probe(path, kind, value)
