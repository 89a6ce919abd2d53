"""Derived images (pxt.resize, thumbnail, crop, rotate, convert) in computed columns are batched:
one statement's images are decoded, transformed and encoded on pixelgres.media_threads helper
threads. Same results in the same rows as one thread, per-row errors, and a statement that
stays cancellable while a helper is busy (pxt_test.media_hold blocks a helper on an event,
so nothing here depends on how long anything takes)."""
from __future__ import annotations

import threading

import psycopg
import pytest
from PIL import Image

from pixelgres.testing.waits import wait_until

COLUMNS = {"thumb": "pxt.thumbnail(image::pxt.image, 40, 40)", "rot": "pxt.rotate(image::pxt.image, 90)",
           "r": "pxt.resize(image::pxt.image, 30, 20)", "grey": "pxt.convert(image::pxt.image, 'L')"}


def photo(d, name: str, seed: int, fmt: str = "JPEG") -> str:
    im = Image.new("RGB", (96, 64))
    im.putdata([((x * seed) % 256, (y * 7 + seed) % 256, (x + y) % 256) for y in range(64) for x in range(96)])
    p = d / name
    im.save(p, fmt)
    p.chmod(0o644)
    return str(p)


def make_table(db, name: str, on_error: str = "abort") -> None:
    db.execute("SELECT pxt.create_table(%s, '{\"image\": \"string\"}')", (name,))
    for col, expr in COLUMNS.items():
        db.execute("SELECT pxt.add_computed_column(%s, %s, %s, on_error => %s)", (name, col, expr, on_error))


def insert(db, table: str, paths: list[str]) -> None:
    db.execute(psycopg.sql.SQL("INSERT INTO {} (image) SELECT unnest(%s::text[])").format(
        psycopg.sql.Identifier(table)), (paths,))


def values(db, table: str) -> list:
    return db.execute(psycopg.sql.SQL("SELECT image, thumb, rot, r, grey FROM {} ORDER BY image").format(
        psycopg.sql.Identifier(table))).fetchall()


def test_helpers_give_the_results_of_one_thread_in_the_same_rows(db, files):
    paths = [photo(files, f"p{i:02d}.{'png' if i % 3 == 0 else 'jpg'}", i + 1, "PNG" if i % 3 == 0 else "JPEG")
             for i in range(24)]
    make_table(db, "one")
    make_table(db, "many")
    db.execute("SET pixelgres.media_threads = 1")
    insert(db, "one", paths)
    db.execute("SET pixelgres.media_threads = 2")
    insert(db, "many", paths)
    one, many = values(db, "one"), values(db, "many")
    assert one == many and len(one) == 24
    assert len({row[2] for row in many}) == 24  # every row its own rotated image
    # and what the same function gives one row at a time, outside a computed column
    for image, thumb, rot, r, grey in many[:4]:
        assert db.execute("SELECT pxt.thumbnail(%s, 40, 40), pxt.rotate(%s, 90), pxt.resize(%s, 30, 20), "
                          "pxt.convert(%s, 'L')", (image,) * 4).fetchone() == (thumb, rot, r, grey)
        with Image.open(db.execute("SELECT pxt.media_path(%s)", (r,)).fetchone()[0]) as im:
            assert im.size == (30, 20)


@pytest.mark.parametrize("threads, where", [(2, "pixelgres-media"), (1, "MainThread")])
def test_the_work_runs_on_helpers(db, files, threads, where):
    marker = files / "threads.txt"
    paths = [photo(files, f"{i}hold.png", i + 1, "PNG") for i in range(6)]
    make_table(db, "t")
    db.execute("SELECT set_config('pixelgres.media_threads', %s, false)", (str(threads),))
    db.execute("SELECT pxt_test.media_hold(%s, false)", (str(marker),))
    try:
        insert(db, "t", paths)
    finally:
        db.execute("SELECT pxt_test.media_release()")
    names = marker.read_text().split()
    assert len(names) == 6 and all(n.startswith(where) for n in names), names


@pytest.mark.parametrize("on_error", ["ignore", "abort"])
def test_per_row_errors_from_helpers(db, files, on_error):
    good = [photo(files, f"g{i}.jpg", i + 1) for i in range(5)]
    full = (files / "g0.jpg").read_bytes()
    cut = files / "cut.jpg"
    cut.write_bytes(full[: len(full) // 2])
    cut.chmod(0o644)
    text = files / "notes.jpg"
    text.write_bytes(b"not an image at all")
    text.chmod(0o644)
    make_table(db, "t", on_error)
    db.execute("SET pixelgres.media_threads = 2")
    paths = good[:2] + [str(cut)] + good[2:] + [str(text)]
    if on_error == "abort":
        with pytest.raises(psycopg.Error) as e:
            insert(db, "t", paths)
        msg = e.value.diag.message_primary
        assert "failed for row (_pxt_rowid=" in msg and "image='" in msg and "MediaError" in msg, msg
        assert e.value.diag.sqlstate == "22023"
        assert db.execute("SELECT count(*) FROM t").fetchone() == (0,)
        return
    insert(db, "t", paths)
    rows = dict(db.execute("SELECT image, rot FROM t").fetchall())
    assert all(rows[p] for p in good) and rows[str(cut)] is None and rows[str(text)] is None
    errors = db.execute("SELECT s.image, e.\"column\", e.message FROM pxt.errors('t') e "
                        "JOIN pxt_data.\"public.t\" s ON s._pxt_rowid = e.rowid").fetchall()
    assert {(img, col) for img, col, _ in errors} == {(p, c) for p in (str(cut), str(text)) for c in COLUMNS}
    assert all("MediaError" in m and "notes.jpg" in m for img, _, m in errors if img == str(text))


@pytest.mark.parametrize("how", ["pg_cancel_backend", "statement_timeout"])
def test_a_cancel_ends_the_statement_while_a_helper_is_busy(db, dsn, files, how):
    marker = files / "held.txt"
    paths = [photo(files, f"p{i}.jpg", i + 1) for i in range(8)] + [photo(files, "hold.png", 99, "PNG")]
    make_table(db, "t")
    db.execute("SET pixelgres.media_threads = 2")
    db.execute("SELECT pxt_test.media_hold(%s, true)", (str(marker),))
    failure: list = []
    if how == "statement_timeout":
        db.execute("SET statement_timeout = '300ms'")  # the held helper would never finish
        try:
            insert(db, "t", paths)
        except psycopg.Error as e:
            failure.append(e)
        db.execute("SET statement_timeout = 0")
    else:
        def run():
            try:
                insert(db, "t", paths)
            except psycopg.Error as e:
                failure.append(e)
        t = threading.Thread(target=run)
        t.start()
        wait_until(lambda: marker.exists() and marker.read_text(), "a helper holding hold.png")
        with psycopg.connect(dsn, autocommit=True) as other:
            assert other.execute("SELECT pg_cancel_backend(%s)", (db.info.backend_pid,)).fetchone()[0]
        t.join(60)
        assert not t.is_alive()
    assert marker.read_text().startswith("pixelgres-media")
    assert len(failure) == 1 and failure[0].diag.sqlstate == "57014", failure
    db.execute("SELECT pxt_test.media_release()")
    assert db.execute("SELECT count(*) FROM t").fetchone() == (0,)
    insert(db, "t", paths[:4])  # the backend and its helpers work on
    assert db.execute("SELECT count(rot) FROM t").fetchone() == (4,)


def test_returning_shows_a_derived_image_only_after_the_statement(db, files):
    """The documented price of batching: the statement trigger writes the column after the
    rows are inserted, so the INSERT's own RETURNING sees NULL and the next read the image."""
    make_table(db, "t")
    p = photo(files, "a.jpg", 3)
    assert db.execute("INSERT INTO t (image) VALUES (%s) RETURNING rot", (p,)).fetchall() == [(None,)]
    assert db.execute("SELECT rot LIKE 'media://%%.jpg' FROM t").fetchall() == [(True,)]
