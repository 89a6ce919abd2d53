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
import math
import os

from ..core import deps, threads
from ..core.batch import batched
from ..core.errors import MediaError, as_sql
from .encode import pil_bytes
from .resolve import local_path
from .gucs import media_threads
from .store import setting, store_bytes, writer

Image = deps.need("PIL.Image")
ImageOps = deps.need("PIL.ImageOps")
Image.MAX_IMAGE_PIXELS = None  # our own limit below, read from pixelgres.max_image_pixels
if "PILLOW_BLOCKS_MAX" not in os.environ:
    # Keep a few freed image buffers for reuse. Without this, each full-size image the backend
    # allocates comes back from glibc as fresh pages (~1500 page faults for 1024x768), which
    # made pxt.rotate 1.6x slower than the same Pillow calls in a client. Retains at most
    # 4 blocks of <= 16 MiB per backend; PILLOW_BLOCKS_MAX in the server's environment overrides.
    Image.core.set_blocks_max(4)

SWAPS = (5, 6, 7, 8)  # EXIF orientations that exchange width and height


def _limit() -> int:
    return int(setting("pixelgres.max_image_pixels"))


def _open(uri: str, path: str | None = None, limit: int | None = None):
    """The image at ``uri``, opened (not decoded); ``path`` and ``limit`` given when called off
    the main thread, which may not read settings or resolve references (plpy)."""
    path = local_path(uri) if path is None else path
    limit = _limit() if limit is None else limit
    try:
        im = Image.open(path)
    except Exception as e:
        raise MediaError(f"not a decodable image: {uri!r} ({type(e).__name__}: {e})")
    if im.width * im.height > limit:
        raise MediaError(f"image {uri!r} has {im.width}x{im.height} pixels, more than "
                         f"pixelgres.max_image_pixels ({limit})")
    return im


def _check_output(what: str, width: int, height: int, limit: int) -> None:
    """Refuse to allocate a result larger than pixelgres.max_image_pixels (a huge resize or an
    expanded rotate would otherwise grow the backend until the OOM killer ends it, and with it
    every session of the cluster)."""
    if width * height > limit:
        raise MediaError(f"{what} would make a {width}x{height} image, more than "
                         f"pixelgres.max_image_pixels ({limit})")


def _orientation(im) -> int:
    try:
        return int(im.getexif().get(0x0112, 1) or 1)
    except Exception:
        return 1


def load(uri: str, size=None, path: str | None = None, limit: int | None = None):
    """(decoded upright image, source format); with ``size`` (w, h) JPEGs may decode at a
    reduced scale. ``path`` and ``limit`` as for ``_open``."""
    im = _open(uri, path, limit)
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
    """Cheap check that ``uri`` is a complete, decodable image, made on every insert.

    JPEG: the header parses and an end-of-image marker follows the first start-of-scan (0xFF
    bytes are stuffed inside entropy-coded data, so that marker cannot appear there): a file
    cut anywhere before its end fails, data after the marker (motion photos, padding) is fine,
    and no pixel is decoded, which keeps inserts fast. Damage inside the scan data is found
    by the first function that decodes the image (a computed column's error names the row).
    Other formats are decoded: they are rarer and have no such cheap structural check."""
    im = _open(uri)
    try:
        if im.format == "JPEG":
            import mmap

            with open(im.filename, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
                sos = m.find(b"\xff\xda")
                if sos < 0 or m.find(b"\xff\xd9", sos + 2) < 0:
                    raise MediaError(f"image {uri!r} is truncated (no end-of-image marker after the scan)")
        else:
            im.verify()
            im = Image.open(im.filename)
            im.load()
    except MediaError:
        raise
    except Exception as e:
        if "truncated" in str(e):
            raise MediaError(f"image {uri!r} is truncated ({e})")
        raise MediaError(f"image {uri!r} does not decode: {type(e).__name__}: {e}")


_PNG_MODES = ("1", "L", "LA", "I", "I;16", "P", "RGB", "RGBA")


def encode(im, source_format: str | None = None) -> tuple[bytes, str]:
    """(bytes, file extension) of a derived image: JPEG (quality 90) for a JPEG source in a mode
    JPEG holds, else PNG, else TIFF. Runs on any thread, without the GIL (media.encode)."""
    if source_format == "JPEG" and im.mode in ("RGB", "L", "CMYK"):
        fmt, ext, kw = "JPEG", "jpg", {"quality": 90}
    elif im.mode in _PNG_MODES:
        fmt, ext, kw = "PNG", "png", {}
    else:  # F, I;16B, CMYK, YCbCr, LAB...: PNG cannot hold them
        fmt, ext, kw = "TIFF", "tiff", {}
    try:
        return pil_bytes(im, fmt, **kw), ext
    except (KeyError, ValueError, OSError) as e:
        raise MediaError(f"cannot store an image of mode {im.mode}: {e}")


def save(im, source_format: str | None = None) -> str:
    return store_bytes(*encode(im, source_format))


# --- derived images: batched, made on helper threads -------------------------------------------
# Each operation is a check of its arguments (main thread, before any decoding) and a ``make``
# from (uri, path, limit, *arguments) to encoded bytes that touches no plpy, so one statement's
# images are decoded, transformed, encoded and stored on pixelgres.media_threads helpers (Pillow
# releases the GIL in all three, encoding through media.encode; store.writer) while the main
# thread resolves inputs and collects the references.
def _positive(what: str):
    def check(limit: int, width: int, height: int, *_) -> None:
        if width <= 0 or height <= 0:
            raise MediaError(f"{what} to {width}x{height}: width and height must be positive")
    return check


def _check_resize(limit: int, width: int, height: int) -> None:
    _positive("resize")(limit, width, height)
    _check_output(f"resize to {width}x{height}", width, height, limit)


def _make_resize(uri, path, limit, width, height):
    im, fmt = load(uri, (width, height), path, limit)
    return encode(im.resize((width, height)), fmt)


def _make_thumbnail(uri, path, limit, width, height):
    im, fmt = load(uri, (width, height), path, limit)
    im.thumbnail((width, height))
    return encode(im, fmt)


def _make_crop(uri, path, limit, left, top, right, bottom):
    im, src_fmt = load(uri, None, path, limit)
    if not (0 <= left < right <= im.width and 0 <= top < bottom <= im.height):
        raise MediaError(f"crop box ({left}, {top}, {right}, {bottom}) is outside the "
                         f"{im.width}x{im.height} image {uri!r}")
    return encode(im.crop((left, top, right, bottom)), src_fmt)


_TRANSPOSE = {90: "ROTATE_90", 180: "ROTATE_180", 270: "ROTATE_270"}


def _check_rotate(limit: int, angle: float, expand: bool = False) -> None:
    if not math.isfinite(angle):
        raise MediaError(f"rotate by {angle}: the angle must be a finite number of degrees")


def _make_rotate(uri, path, limit, angle, expand=False):
    im, src_fmt = load(uri, None, path, limit)
    a = angle % 360
    w, h = im.size
    if a == 0:
        out = im
    elif a in _TRANSPOSE and (expand or w == h or a == 180):
        out = im.transpose(getattr(Image.Transpose, _TRANSPOSE[int(a)]))  # lossless and fast
    elif a in (90, 270):
        # Same pixels as im.rotate(a) (NEAREST about the centre, same size, corners filled
        # with 0) at a third of the cost: the transposed image, cropped about the centre
        # (crop() fills outside with 0). The offsets reproduce Pillow's rounding for odd w - h.
        d = (w - h) // 2 if a == 90 else -((h - w) // 2)
        out = im.transpose(getattr(Image.Transpose, _TRANSPOSE[int(a)])).crop((-d, d, w - d, h + d))
    else:
        if expand:
            r = math.radians(a)
            c, s = abs(math.cos(r)), abs(math.sin(r))
            _check_output(f"rotate by {angle} with expand", math.ceil(w * c + h * s),
                          math.ceil(w * s + h * c), limit)
        out = im.rotate(angle, expand=expand)
    return encode(out, src_fmt)


def _make_convert(uri, path, limit, mode):
    im, src_fmt = load(uri, None, path, limit)
    try:
        out = im.convert(mode)
    except ValueError as e:
        raise MediaError(f"cannot convert {uri!r} from {im.mode} to mode {mode!r}: {e}")
    return encode(out, src_fmt)


def _no_check(limit, *_):
    return None


def _row_error(e: BaseException) -> BaseException:
    if getattr(e, "sqlstate", None) == "57014":  # a cancel ends the statement, not one row
        raise e
    return as_sql(e)


def derive(calls: list, check, make) -> list:
    """One result (a media reference) or SQL error per call (uri, *arguments), in order."""
    limit = _limit()
    out: list = [None] * len(calls)
    jobs = []
    for i, (uri, *params) in enumerate(calls):
        try:
            check(limit, *params)
            jobs.append((i, uri, local_path(uri), params))
        except Exception as e:
            out[i] = _row_error(e)

    def done(k: int, r) -> None:
        out[jobs[k][0]] = _row_error(r) if isinstance(r, BaseException) else r

    put = writer()
    threads.each(lambda j: put(*make(j[1], j[2], limit, *j[3])), jobs, media_threads(), done)
    return out


@batched("resize")
def resize(calls: list) -> list:
    return derive(calls, _check_resize, _make_resize)


@batched("thumbnail")
def thumbnail(calls: list) -> list:
    return derive(calls, _positive("thumbnail"), _make_thumbnail)


@batched("crop")
def crop(calls: list) -> list:
    return derive(calls, _no_check, _make_crop)


@batched("rotate")
def rotate(calls: list) -> list:
    return derive(calls, _check_rotate, _make_rotate)


@batched("convert")
def convert(calls: list) -> list:
    return derive(calls, _no_check, _make_convert)


def info(uri: str) -> dict:
    im = _open(uri)
    w, h = (im.height, im.width) if _orientation(im) in SWAPS else (im.width, im.height)
    return {"width": w, "height": h, "mode": im.mode, "format": im.format}


def width(uri: str) -> int:
    return info(uri)["width"]


def height(uri: str) -> int:
    return info(uri)["height"]


def mode(uri: str) -> str:
    return info(uri)["mode"]


def format(uri: str) -> str:  # noqa: A001 - the SQL function's name
    return info(uri)["format"]


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
    if max_side is not None and max_side <= 0:
        raise MediaError(f"max_side must be positive, not {max_side}")
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
