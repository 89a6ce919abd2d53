"""Checking a media value on insert: an image must decode, other media must be readable files."""
from . import store


def media(value: str, kind: str) -> None:
    if kind == "image":
        from . import image  # lazy: Pillow loads only when an image column is written

        image.validate(value)
    else:
        store.local_path(value)
