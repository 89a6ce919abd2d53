"""Chat messages from table data: parsing, and images in the form each provider expects.

Users write one message shape for every provider: OpenAI's, where an image is a part
``{"type": "image_url", "image_url": <data URI, http(s) URL or media reference>}``. Each
provider module turns such a part into its own form (Anthropic's base64 ``source``, Gemini's
``inline_data``, Bedrock's bytes, Ollama's ``images`` list) with ``convert``; parts already
in a provider's native form pass unchanged. Images are downscaled to ``max_side`` first.
"""
from __future__ import annotations

import base64
import io
import json

from ..core.errors import MediaError
from ..media.store import setting

DEFAULT_MAX_SIDE = 2048  # images larger than this are downscaled before they are sent (0: never)


def max_side(value) -> int:
    """The image_max_side argument of a chat function: NULL means the default."""
    return DEFAULT_MAX_SIDE if value is None else int(value)


def parse(raw, what: str = "messages") -> list:
    try:
        messages = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError as e:
        raise ValueError(f"{what} is not valid JSON: {e}")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        raise ValueError(f"{what} must be a non-empty JSON array of message objects")
    return messages


def fit_data_uri(uri: str, max_side: int) -> str:
    """Downscale an image data URI whose larger side exceeds ``max_side``."""
    header, sep, payload = uri.partition(",")
    if not sep or not header.startswith("data:image/") or not header.endswith(";base64"):
        return uri
    from ..media import image  # lazy: Pillow loads for image inputs only

    try:
        data = base64.b64decode(payload, validate=False)
        im = image.Image.open(io.BytesIO(data))
        w, h = im.size
    except Exception as e:
        raise ValueError(f"image data URI in messages does not decode: {type(e).__name__}: {e}")
    if max(w, h) <= max_side:
        return uri
    limit = int(setting("pixelgres.max_image_pixels"))
    if w * h > limit:
        raise ValueError(f"image in messages has {w}x{h} pixels, more than pixelgres.max_image_pixels ({limit})")
    if im.format == "JPEG":
        im.draft("RGB", (max_side, max_side))
    im = image.ImageOps.exif_transpose(im)
    im.thumbnail((max_side, max_side))
    fmt = "JPEG" if im.mode in ("RGB", "L") else "PNG"
    buf = io.BytesIO()
    im.save(buf, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return f"data:{image.Image.MIME[fmt]};base64,{base64.b64encode(buf.getvalue()).decode()}"


def image_uri(url, max_side: int, keep_urls: bool) -> str:
    """A data URI of the image at ``url`` (a data URI, an http(s) URL or a media reference).
    ``keep_urls``: http(s) URLs are sent as they are (the provider fetches them)."""
    if not isinstance(url, str) or not url:
        raise ValueError("image_url without a url in messages (is the image NULL?)")
    if url.startswith("data:"):
        return fit_data_uri(url, max_side) if max_side > 0 else url
    if keep_urls and url.startswith(("http://", "https://")):
        return url
    from ..media import image  # lazy: Pillow, as above

    try:  # a media reference, or a URL the server fetches under the media host rules
        return image.data_uri(url, max_side if max_side > 0 else None)
    except MediaError as e:
        raise ValueError(f"image in messages: {e}")


def split_data_uri(uri: str) -> tuple[str, str]:
    """(mime type, base64 payload) of a data URI."""
    header, sep, payload = uri.partition(",")
    if not sep or not header.startswith("data:image/") or not header.endswith(";base64"):
        raise ValueError("an image in messages must be a base64 image data URI here")
    return header[5:-7], payload


def convert(messages: list, max_side: int, make_part, keep_urls: bool = False, key: str = "content"):
    """Replace every OpenAI-style image part of ``messages`` by ``make_part(uri, part)`` (uri: a
    data URI, or an http(s) URL if ``keep_urls``); returns (text characters, images) for the
    rate-limit estimate. ``key``: where a message holds its parts ("parts" for Gemini)."""
    chars = images = 0
    for m in messages:
        content = m.get(key)
        if isinstance(content, str):
            chars += len(content)
            continue
        if not isinstance(content, list):
            continue
        for i, part in enumerate(content):
            if not isinstance(part, dict):
                continue
            if "image_url" in part:
                iu = part["image_url"]
                url = iu if isinstance(iu, str) else (iu or {}).get("url")
                content[i] = make_part(image_uri(url, max_side, keep_urls), part)
                images += 1
            elif isinstance(part.get("text"), str):
                chars += len(part["text"])
    return chars, images


def mime_format(mime: str) -> str:
    """image/jpeg -> jpeg (Bedrock's ``format``)."""
    return mime.split("/", 1)[1].lower()
