"""Image functions (``pxt.resize`` ... in SQL), as functions and as methods of image columns:
``t.image.resize((256, 256))``, ``t.image.width``. Sizes are ``(width, height)`` as in PIL."""
from __future__ import annotations

from ..client import types as T
from ..client.exprs import FuncCall, register_members


def _size(size, what):
    if not isinstance(size, (tuple, list)) or len(size) != 2:
        raise TypeError(f"{what} takes a (width, height) pair, not {size!r}")
    return size


def resize(img, size):
    """Resize to exactly (width, height)."""
    w, h = _size(size, "resize")
    return FuncCall("resize", [img, w, h], col_type=T.Image)


def thumbnail(img, size):
    """Aspect-preserving downscale to fit within (width, height)."""
    w, h = _size(size, "thumbnail")
    return FuncCall("thumbnail", [img, w, h], col_type=T.Image)


def rotate(img, angle, expand: bool = False):
    """Rotate counter-clockwise by ``angle`` degrees (PIL's convention)."""
    return FuncCall("rotate", [img, float(angle)] + ([True] if expand else []), col_type=T.Image)


def crop(img, box):
    """Crop to the (left, upper, right, lower) box."""
    if not isinstance(box, (tuple, list)) or len(box) != 4:
        raise TypeError(f"crop takes a (left, upper, right, lower) box, not {box!r}")
    return FuncCall("crop", [img, *box], col_type=T.Image)


def convert(img, mode: str):
    """Convert to a PIL mode ('L', 'RGB', 'RGBA', ...)."""
    return FuncCall("convert", [img, mode], col_type=T.Image)


def width(img):
    return FuncCall("width", [img], col_type=T.Int)


def height(img):
    return FuncCall("height", [img], col_type=T.Int)


def mode(img):
    return FuncCall("mode", [img], col_type=T.String)


def get_metadata(img):
    """Width, height, mode, format as JSON (``pxt.image_info``)."""
    return FuncCall("image_info", [img], col_type=T.Json)


def image_url(img, max_side: int | None = None):
    """A ``data:`` URI of the image (downscaled to ``max_side``): for LLM messages and HTML."""
    return FuncCall("image_url", [img] + ([max_side] if max_side else []), col_type=T.String)


b64_encode = image_url

MEMBERS = {
    "resize": ("method", resize), "thumbnail": ("method", thumbnail), "rotate": ("method", rotate),
    "crop": ("method", crop), "convert": ("method", convert), "get_metadata": ("method", get_metadata),
    "image_url": ("method", image_url), "b64_encode": ("method", image_url),
    "width": ("property", width), "height": ("property", height), "mode": ("property", mode),
}
register_members(T.Image, MEMBERS)
