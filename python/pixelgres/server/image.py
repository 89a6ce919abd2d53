"""Image operations over media references (Pillow), used by the pxt.* image SQL functions.

Images are seen as a viewer shows them: EXIF orientation is applied before any operation
and in width()/height(). Derived images go to the media store: JPEG (quality 90) when the
source is JPEG and the result is RGB/L/CMYK, PNG otherwise. Resizes and thumbnails of JPEGs
use draft decoding (DCT scaling): the decoder produces at most a 2x larger image than asked
for, never a smaller one, so the final resample is as exact as from a full decode while a
1024x768 -> 256x256 thumbnail decodes a quarter of the pixels.
"""
import base64
import io

from . import deps
from .media import MediaError, local_path, setting, store_bytes

Image = deps.need("PIL.Image")
ImageOps = deps.need("PIL.ImageOps")
Image.MAX_IMAGE_PIXELS = None  # our own limit below, read from pixelgres.max_image_pixels

SWAPS = (5, 6, 7, 8)  # EXIF orientations that exchange width and height


def _open(uri: str):
    path = local_path(uri)
    try:
        im = Image.open(path)
    except Exception as e:
        raise MediaError(f"not a decodable image: {uri!r} ({type(e).__name__}: {e})")
    limit = int(setting("pixelgres.max_image_pixels"))
    if im.width * im.height > limit:
        raise MediaError(f"image {uri!r} has {im.width}x{im.height} pixels, more than "
                         f"pixelgres.max_image_pixels ({limit})")
    return im


def _orientation(im) -> int:
    try:
        return int(im.getexif().get(0x0112, 1) or 1)
    except Exception:
        return 1


def load(uri: str, size=None):
    """(decoded upright image, source format); with ``size`` (w, h) JPEGs may decode at a
    reduced scale."""
    im = _open(uri)
    fmt = im.format
    o = _orientation(im)
    if size is not None and im.format == "JPEG":
        w, h = size
        im.draft(None, (h, w) if o in SWAPS else (w, h))
    try:
        im.load()
    except Exception as e:
        raise MediaError(f"image {uri!r} does not decode: {type(e).__name__}: {e}")
    if o != 1:
        im = ImageOps.exif_transpose(im)
    return im, fmt


def validate(uri: str) -> None:
    """Cheap check that ``uri`` is a complete, decodable image (no full decode for JPEG)."""
    im = _open(uri)
    try:
        if im.format == "JPEG":
            with open(im.filename, "rb") as f:
                f.seek(-2, 2)
                tail = f.read(2)
            if tail != b"\xff\xd9":
                raise MediaError(f"image {uri!r} is truncated (no JPEG end marker)")
            im.draft(None, (1, 1))  # decode at 1/8 scale: catches corrupt scans cheaply
            im.load()
        else:
            im.verify()
            im = Image.open(im.filename)
            im.load()
    except MediaError:
        raise
    except Exception as e:
        raise MediaError(f"image {uri!r} does not decode: {type(e).__name__}: {e}")


def save(im, source_format: str | None = None) -> str:
    buf = io.BytesIO()
    if source_format == "JPEG" and im.mode in ("RGB", "L", "CMYK"):
        im.save(buf, "JPEG", quality=90)
        return store_bytes(buf.getvalue(), "jpg")
    if im.mode in ("F", "I;16B"):
        im.save(buf, "TIFF")
        return store_bytes(buf.getvalue(), "tiff")
    im.save(buf, "PNG")
    return store_bytes(buf.getvalue(), "png")


# --- the SQL-facing operations -----------------------------------------------------------------
def resize(uri: str, width: int, height: int) -> str:
    if width <= 0 or height <= 0:
        raise MediaError(f"resize to {width}x{height}: width and height must be positive")
    im, fmt = load(uri, (width, height))
    return save(im.resize((width, height)), fmt)


def thumbnail(uri: str, width: int, height: int) -> str:
    if width <= 0 or height <= 0:
        raise MediaError(f"thumbnail to {width}x{height}: width and height must be positive")
    im, fmt = load(uri, (width, height))
    im.thumbnail((width, height))
    return save(im, fmt)


def crop(uri: str, left: int, top: int, right: int, bottom: int) -> str:
    im, src_fmt = load(uri)
    if not (0 <= left < right <= im.width and 0 <= top < bottom <= im.height):
        raise MediaError(f"crop box ({left}, {top}, {right}, {bottom}) is outside the "
                         f"{im.width}x{im.height} image {uri!r}")
    return save(im.crop((left, top, right, bottom)), src_fmt)


_TRANSPOSE = {90: "ROTATE_90", 180: "ROTATE_180", 270: "ROTATE_270"}


def rotate(uri: str, angle: float, expand: bool = False) -> str:
    im, src_fmt = load(uri)
    a = angle % 360
    if a == 0:
        out = im
    elif a in _TRANSPOSE and (expand or im.width == im.height or a == 180):
        out = im.transpose(getattr(Image.Transpose, _TRANSPOSE[int(a)]))  # lossless and fast
    else:
        out = im.rotate(angle, expand=expand)
    return save(out, src_fmt)


def convert(uri: str, mode: str) -> str:
    im, src_fmt = load(uri)
    try:
        out = im.convert(mode)
    except ValueError as e:
        raise MediaError(f"cannot convert {uri!r} from {im.mode} to mode {mode!r}: {e}")
    return save(out, src_fmt)


def info(uri: str) -> dict:
    im = _open(uri)
    w, h = (im.height, im.width) if _orientation(im) in SWAPS else (im.width, im.height)
    return {"width": w, "height": h, "mode": im.mode, "format": im.format}


def to_bytes(uri: str, fmt: str | None = None) -> bytes:
    if fmt is None:
        with open(local_path(uri), "rb") as f:
            return f.read()
    im, _ = load(uri)
    buf = io.BytesIO()
    try:
        if fmt.upper() in ("JPEG", "JPG") and im.mode not in ("RGB", "L", "CMYK"):
            im = im.convert("RGB")
        im.save(buf, fmt.upper().replace("JPG", "JPEG"))
    except (KeyError, ValueError, OSError) as e:
        raise MediaError(f"cannot encode {uri!r} as {fmt!r}: {e}")
    return buf.getvalue()


def data_uri(uri: str, max_side: int | None = None) -> str:
    """data:image/...;base64 URI; images larger than ``max_side`` are downscaled first."""
    im = _open(uri)
    o = _orientation(im)
    if (max_side is None or max(im.size) <= max_side) and o == 1 and im.format in ("JPEG", "PNG", "GIF", "WEBP"):
        with open(im.filename, "rb") as f:
            data = f.read()
        mime = Image.MIME[im.format]
    else:
        img, _ = load(uri, (max_side, max_side) if max_side else None)
        if max_side:
            img.thumbnail((max_side, max_side))
        fmt = "JPEG" if img.mode in ("RGB", "L") else "PNG"
        buf = io.BytesIO()
        img.save(buf, fmt)
        data, mime = buf.getvalue(), Image.MIME[fmt]
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def from_bytes(data: bytes) -> str:
    """Store encoded image bytes (validated) and return their media reference."""
    if not data:
        raise MediaError("empty image bytes")
    try:
        im = Image.open(io.BytesIO(data))
        limit = int(setting("pixelgres.max_image_pixels"))
        if im.width * im.height > limit:
            raise MediaError(f"image of {im.width}x{im.height} pixels exceeds pixelgres.max_image_pixels")
        im.load()
    except MediaError:
        raise
    except Exception as e:
        raise MediaError(f"bytes are not a decodable image: {type(e).__name__}: {e}")
    ext = {"JPEG": "jpg"}.get(im.format, (im.format or "bin").lower())
    return store_bytes(data, ext)


def from_data_uri(text: str) -> str:
    head, sep, payload = (text or "").partition(",")
    if not sep or not head.startswith("data:") or not head.endswith(";base64"):
        raise MediaError("not a base64 data URI (data:<mime>;base64,...)")
    try:
        data = base64.b64decode(payload, validate=True)
    except ValueError as e:
        raise MediaError(f"invalid base64 in data URI: {e}")
    return from_bytes(data)
