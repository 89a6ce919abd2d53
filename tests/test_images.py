"""Image functions and the media store, end to end through SQL, checked pixel by pixel.

Every image is made here with Pillow (several formats and modes, EXIF-rotated JPEGs) and
written under ``files`` (in pixelgres.allowed_roots); results are checked for what they are:
sizes, modes, formats and pixel colours, content-addressed store references and files.
Argument checks, pixel limits, truncated JPEGs, store and data URI errors and bad media
values, which need no Python to check, are pg_regress tests: test/sql/media.sql and
test/sql/bad_media.sql (tests/test_regress.py runs them).
"""
from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import urllib.parse
from pathlib import Path

import psycopg
import pytest
from PIL import Image, ImageOps

# quadrant colours: top-left, top-right, bottom-left, bottom-right
RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 200, 0), (0, 0, 255), (255, 255, 255)
QUAD_RGB = (RED, GREEN, BLUE, WHITE)
QUAD_L = (30, 90, 160, 230)
QUAD_RGBA = ((255, 0, 0, 255), (0, 200, 0, 160), (0, 0, 255, 80), (255, 255, 255, 0))
SIZE = (64, 48)

REF_RE = re.compile(r"^media://([0-9a-f]{64})\.([a-z0-9]+)$")


# --- helpers ------------------------------------------------------------------------------
def quadrants(mode: str = "RGB", size=SIZE) -> Image.Image:
    """An image whose four quadrants have the colours of QUAD_<mode> (P: RGB quantized)."""
    w, h = size
    base = {"L": "L", "RGBA": "RGBA"}.get(mode, "RGB")
    colors = {"L": QUAD_L, "RGBA": QUAD_RGBA}.get(mode, QUAD_RGB)
    im = Image.new(base, size)
    for (x, y), c in zip([(0, 0), (1, 0), (0, 1), (1, 1)], colors):
        im.paste(c, (x * w // 2, y * h // 2, (x + 1) * w // 2, (y + 1) * h // 2))
    if mode == "P":
        im = im.convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    return im


def corners(im: Image.Image) -> list:
    """Pixels at the centres of the four quadrants (TL, TR, BL, BR)."""
    w, h = im.size
    return [im.getpixel((w // 4, h // 4)), im.getpixel((3 * w // 4, h // 4)),
            im.getpixel((w // 4, 3 * h // 4)), im.getpixel((3 * w // 4, 3 * h // 4))]


def pixels(im: Image.Image) -> bytes:
    """RGBA pixels, with the colour of fully transparent pixels (which encoders drop) zeroed."""
    data = bytearray(im.convert("RGBA").tobytes())
    for i in range(0, len(data), 4):
        if data[i + 3] == 0:
            data[i:i + 3] = b"\0\0\0"
    return bytes(data)


def close(a, b, tol: int = 12) -> bool:
    a = a if isinstance(a, tuple) else (a,)
    b = b if isinstance(b, tuple) else (b,)
    return len(a) == len(b) and all(abs(x - y) <= tol for x, y in zip(a, b))


def assert_colors(im: Image.Image, expected, tol: int = 12, mode: str | None = None):
    im = im.convert(mode) if mode else im
    got = corners(im)
    assert all(close(g, e, tol) for g, e in zip(got, expected)), (got, expected)


def write(files: Path, name: str, im: Image.Image, fmt: str, **kw) -> str:
    p = files / name
    im.save(p, fmt, **kw)
    os.chmod(p, 0o644)
    return str(p)


def write_bytes(files: Path, name: str, data: bytes) -> str:
    p = files / name
    p.write_bytes(data)
    os.chmod(p, 0o644)
    return str(p)


def jpeg_bytes(im: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", **kw)
    return buf.getvalue()


def one(db, query: str, *params):
    return db.execute(query, params).fetchone()[0]


def fetch_image(db, ref: str) -> Image.Image:
    """A stored or referenced image, as the server's bytes decoded here."""
    im = Image.open(io.BytesIO(one(db, "SELECT pxt.to_bytes(%s::pxt.image)", ref)))
    im.load()
    return im


def store_file(db, ref: str) -> bytes:
    """The bytes of the store file behind ``ref``, read by the server (works for any backend)."""
    path = one(db, "SELECT pxt.media_path(%s)", ref)
    return bytes(one(db, "SELECT pg_read_binary_file(%s)", path))


def data_uri_bytes(uri: str) -> tuple[str, bytes]:
    head, _, payload = uri.partition(",")
    m = re.fullmatch(r"data:(image/[a-z+.-]+);base64", head)
    assert m, head
    return m.group(1), base64.b64decode(payload, validate=True)


# --- formats and modes ----------------------------------------------------------------------
# (id, Pillow format, file extension, mode made, mode the server reports, save options,
#  colour tolerance, store extension of to_bytes/image_from_bytes)
FORMATS = [
    ("jpeg-rgb", "JPEG", "jpg", "RGB", "RGB", {"quality": 95}, 24, "jpg"),
    ("jpeg-l", "JPEG", "jpg", "L", "L", {"quality": 95}, 12, "jpg"),
    ("png-rgb", "PNG", "png", "RGB", "RGB", {}, 0, "png"),
    ("png-rgba", "PNG", "png", "RGBA", "RGBA", {}, 0, "png"),
    ("png-p", "PNG", "png", "P", "P", {}, 0, "png"),
    ("png-l", "PNG", "png", "L", "L", {}, 0, "png"),
    ("webp-rgb", "WEBP", "webp", "RGB", "RGB", {"quality": 95}, 24, "webp"),
    ("webp-rgba", "WEBP", "webp", "RGBA", "RGBA", {"lossless": True}, 0, "webp"),
    ("gif-p", "GIF", "gif", "P", "P", {}, 0, "gif"),
    ("bmp-rgb", "BMP", "bmp", "RGB", "RGB", {}, 0, "bmp"),
    ("tiff-rgb", "TIFF", "tiff", "RGB", "RGB", {}, 0, "tiff"),
    ("tiff-rgba", "TIFF", "tif", "RGBA", "RGBA", {}, 0, "tiff"),
]


def expected_colors(mode: str):
    return {"L": QUAD_L, "RGBA": QUAD_RGBA}.get(mode, QUAD_RGB)


def check_colors(im: Image.Image, mode: str, tol: int):
    """Colours of an image derived from quadrants(mode) (alpha-0 pixels: only alpha counts)."""
    tol = max(tol, 3)
    if mode == "RGBA":
        got = corners(im.convert("RGBA"))
        for g, e in zip(got, QUAD_RGBA):
            assert close(g[3], e[3], tol), (got, QUAD_RGBA)
            if e[3]:
                assert close(g[:3], e[:3], tol), (got, QUAD_RGBA)
    elif mode == "L":
        assert_colors(im, QUAD_L, tol, mode="L")
    else:
        assert_colors(im, QUAD_RGB, tol, mode="RGB")


@pytest.mark.parametrize("case", FORMATS, ids=[f[0] for f in FORMATS])
def test_every_function_on_each_format(db, files, case):
    _, fmt, ext, mode, server_mode, opts, tol, store_ext = case
    src = quadrants(mode)
    path = write(files, f"img.{ext}", src, fmt, **opts)
    raw = Path(path).read_bytes()
    derived_ext = "jpg" if fmt == "JPEG" else "png"  # JPEG stays JPEG, everything else PNG

    # metadata
    assert one(db, "SELECT pxt.width(%s)", path) == 64
    assert one(db, "SELECT pxt.height(%s)", path) == 48
    assert one(db, "SELECT pxt.mode(%s)", path) == server_mode
    assert one(db, "SELECT pxt.format(%s)", path) == fmt
    assert one(db, "SELECT pxt.image_info(%s)", path) == {
        "width": 64, "height": 48, "mode": server_mode, "format": fmt}

    # resize: exact size, same mode, colours where they were
    ref = one(db, "SELECT pxt.resize(%s, 40, 30)", path)
    m = REF_RE.match(ref)
    assert m and m.group(2) == derived_ext, ref
    out = fetch_image(db, ref)
    assert out.size == (40, 30) and out.mode == server_mode
    assert one(db, "SELECT pxt.format(%s)", ref) == ("JPEG" if derived_ext == "jpg" else "PNG")
    check_colors(out, mode, tol)
    # the same operation on the same content is the same reference (content addressed)
    assert one(db, "SELECT pxt.resize(%s, 40, 30)", path) == ref
    assert hashlib.sha256(store_file(db, ref)).hexdigest() == m.group(1)

    # thumbnail: aspect preserving, never larger than asked
    out = fetch_image(db, one(db, "SELECT pxt.thumbnail(%s, 32, 32)", path))
    assert out.size == (32, 24)
    check_colors(out, mode, tol)

    # crop: the top-right quadrant is all the top-right colour
    out = fetch_image(db, one(db, "SELECT pxt.crop(%s, 32, 0, 64, 24)", path))
    assert out.size == (32, 24)
    want = expected_colors(mode)[1]
    for xy in [(2, 2), (16, 12), (29, 21)]:
        px = out.convert("RGBA" if mode == "RGBA" else ("L" if mode == "L" else "RGB")).getpixel(xy)
        assert close(px, want, max(tol, 3)), (xy, px, want)

    # rotate: 180 swaps corners; 90 with expand turns counter-clockwise and swaps the sides
    out = fetch_image(db, one(db, "SELECT pxt.rotate(%s, 180)", path))
    assert out.size == (64, 48)
    c = expected_colors(mode)
    check_same_corners(out, (c[3], c[2], c[1], c[0]), mode, tol)
    out = fetch_image(db, one(db, "SELECT pxt.rotate(%s, 90, expand => true)", path))
    assert out.size == (48, 64)
    check_same_corners(out, (c[1], c[3], c[0], c[2]), mode, tol)

    # convert
    out = fetch_image(db, one(db, "SELECT pxt.convert(%s, 'L')", path))
    assert out.mode == "L" and out.size == (64, 48)
    out = fetch_image(db, one(db, "SELECT pxt.convert(%s, 'RGBA')", path))
    assert out.mode == "RGBA"
    check_colors(out, mode, tol)

    # to_bytes: the file itself, or re-encoded; image_from_bytes stores by content
    data = one(db, "SELECT pxt.to_bytes(%s)", path)
    assert data == raw
    ref2 = one(db, "SELECT pxt.image_from_bytes(%s)", data)
    assert ref2 == f"media://{hashlib.sha256(raw).hexdigest()}.{store_ext}"
    assert store_file(db, ref2) == raw
    assert one(db, "SELECT pxt.media_path(%s)", ref2).endswith(f"{hashlib.sha256(raw).hexdigest()}.{store_ext}")
    png = one(db, "SELECT pxt.to_bytes(%s, 'PNG')", path)
    out = Image.open(io.BytesIO(png))
    assert out.format == "PNG" and out.size == (64, 48)
    check_colors(out, mode, tol)
    if tol == 0:  # lossless source: exactly the pixels that were written
        assert pixels(out) == pixels(src)
    # round trip: the PNG bytes back through image_from_bytes give the same pixels
    back = fetch_image(db, one(db, "SELECT pxt.image_from_bytes(%s)", png))
    assert back.tobytes() == Image.open(io.BytesIO(png)).tobytes()

    # image_url: a data URI that decodes to the same pixels
    uri = one(db, "SELECT pxt.image_url(%s)", path)
    mime, payload = data_uri_bytes(uri)
    if fmt in ("JPEG", "PNG", "GIF", "WEBP"):
        assert mime == Image.MIME[fmt] and payload == raw  # served as is
    else:
        assert mime == ("image/png" if mode == "RGBA" else "image/jpeg")
    out = Image.open(io.BytesIO(payload))
    assert out.size == (64, 48)
    check_colors(out, mode, max(tol, 24 if mime == "image/jpeg" else 0))
    if tol == 0 and mime != "image/jpeg":
        assert pixels(out) == pixels(src)
    # and back: image_from_data_uri stores the same content
    ref3 = one(db, "SELECT pxt.image_from_data_uri(%s)", uri)
    assert REF_RE.match(ref3).group(1) == hashlib.sha256(payload).hexdigest()
    assert one(db, "SELECT pxt.width(%s)", ref3) == 64
    # downscaled data URI
    mime, payload = data_uri_bytes(one(db, "SELECT pxt.image_url(%s, 16)", path))
    assert Image.open(io.BytesIO(payload)).size == (16, 12)


def check_same_corners(im: Image.Image, expected, mode: str, tol: int):
    tol = max(tol, 3)
    conv = "RGBA" if mode == "RGBA" else ("L" if mode == "L" else "RGB")
    got = corners(im.convert(conv))
    for g, e in zip(got, expected):
        if mode == "RGBA":
            assert close(g[3], e[3], tol), (got, expected)
            if e[3]:
                assert close(g[:3], e[:3], tol), (got, expected)
        else:
            assert close(g, e, tol), (got, expected)


def test_file_uris_and_store_refs_are_media_values(db, files):
    path = write(files, "my photo #1.png", quadrants(), "PNG")
    uri = "file://" + urllib.parse.quote(path)
    assert one(db, "SELECT pxt.width(%s)", uri) == 64
    assert one(db, "SELECT pxt.width(%s)", "file://localhost" + urllib.parse.quote(path)) == 64
    assert one(db, "SELECT pxt.media_path(%s)", uri) == path
    # the same content by path, URI or store reference gives the same derived image
    ref = one(db, "SELECT pxt.image_from_bytes(%s)", Path(path).read_bytes())
    r1, r2, r3 = (one(db, "SELECT pxt.resize(%s, 8, 8)", v) for v in (path, uri, ref))
    assert r1 == r2 == r3
    # derived images chain: a resize of a crop of a store reference
    ref4 = one(db, "SELECT pxt.resize(pxt.crop(%s, 0, 0, 32, 24), 10, 10)", ref)
    out = fetch_image(db, ref4)
    assert out.size == (10, 10) and close(out.getpixel((5, 5)), RED, 3)


# --- EXIF orientation ------------------------------------------------------------------------
def oriented_jpeg(files: Path, orientation: int, name: str = "oriented.jpg") -> str:
    """A 64x48 JPEG as stored (quadrants RED, GREEN / BLUE, WHITE) with an EXIF orientation."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    return write(files, name, quadrants(), "JPEG", quality=95, exif=exif.tobytes())


def test_exif_orientation_6_is_seen_upright(db, files):
    # Orientation 6: a viewer turns the stored 64x48 image 90 degrees clockwise, so it shows
    # a 48x64 portrait with the stored top-left (red) in its top-right corner:
    #   stored  RED   GREEN      shown  BLUE   RED
    #           BLUE  WHITE             WHITE  GREEN
    upright = (BLUE, RED, WHITE, GREEN)
    path = oriented_jpeg(files, 6)
    viewer = ImageOps.exif_transpose(Image.open(path))  # what Pillow's viewer logic shows
    assert viewer.size == (48, 64)
    assert_colors(viewer, upright, 24)

    assert one(db, "SELECT pxt.width(%s)", path) == 48
    assert one(db, "SELECT pxt.height(%s)", path) == 64
    assert one(db, "SELECT pxt.image_info(%s)", path) == {"width": 48, "height": 64, "mode": "RGB", "format": "JPEG"}

    out = fetch_image(db, one(db, "SELECT pxt.resize(%s, 24, 32)", path))
    assert out.size == (24, 32)
    assert_colors(out, upright, 24)
    assert out.getexif().get(0x0112, 1) == 1  # pixels are upright: no orientation to apply again

    out = fetch_image(db, one(db, "SELECT pxt.thumbnail(%s, 30, 30)", path))
    assert out.height == 30 and out.width in (22, 23)
    assert_colors(out, upright, 24)

    # crop boxes are in upright coordinates: the top-right quadrant is red
    out = fetch_image(db, one(db, "SELECT pxt.crop(%s, 24, 0, 48, 32)", path))
    assert out.size == (24, 32)
    assert close(out.getpixel((12, 16)), RED, 24)

    # rotate 90 (counter-clockwise) of the upright image: 64x48 with red top-left
    out = fetch_image(db, one(db, "SELECT pxt.rotate(%s, 90, expand => true)", path))
    assert out.size == (64, 48)
    assert_colors(out, (RED, GREEN, BLUE, WHITE), 24)

    # to_bytes: the file as is (a viewer applies its EXIF), or re-encoded upright
    assert one(db, "SELECT pxt.to_bytes(%s)", path) == Path(path).read_bytes()
    out = Image.open(io.BytesIO(one(db, "SELECT pxt.to_bytes(%s, 'PNG')", path)))
    assert out.size == (48, 64)
    assert_colors(out, upright, 24)

    # image_url re-encodes upright (a data URI consumer may ignore EXIF)
    _, payload = data_uri_bytes(one(db, "SELECT pxt.image_url(%s)", path))
    out = Image.open(io.BytesIO(payload))
    assert out.size == (48, 64) and out.getexif().get(0x0112, 1) == 1
    assert_colors(out, upright, 24)
    _, payload = data_uri_bytes(one(db, "SELECT pxt.image_url(%s, 32)", path))
    assert Image.open(io.BytesIO(payload)).size == (24, 32)


def test_every_exif_orientation_matches_a_viewer(db, files):
    for orientation in range(1, 9):
        path = oriented_jpeg(files, orientation, f"o{orientation}.jpg")
        viewer = ImageOps.exif_transpose(Image.open(path))
        w, h = viewer.size
        assert (w, h) == ((48, 64) if orientation >= 5 else (64, 48))
        assert (one(db, "SELECT pxt.width(%s)", path), one(db, "SELECT pxt.height(%s)", path)) == (w, h), orientation
        out = fetch_image(db, one(db, "SELECT pxt.resize(%s, %s, %s)", path, w // 2, h // 2))
        assert out.size == (w // 2, h // 2), orientation
        assert_colors(out, corners(viewer), 24)
        out = fetch_image(db, one(db, "SELECT pxt.thumbnail(%s, 16, 16)", path))
        assert max(out.size) == 16 and (out.width > out.height) == (w > h), orientation
        assert_colors(out, corners(viewer), 40)


# --- modes ------------------------------------------------------------------------------------
def test_grayscale_stays_grayscale(db, files):
    path = write(files, "gray.jpg", quadrants("L"), "JPEG", quality=95)
    assert one(db, "SELECT pxt.mode(%s)", path) == "L"
    for q in ("SELECT pxt.resize(%s, 32, 24)", "SELECT pxt.thumbnail(%s, 32, 32)", "SELECT pxt.rotate(%s, 180)"):
        ref = one(db, q, path)
        assert ref.endswith(".jpg") and one(db, "SELECT pxt.mode(%s)", ref) == "L"
    assert_colors(fetch_image(db, one(db, "SELECT pxt.resize(%s, 32, 24)", path)), QUAD_L, 8)
    # RGB -> L uses the ITU-R 601-2 luma weights
    rgb = write(files, "rgb.png", quadrants(), "PNG")
    out = fetch_image(db, one(db, "SELECT pxt.convert(%s, 'L')", rgb))
    luma = [round((r * 299 + g * 587 + b * 114) / 1000) for r, g, b in QUAD_RGB]
    assert out.mode == "L" and out.format == "PNG"
    assert_colors(out, luma, 1)
    # 1-bit (bilevel) images are stored as PNG too
    out = fetch_image(db, one(db, "SELECT pxt.convert(%s, '1')", rgb))
    assert out.mode == "1"


def test_rgba_png_keeps_alpha(db, files):
    path = write(files, "alpha.png", quadrants("RGBA"), "PNG")
    for q, size in [("SELECT pxt.resize(%s, 32, 24)", (32, 24)), ("SELECT pxt.thumbnail(%s, 16, 16)", (16, 12)),
                    ("SELECT pxt.crop(%s, 0, 0, 64, 48)", (64, 48))]:
        ref = one(db, q, path)
        assert ref.endswith(".png")
        out = fetch_image(db, ref)
        assert out.mode == "RGBA" and out.size == size
        check_colors(out, "RGBA", 3)
    # rotating by 45 degrees with expand leaves transparent corners
    out = fetch_image(db, one(db, "SELECT pxt.rotate(%s, 45, expand => true)", path))
    assert out.mode == "RGBA" and out.width > 64 and out.height > 48
    assert out.getpixel((0, 0))[3] == 0 and out.getpixel((out.width - 1, out.height - 1))[3] == 0
    # an RGB JPEG from an RGBA source drops alpha; WEBP keeps it
    jpg = Image.open(io.BytesIO(one(db, "SELECT pxt.to_bytes(%s, 'JPEG')", path)))
    assert jpg.format == "JPEG" and jpg.mode == "RGB"
    webp = Image.open(io.BytesIO(one(db, "SELECT pxt.to_bytes(%s, 'WEBP')", path)))
    assert webp.format == "WEBP" and webp.mode == "RGBA"
    assert close(corners(webp)[3][3], 0, 3) and close(corners(webp)[0][3], 255, 3)
    # a transparent GIF / palette PNG is still readable and converts to RGBA with its alpha
    p = quadrants("P")
    p.info["transparency"] = p.getpixel((48, 36))  # the white quadrant's palette index
    gif = write(files, "t.gif", p, "GIF", transparency=p.info["transparency"])
    out = fetch_image(db, one(db, "SELECT pxt.convert(%s, 'RGBA')", gif))
    assert out.mode == "RGBA" and corners(out)[3][3] == 0 and corners(out)[0] == (255, 0, 0, 255)


def test_palette_image_operations_keep_the_palette(db, files):
    path = write(files, "pal.png", quadrants("P"), "PNG")
    ref = one(db, "SELECT pxt.resize(%s, 32, 24)", path)
    out = fetch_image(db, ref)
    assert out.mode == "P" and out.size == (32, 24)
    assert_colors(out, QUAD_RGB, 0, mode="RGB")


def test_rotate_matches_pillow_pixel_for_pixel(db, files):
    """rotate(img, a) is Pillow's Image.rotate(a) (counter-clockwise, about the centre,
    same size unless expand), exactly, whatever fast path the server takes."""
    import numpy as np

    for w, h in [(64, 48), (48, 64), (7, 4), (4, 7), (9, 4), (4, 9), (5, 5), (1, 6), (6, 1)]:
        src = Image.fromarray(np.random.default_rng(w * 100 + h).integers(0, 256, (h, w, 3), dtype=np.uint8))
        path = write(files, f"r{w}x{h}.png", src, "PNG")
        for angle, expand in [(90, False), (270, False), (-90, False), (450, False), (180, False),
                              (90, True), (-270, True), (45, False), (30, True), (0, False)]:
            out = fetch_image(db, one(db, "SELECT pxt.rotate(%s, %s, expand => %s)", path, angle, expand))
            want = src.rotate(angle, expand=expand)
            assert (out.size, out.mode) == (want.size, want.mode), (w, h, angle, expand)
            assert out.tobytes() == want.tobytes(), (w, h, angle, expand)


# --- to_bytes / data URIs / the store -----------------------------------------------------------
def test_to_bytes_reencodes(db, files):
    path = write(files, "src.png", quadrants(), "PNG")
    for fmt, expect in [("PNG", "PNG"), ("png", "PNG"), ("JPEG", "JPEG"), ("jpg", "JPEG"), ("WEBP", "WEBP"),
                        ("GIF", "GIF"), ("BMP", "BMP"), ("TIFF", "TIFF")]:
        data = one(db, "SELECT pxt.to_bytes(%s, %s)", path, fmt)
        out = Image.open(io.BytesIO(data))
        assert out.format == expect and out.size == (64, 48), fmt
        assert_colors(out, QUAD_RGB, 24 if expect in ("JPEG", "WEBP") else 0, mode="RGB")
        # and back in through image_from_bytes: a store reference of that format
        ref = one(db, "SELECT pxt.image_from_bytes(%s)", data)
        assert one(db, "SELECT pxt.format(%s)", ref) == expect, fmt
        assert REF_RE.match(ref).group(1) == hashlib.sha256(data).hexdigest()


# --- bad media values -----------------------------------------------------------------------------
# --- JPEG completeness ------------------------------------------------------------------------
def test_jpeg_with_data_after_the_end_marker_is_accepted(db, files):
    """Motion photos append a video after the JPEG's end marker, some tools pad files: still a
    complete JPEG, which every function (and the INSERT check) must accept."""
    data = jpeg_bytes(quadrants(), quality=95)
    path = write_bytes(files, "motion.jpg", data + b"\x00\x00\x00\x18ftypmp42" + os.urandom(512))
    db.execute("""SELECT pxt.create_table('ml.images', '{"image": "image"}')""")
    db.execute("SELECT pxt.add_computed_column('ml.images', 'thumb', 'pxt.resize(image, 32, 24)')")
    db.execute("INSERT INTO ml.images (image) VALUES (%s)", (path,))
    out = fetch_image(db, one(db, "SELECT thumb FROM ml.images"))
    assert out.size == (32, 24)
    assert_colors(out, QUAD_RGB, 24)


# --- managed tables ----------------------------------------------------------------------------
def make_images_table(db):
    db.execute("""SELECT pxt.create_table('ml.images', '{"image": "image", "category": "string"}')""")
    db.execute("SELECT pxt.add_computed_column('ml.images', 'thumbnail', 'pxt.resize(image, 16, 16)')")
    db.execute("SELECT pxt.add_computed_column('ml.images', 'w', 'pxt.width(image)')")


@pytest.fixture
def images_table(db):
    make_images_table(db)
    return db


def test_table_with_computed_image_columns(images_table, files):
    db = images_table
    rows = [
        (write(files, "a.jpg", quadrants(), "JPEG", quality=95), "jpeg"),
        (write(files, "b.png", quadrants("RGBA"), "PNG"), "rgba"),
        (write(files, "c.gif", quadrants("P"), "GIF"), "gif"),
        (write(files, "d.webp", quadrants(), "WEBP", quality=95), "webp"),
        (write(files, "e.tiff", quadrants("L"), "TIFF"), "gray"),
        ("file://" + write(files, "f.bmp", quadrants(), "BMP"), "bmp-uri"),
        (oriented_jpeg(files, 6), "rotated"),
        (None, "no image"),
    ]
    with db.cursor() as cur:
        cur.executemany("INSERT INTO ml.images (image, category) VALUES (%s, %s)", rows)
    got = db.execute('SELECT category, thumbnail, w FROM pxt_data."ml.images" ORDER BY _pxt_rowid').fetchall()
    assert [g[0] for g in got] == [r[1] for r in rows]
    for (cat, thumb, w), (img, _) in zip(got, rows):
        if img is None:
            assert thumb is None and w is None
            continue
        assert REF_RE.match(thumb), thumb
        out = fetch_image(db, thumb)
        assert out.size == (16, 16)
        assert w == (48 if cat == "rotated" else 64)
        if cat == "rotated":  # upright: blue top-left, red top-right
            assert_colors(out, (BLUE, RED, WHITE, GREEN), 40, mode="RGB")
        elif cat == "gray":
            assert out.mode == "L"
            assert_colors(out, QUAD_L, 12)
        elif cat == "rgba":
            assert out.mode == "RGBA"
            check_colors(out, "RGBA", 6)
        else:
            assert_colors(out, QUAD_RGB, 40, mode="RGB")
    # updating the image recomputes the thumbnail
    new = write(files, "g.png", Image.new("RGB", (20, 10), BLUE), "PNG")
    db.execute("UPDATE ml.images SET image = %s WHERE category = 'jpeg'", (new,))
    thumb, w = db.execute("SELECT thumbnail, w FROM ml.images WHERE category = 'jpeg'").fetchone()
    assert w == 20 and fetch_image(db, thumb).getpixel((8, 8)) == BLUE


# --- a second client library: what BI tools see ---------------------------------------------------
def test_bi_tools_see_real_columns_and_values(images_table, files, dsn):
    pd = pytest.importorskip("pandas")
    sqlalchemy = pytest.importorskip("sqlalchemy")
    db = images_table
    db.execute("SELECT pxt.add_computed_column('ml.images', 'preview', 'pxt.image_url(thumbnail)')")
    paths = [write(files, f"bi{i}.png", Image.new("RGB", (40 + i, 30), (i * 40, 100, 200)), "PNG") for i in range(3)]
    db.execute("INSERT INTO ml.images (image, category) SELECT p, 'c' || i FROM unnest(%s::text[]) "
               "WITH ORDINALITY AS u(p, i)", (paths,))

    engine = sqlalchemy.create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(dsn))
    try:
        cols = {c["name"]: c for c in sqlalchemy.inspect(engine).get_columns("images", schema="ml")}
        names = list(cols)
        assert {"image", "category", "thumbnail", "w", "preview"} <= set(names)
        assert not [n for n in names if n.startswith("_pxt_")]  # the table's name shows the user's columns
        assert names.index("image") < names.index("category") < names.index("thumbnail") < names.index("w") \
            < names.index("preview")
        for c in ("image", "thumbnail"):  # the media domain over text
            t = cols[c]["type"]
            assert isinstance(t, sqlalchemy.String) or "image" in repr(t).lower(), repr(t)
        assert isinstance(cols["w"]["type"], sqlalchemy.Integer)
        assert isinstance(cols["category"]["type"], sqlalchemy.String)

        with engine.connect() as conn:
            df = pd.read_sql('SELECT image, category, thumbnail, w, preview FROM pxt_data."ml.images" '
                             "ORDER BY _pxt_rowid", conn)
        assert list(df.columns) == ["image", "category", "thumbnail", "w", "preview"]
        assert df["image"].tolist() == paths
        assert df["category"].tolist() == ["c1", "c2", "c3"]
        assert df["w"].tolist() == [40, 41, 42]
        for i, row in df.iterrows():
            assert REF_RE.match(row["thumbnail"])
            mime, payload = data_uri_bytes(row["preview"])
            im = Image.open(io.BytesIO(payload))
            assert mime == "image/png" and im.size == (16, 16)
            assert close(im.convert("RGB").getpixel((8, 8)), (i * 40, 100, 200), 2)
        # the whole table through SQLAlchemy's own reflection-based reader as well
        df2 = pd.read_sql_table("images", engine, schema="ml")
        assert {"image", "thumbnail", "preview"} <= set(df2.columns) and len(df2) == 3
    finally:
        engine.dispose()
