"""pg_regress tests: test/sql/<topic>.sql run through psql, output compared with test/expected/<topic>.out.

Each .sql file is one pytest test (a fresh database cloned from the session's template, so the
extension is installed), run by PostgreSQL's own pg_regress (``--use-existing``) against the
session server; a failure shows regression.diffs. The .out files are the specification of what
a psql user sees; regenerate one with ``PXT_REGRESS_ACCEPT=1`` and then read every line of it.

Inputs: media files are made here, deterministically, before pg_regress runs, in a fresh
directory under ``server.files`` (in pixelgres.allowed_roots) and one outside the roots. The
SQL reads their paths with ``\\getenv files PXT_REGRESS_FILES`` (and PXT_REGRESS_OUTSIDE,
PXT_REGRESS_VERSION). psql is started through test/launcher.sh, which writes those two
directories and the server's pixelgres.allowed_roots as @files@, @outside@ and @roots@ in the
output, so messages naming files compare equal wherever the run put them.

    .venv/bin/python -m pytest -q tests/test_regress.py -k media     # one file
    PXT_REGRESS_ACCEPT=1 .venv/bin/python -m pytest -q tests/test_regress.py -k media
"""
from __future__ import annotations

import functools
import io
import os
import shlex
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import psycopg
import pytest
from PIL import Image
from psycopg import sql

import pixelgres
from pixelgres.cluster import pg_bindir
from pixelgres.testing.media import HTML, MARKDOWN, bomb_png, garble

ROOT = Path(__file__).resolve().parent.parent
REGRESS = ROOT / "test"
TOPICS = sorted(p.stem for p in (REGRESS / "sql").glob("*.sql"))

# what pg_regress sets on the databases it creates itself (it does not with --use-existing)
DATABASE_SETTINGS = {"lc_messages": "C", "lc_monetary": "C", "lc_numeric": "C", "lc_time": "C",
                     "bytea_output": "hex", "timezone_abbreviations": "Default"}


# --- finding pg_regress ------------------------------------------------------------------------------
def pg_config() -> str:
    """The pg_config of the server pixelgres runs (the newest installed), else the one on PATH."""
    try:
        candidate = pg_bindir() / "pg_config"
        if candidate.exists():
            return str(candidate)
    except RuntimeError:
        pass
    found = shutil.which("pg_config")
    if not found:
        pytest.fail("pg_config not found: install the PostgreSQL server development files (scripts/setup.sh does)")
    return found


@functools.lru_cache(maxsize=None)
def pg_regress() -> tuple[str, str]:
    """(pg_regress, the bindir whose psql it runs), from pg_config: PGXS ships pg_regress."""
    config = pg_config()

    def ask(option: str) -> str:
        return subprocess.run([config, option], capture_output=True, text=True, check=True).stdout.strip()

    # .../lib/pgxs/src/makefiles/pgxs.mk -> .../lib/pgxs/src/test/regress/pg_regress
    regress = Path(ask("--pgxs")).parent.parent / "test" / "regress" / "pg_regress"
    if not regress.exists():
        regress = Path(ask("--pkglibdir")) / "pgxs" / "src" / "test" / "regress" / "pg_regress"
    if not regress.exists():
        pytest.fail(f"pg_regress not found next to {config}'s PGXS ({regress})")
    return str(regress), ask("--bindir")


# --- inputs ---------------------------------------------------------------------------------------------
RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 200, 0), (0, 0, 255), (255, 255, 255)


def quadrants(size=(64, 48)) -> Image.Image:
    """RGB, quadrants red, green / blue, white (the image tests/test_images.py uses)."""
    w, h = size
    im = Image.new("RGB", size)
    for (x, y), c in zip([(0, 0), (1, 0), (0, 1), (1, 1)], (RED, GREEN, BLUE, WHITE)):
        im.paste(c, (x * w // 2, y * h // 2, (x + 1) * w // 2, (y + 1) * h // 2))
    return im


def encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def small_png(size=(32, 24)) -> bytes:
    """32x24 RGB, dark red with a blue top-left quadrant (tests/test_bad_inputs.py's png_bytes)."""
    im = Image.new("RGB", size, (200, 30, 30))
    im.paste((20, 20, 220), (0, 0, size[0] // 2, size[1] // 2))
    return encode(im, "PNG")




def half(data: bytes) -> bytes:
    return data[:len(data) // 2]


def make_inputs(files: Path, outside: Path, to_jpeg) -> None:
    """Every file the .sql files read, by name (the .sql files say what each one is).

    ``to_jpeg(image, quality)`` encodes with the server's pinned Pillow: whether a JPEG cut
    short still decodes, and the bytes messages say were left, depend on the exact bytes."""
    def put(d: Path, name: str, data: bytes) -> None:
        (d / name).write_bytes(data)
        os.chmod(d / name, 0o644)

    quad_jpeg_256 = to_jpeg(quadrants((256, 192)), 90)
    png_64 = small_png((64, 48))
    text = b"this is a text file, not a JPEG\n" * 20
    made = {
        # good images
        "quad.png": encode(quadrants(), "PNG"),                         # 64x48 RGB
        "quad_copy.png": encode(quadrants(), "PNG"),
        "quad.jpg": to_jpeg(quadrants(), 75),
        **{f"{name}.png": encode(Image.new("RGB", (64, 48), colour), "PNG")
           for name, colour in (("red", (255, 0, 0)), ("green", (0, 255, 0)), ("blue", (0, 0, 255)))},
        "small.png": small_png(),                                       # 32x24 RGB
        "big.png": encode(quadrants((40, 40)), "PNG"),
        "30x30.png": encode(quadrants((30, 30)), "PNG"),
        "8x8.png": encode(quadrants((8, 8)), "PNG"),
        "thin.png": encode(Image.new("RGB", (100000, 1), RED), "PNG"),  # 100000x1
        "square.mp4": encode(Image.new("RGB", (100, 100), (1, 2, 3)), "PNG"),  # an image named .mp4
        # JPEGs cut short: half, all but the last 100, 2 and 1 bytes (the end marker is 2)
        **{f"cut{name}.jpg": quad_jpeg_256[:cut] for name, cut in (
            ("_half", len(quad_jpeg_256) // 2), ("_minus100", len(quad_jpeg_256) - 100),
            ("_minus2", len(quad_jpeg_256) - 2), ("_minus1", len(quad_jpeg_256) - 1))},
        "half_bytes.jpg": half(to_jpeg(quadrants((256, 192)), 75)),
        # bad images
        "empty.jpg": b"",
        "notes.jpg": text,
        "cut.png": half(png_64),
        "corrupt.png": garble(png_64, len(png_64) // 2, 20),          # a chunk's checksum no longer matches
        "header.png": small_png()[:33],                                 # signature and IHDR only
        "bomb.png": bomb_png(),                                         # 30000x30000
        "stub.png": bomb_png(complete=False),                           # its header, without the pixels
        # documents
        "guide.html": HTML.encode(),
        "manual.md": MARKDOWN.encode(),
        "notes.txt": b"First para\nstill first.\n\nSecond para.\n",
    }
    for name, data in made.items():
        put(files, name, data)
    put(outside, "secret.jpg", to_jpeg(quadrants(), 75))
    (files / "innocent.jpg").symlink_to(outside / "secret.jpg")   # symlinks out of the allowed roots
    (files / "passwd.jpg").symlink_to("/etc/passwd")
    (files / "empty_dir").mkdir()
    os.chmod(files / "empty_dir", 0o755)


SERVER_JPEG = """
CREATE FUNCTION pg_temp.jpeg(png bytea, quality int) RETURNS bytea LANGUAGE plpython3u AS $py$
plpy.execute("SELECT pxt._boot()")  # the server's private Python directory first on sys.path
import io
from PIL import Image
buf = io.BytesIO()
Image.open(io.BytesIO(png)).save(buf, "JPEG", quality=quality)
return buf.getvalue()
$py$"""


@pytest.fixture(scope="module")
def inputs(server):
    """The environment the .sql files read: the generated inputs' directories, the server's
    allowed roots (both written as placeholders in the output) and the package version."""
    files = server.files / ("regress-" + uuid.uuid4().hex[:8])
    files.mkdir()
    os.chmod(files, 0o755)
    outside = Path(tempfile.mkdtemp(prefix="pxt-regress-outside-"))
    os.chmod(outside, 0o755)
    encoder = server.create_database()
    try:
        with psycopg.connect(server.dsn(encoder), autocommit=True) as c:
            c.execute(SERVER_JPEG)
            make_inputs(files, outside, lambda im, quality: c.execute(
                "SELECT pg_temp.jpeg(%s, %s)", (encode(im, "PNG"), quality)).fetchone()[0])
            roots = c.execute("SELECT current_setting('pixelgres.allowed_roots')").fetchone()[0]
    finally:
        server.drop_database(encoder)
    yield {"PXT_REGRESS_FILES": str(files), "PXT_REGRESS_OUTSIDE": str(outside),
           "PXT_REGRESS_ROOTS": roots, "PXT_REGRESS_VERSION": pixelgres.__version__}
    shutil.rmtree(files, ignore_errors=True)
    shutil.rmtree(outside, ignore_errors=True)


# --- the runner -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("topic", TOPICS)
def test_regress(server, inputs, tmp_path, topic):
    regress, bindir = pg_regress()
    dbname = server.create_database()
    try:
        with server.admin() as c:
            for name, value in DATABASE_SETTINGS.items():
                c.execute(sql.SQL("ALTER DATABASE {} SET {} TO {}").format(
                    sql.Identifier(dbname), sql.Identifier(name), sql.Literal(value)))
        conn = psycopg.conninfo.conninfo_to_dict(server.admin_dsn)
        env = dict(os.environ, **inputs)
        if conn.get("password"):
            env["PGPASSWORD"] = str(conn["password"])
        argv = [regress, "--use-existing", f"--dbname={dbname}", f"--bindir={bindir}",
                f"--inputdir={REGRESS}", f"--outputdir={tmp_path}",
                f"--launcher=sh {shlex.quote(str(REGRESS / 'launcher.sh'))}"]
        argv += [f"--{k}={conn[k]}" for k in ("host", "port", "user") if conn.get(k)]
        r = subprocess.run(argv + [topic], env=env, capture_output=True, text=True, timeout=900)
        result = tmp_path / "results" / f"{topic}.out"
        if os.environ.get("PXT_REGRESS_ACCEPT") and result.exists():
            shutil.copy(result, REGRESS / "expected" / f"{topic}.out")
            return
        if r.returncode != 0:
            diffs = tmp_path / "regression.diffs"
            pytest.fail(f"pg_regress test/sql/{topic}.sql failed (exit {r.returncode}):\n{r.stdout}{r.stderr}\n"
                        + (diffs.read_text() if diffs.exists() else "(no regression.diffs)"), pytrace=False)
    finally:
        server.drop_database(dbname)
