"""Iterators and iterator views, end to end through SQL.

Videos are made here with PyAV: 2 s at 10 fps (20 frames), frame i a solid grey of level
12 * i, so the pixels tell which frame a row holds; H.264 with a keyframe every 5 frames and
B-frames, so frames must be found in presentation order and seeks land on keyframes.
Documents are generated too (PDF with reportlab, HTML, Markdown), and audio (a tone). The
string splitter, HTML / Markdown / text chunks and create_view errors are pg_regress tests:
test/sql/iterators.sql.
"""
from __future__ import annotations

import io
import os
import re
import wave
from pathlib import Path

import av
import numpy as np
import psycopg
import pytest
from PIL import Image

from pixelgres.testing.media import HTML, MARKDOWN, grey_video

RATE, N = 10, 20
W, H = 64, 48


# --- media makers -------------------------------------------------------------------------------
def make_video(path: Path, n: int = N, rate: int = RATE, faststart: bool = False) -> Path:
    """Key frames every 5 frames exactly, with B-frames (presentation order differs from decode order)."""
    return grey_video(path, n, rate, (W, H), options={"g": "5", "keyint_min": "5", "bf": "2", "sc_threshold": "0"},
                      faststart=faststart)


def keyframe_indices(path: Path) -> list[int]:
    with av.open(str(path)) as c:
        pk = [(p.pts, p.is_keyframe) for p in c.demux(video=0) if p.pts is not None]
    order = sorted(pts for pts, _ in pk)
    return sorted(order.index(pts) for pts, key in pk if key)


def truncated(src: Path, dst: Path, keep: float = 0.6) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * keep)])
    os.chmod(dst, 0o644)
    return dst


def image_of(db, ref: str) -> np.ndarray:
    data = db.execute("SELECT pxt.to_bytes(%s::pxt.image)", (ref,)).fetchone()[0]
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def level(db, ref: str) -> int:
    """Which frame an image is: its mean grey level / 12."""
    return round(float(image_of(db, ref).mean()) / 12)


@pytest.fixture
def video(files):
    return make_video(files / "v.mp4")


# --- the frame iterator --------------------------------------------------------------------------
@pytest.mark.parametrize("args, expected", [
    ("fps => 1", [0, 10]),
    ("fps => 0.5", [0]),
    ("fps => 1.0 / 3", [0]),
    ("fps => 2", [0, 5, 10, 15]),
    ("fps => 25", list(range(N))),            # above the native rate: every frame
    ("num_frames => 10", [0, 2, 4, 6, 8, 11, 13, 15, 17, 19]),
    ("num_frames => 1", [0]),
    ("num_frames => 50", list(range(N))),     # more than the video has: every frame
    ("", list(range(N))),
])
def test_frame_selection(db, video, args, expected):
    rows = db.execute(f"SELECT pos, frame_idx, pos_msec, frame FROM pxt.frame_iterator(%s{', ' + args if args else ''})",
                      (str(video),)).fetchall()
    assert [r[1] for r in rows] == expected
    assert [r[0] for r in rows] == list(range(len(expected)))
    assert [r[2] for r in rows] == pytest.approx([1000 * i / RATE for i in expected])
    for _, idx, _, frame in rows[:5]:
        assert re.fullmatch(r"media://[0-9a-f]{64}\.jpg", frame)
        assert level(db, frame) == idx  # the pixels are those of frame idx


@pytest.mark.parametrize("args", ["fps => 2", "num_frames => 7", "keyframes_only => true", "fps => 100"])
def test_frames_on_helpers_are_those_of_one_thread(db, files, args):
    """Sparse selections are cut at keyframes into groups that helper threads decode at once
    (media.video.split); the rows are those one thread gives, in the same order. 60 frames,
    12 closed GOPs, so 2 threads get 4 groups."""
    long = make_video(files / "long.mp4", n=60)
    q = f"SELECT pos, frame_idx, pos_msec, key_frame, frame FROM pxt.frame_iterator(%s, {args})"
    db.execute("SET pixelgres.media_threads = 1")
    one = db.execute(q, (str(long),)).fetchall()
    db.execute("SET pixelgres.media_threads = 2")
    many = db.execute(q, (str(long),)).fetchall()
    assert one == many and len(one) >= 6
    assert [r[0] for r in many] == list(range(len(many)))
    for _, idx, _, _, frame in many[::3]:
        assert level(db, frame) == idx % 21  # grey_video: level 12 * i mod 252


def test_keyframes_only(db, video):
    keys = keyframe_indices(video)
    assert len(keys) >= 4
    rows = db.execute("SELECT frame_idx, key_frame, frame FROM pxt.frame_iterator(%s, keyframes_only => true)",
                      (str(video),)).fetchall()
    assert [r[0] for r in rows] == keys
    assert all(r[1] for r in rows)
    assert [level(db, r[2]) for r in rows] == keys
    flags = db.execute("SELECT frame_idx FROM pxt.frame_iterator(%s) WHERE key_frame", (str(video),)).fetchall()
    assert [r[0] for r in flags] == keys


def test_extract_frame_equals_full_scan(db, video):
    scan = {r[0]: r[1] for r in db.execute(
        "SELECT frame_idx, frame FROM pxt.frame_iterator(%s, format => 'png')", (str(video),))}
    assert len(scan) == N
    for k in (0, 3, 7, 12, 19):  # keyframes, frames after them, B-frames, the last frame
        direct = db.execute("SELECT pxt.extract_frame(%s, %s, format => 'png')", (str(video), k)).fetchone()[0]
        assert direct.endswith(".png")
        assert np.array_equal(image_of(db, direct), image_of(db, scan[k])), k
    # the sampled scan decodes the same pixels as the full one
    for idx, frame in db.execute("SELECT frame_idx, frame FROM pxt.frame_iterator(%s, num_frames => 4, format => 'png')",
                                 (str(video),)):
        assert np.array_equal(image_of(db, frame), image_of(db, scan[idx])), idx
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="has 20 frames; there is no frame 20"):
        db.execute("SELECT pxt.extract_frame(%s, 20)", (str(video),))


def test_virtual_frames_decode_on_read(db, video):
    rows = db.execute("SELECT frame_idx, frame FROM pxt.frame_iterator(%s, fps => 2, virtual => true)",
                      (str(video),)).fetchall()
    assert [r[0] for r in rows] == [0, 5, 10, 15]
    assert all(r[1].startswith("pxt-frame:") and r[1].endswith(str(video)) for r in rows)
    full = {r[0]: r[1] for r in db.execute("SELECT frame_idx, frame FROM pxt.frame_iterator(%s, format => 'png')",
                                           (str(video),))}
    for idx, ref in rows:
        img = db.execute("SELECT pxt.materialize_frame(%s)", (ref,)).fetchone()[0]
        assert np.array_equal(image_of(db, img), image_of(db, full[idx])), idx
    # stored images pass through
    assert db.execute("SELECT pxt.materialize_frame(%s)", (full[3],)).fetchone()[0] == full[3]


def test_sparse_frames_seek_and_match_full_scan(db, files):
    """Wanted frames far apart: the gaps are crossed with seeks, not decoded."""
    long = make_video(files / "long.mp4", n=700, rate=25)
    full = db.execute("SELECT frame_idx, frame FROM pxt.frame_iterator(%s, format => 'png')", (str(long),)).fetchall()
    assert [r[0] for r in full] == list(range(700))
    rows = db.execute("SELECT frame_idx, pos_msec, frame FROM pxt.frame_iterator(%s, num_frames => 3, format => 'png')",
                      (str(long),)).fetchall()
    assert [(r[0], r[1]) for r in rows] == [(0, 0), (350, 14000), (699, 27960)]
    for idx, _, frame in rows:
        assert np.array_equal(image_of(db, frame), image_of(db, full[idx][1])), idx
    every_10s = db.execute("SELECT frame_idx FROM pxt.frame_iterator(%s, fps => 0.1)", (str(long),)).fetchall()
    assert [r[0] for r in every_10s] == [0, 250, 500]


def test_virtual_frames_in_a_view(videos, video):
    """Virtual frames are references; image functions decode them when they read them."""
    db = videos
    probe = f"pxt-frame:0:0:{video}"
    assert db.execute("SELECT pxt.width(%s)", (probe,)).fetchone()[0] > 0
    db.execute("SELECT pxt.create_view('ml.frames', 'ml.videos', 'pxt.frame_iterator(video, fps => 2, virtual => true)')")
    db.execute("SELECT pxt.add_computed_column('ml.frames_rows', 'small', 'pxt.resize(frame, 8, 8)')")
    db.execute("INSERT INTO ml.videos (video) VALUES (%s)", (str(video),))
    rows = db.execute("SELECT frame_idx, frame, pxt.width(frame), small FROM ml.frames ORDER BY pos").fetchall()
    assert [r[0] for r in rows] == [0, 5, 10, 15]
    assert all(r[1].startswith("pxt-frame:") and r[2] == W for r in rows)
    assert [level(db, r[3]) for r in rows] == [0, 5, 10, 15]


@pytest.mark.parametrize("args, message", [
    ("fps => 1, num_frames => 3", "at most one of fps, num_frames and keyframes_only (got fps and num_frames)"),
    ("num_frames => 3, keyframes_only => true", "at most one of"),
    ("fps => 0", "fps must be > 0"),
    ("fps => -2", "fps must be > 0"),
    ("num_frames => 0", "num_frames must be >= 1"),
    ("format => 'gif'", "frame format must be 'jpeg' or 'png'"),
])
def test_frame_iterator_bad_arguments(db, video, args, message):
    with pytest.raises(psycopg.errors.InvalidParameterValue, match=re.escape(message)):
        db.execute(f"SELECT * FROM pxt.frame_iterator(%s, {args})", (str(video),))
    assert db.execute("SELECT 1").fetchone() == (1,)


def test_bad_videos(db, files, video):
    junk = files / "junk.mp4"
    junk.write_bytes(b"this is not a video" * 50)
    os.chmod(junk, 0o644)
    cut = truncated(make_video(files / "fast.mp4", faststart=True), files / "cut.mp4")
    cut_end = truncated(video, files / "cut_end.mp4")  # moov atom at the end: gone
    for path, msg in ((junk, "not a decodable video"), (cut, "is truncated"), (cut_end, "not a decodable video")):
        for args in ("", ", fps => 1"):
            with pytest.raises(psycopg.errors.InvalidParameterValue, match=msg):
                db.execute(f"SELECT * FROM pxt.frame_iterator(%s{args})", (str(path),))
    audio = make_wav(files / "tone.wav", 1.0)
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="has no video stream"):
        db.execute("SELECT * FROM pxt.frame_iterator(%s)", (str(audio),))


# --- views ------------------------------------------------------------------------------------------
@pytest.fixture
def videos(db):
    db.execute("""SELECT pxt.create_table('ml.videos', '{"video": "video", "title": "string"}')""")
    return db


def internal(db, name: str) -> str:
    """The view's rows with their bookkeeping columns (its name shows the user's columns only)."""
    return db.execute("SELECT pxt.internal_relation(%s)::text", (name,)).fetchone()[0]


def frames(db, view="ml.frames"):
    return db.execute(f"SELECT _pxt_base_rowid, frame_idx, title FROM {internal(db, view)} "
                      "ORDER BY _pxt_base_rowid, pos").fetchall()


def test_view_follows_its_base(videos, files, video):
    db = videos
    long = make_video(files / "long.mp4", n=35)
    db.execute("INSERT INTO ml.videos (video, title) VALUES (%s, 'a')", (str(video),))
    view = db.execute("SELECT pxt.create_view('ml.frames', 'ml.videos', "
                      "iterator => 'pxt.frame_iterator(video, fps => 1)')").fetchone()[0]
    assert view == "ml.frames"
    assert frames(db) == [(1, 0, "a"), (1, 10, "a")]  # existing rows are expanded
    shown = [d.name for d in db.execute("SELECT * FROM ml.frames LIMIT 0").description]
    assert shown[-2:] == ["video", "title"] and "frame" in shown  # the view's, then the base's columns
    assert not [c for c in shown if c.startswith("_pxt")]
    assert internal(db, "ml.frames").startswith("pxt_internal.rows_")
    # base columns are joined, not copied
    storage_cols = [r[0] for r in db.execute("SELECT attname FROM pg_attribute WHERE attrelid = 'ml.frames_rows'::regclass "
                                             "AND attnum > 0 AND NOT attisdropped")]
    assert "title" not in storage_cols and "video" not in storage_cols and "frame" in storage_cols
    assert db.execute("SELECT kind, base::text, iterator->>'call' FROM pxt.tables WHERE relid = 'ml.frames_rows'::regclass"
                      ).fetchone() == ("view", 'pxt_data."ml.videos"', "pxt.frame_iterator(video, fps => 1)")
    # insert expands the new rows only
    rel = internal(db, "ml.frames")
    ids_before = db.execute(f"SELECT array_agg(_pxt_rowid ORDER BY _pxt_rowid) FROM {rel}").fetchone()[0]
    db.execute("INSERT INTO ml.videos (video, title) VALUES (%s, 'b'), (%s, 'c')", (str(long), str(video)))
    assert frames(db) == [(1, 0, "a"), (1, 10, "a"), (2, 0, "b"), (2, 10, "b"), (2, 20, "b"), (2, 30, "b"),
                          (3, 0, "c"), (3, 10, "c")]
    assert db.execute(f"SELECT array_agg(_pxt_rowid ORDER BY _pxt_rowid) FROM {rel} WHERE _pxt_base_rowid = 1"
                      ).fetchone()[0] == ids_before
    # updating other columns does not re-expand; updating the iterated column does
    db.execute("UPDATE ml.videos SET title = 'A' WHERE title = 'a'")
    assert db.execute(f"SELECT array_agg(_pxt_rowid ORDER BY _pxt_rowid) FROM {rel} WHERE _pxt_base_rowid = 1"
                      ).fetchone()[0] == ids_before
    assert frames(db)[:2] == [(1, 0, "A"), (1, 10, "A")]
    db.execute("UPDATE ml.videos SET video = %s WHERE title = 'A'", (str(long),))
    assert [r[1] for r in frames(db) if r[0] == 1] == [0, 10, 20, 30]
    # delete removes their rows
    db.execute("DELETE FROM ml.videos WHERE title = 'b'")
    assert sorted({r[0] for r in frames(db)}) == [1, 3]
    assert db.execute("SELECT count(*) FROM ml.frames_rows").fetchone()[0] == 6
    db.execute("TRUNCATE ml.videos")
    assert db.execute("SELECT count(*) FROM ml.frames_rows").fetchone()[0] == 0
    # the view's rows are written by pixelgres only
    db.execute("INSERT INTO ml.videos (video, title) VALUES (%s, 'd')", (str(video),))
    with pytest.raises(psycopg.errors.WrongObjectType, match="ml.frames is an iterator view"):
        db.execute("INSERT INTO ml.frames_rows (_pxt_base_rowid, pos) VALUES (1, 1)")
    with pytest.raises(psycopg.errors.WrongObjectType, match="write the base table instead"):
        db.execute("DELETE FROM ml.frames_rows")
    with pytest.raises(psycopg.errors.WrongObjectType, match="cannot update the iterator columns"):
        db.execute("UPDATE ml.frames_rows SET frame_idx = 7")
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState):
        db.execute("INSERT INTO ml.frames (pos) VALUES (1)")
    assert db.execute("SELECT count(*) FROM ml.frames").fetchone()[0] == 2


def test_view_over_bad_video_names_the_row(videos, files, video):
    db = videos
    db.execute("SELECT pxt.create_view('ml.frames', 'ml.videos', 'pxt.frame_iterator(video)')")
    junk = files / "junk.mp4"
    junk.write_bytes(b"\x00" * 4000)
    os.chmod(junk, 0o644)
    cut = truncated(make_video(files / "fast.mp4", faststart=True), files / "cut.mp4")
    # junk is refused by the insert's check (its headers do not open), before the view sees it
    with pytest.raises(psycopg.errors.InvalidParameterValue) as e:
        db.execute("INSERT INTO ml.videos (video, title) VALUES (%s, 'good'), (%s, 'bad'), (%s, 'good2')",
                   (str(video), str(junk), str(video)))
    bad_id = db.execute("SELECT last_value FROM pg_sequences WHERE sequencename LIKE 'videos%'").fetchone()[0]
    assert str(e.value).startswith(f"invalid video in column video of ml.videos, row _pxt_rowid={bad_id}: ")
    assert "not a decodable video" in str(e.value)
    # a cut video opens (its headers are whole): the view's expansion finds the cut and names the row
    for bad, cause in ((cut, "is truncated"),):
        # several rows in one statement: the error names the bad one
        with pytest.raises(psycopg.errors.InvalidParameterValue) as e:
            db.execute("INSERT INTO ml.videos (video, title) VALUES (%s, 'good'), (%s, 'bad'), (%s, 'good2')",
                       (str(video), str(bad), str(video)))
        msg = str(e.value)
        bad_id = db.execute("SELECT last_value FROM pg_sequences WHERE sequencename LIKE 'videos%'").fetchone()[0] - 1
        assert f"_pxt_rowid={bad_id}, video='{bad}'" in msg, msg
        assert "view ml.frames" in msg and "of ml.videos" in msg and cause in msg
        # a single row too
        with pytest.raises(psycopg.errors.InvalidParameterValue, match=f"video='{re.escape(str(bad))}'.*{cause}"):
            db.execute("INSERT INTO ml.videos (video) VALUES (%s)", (str(bad),))
    assert db.execute("SELECT count(*) FROM ml.videos").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM ml.frames_rows").fetchone()[0] == 0


def test_computed_columns_on_a_view(videos, video):
    db = videos
    db.execute("INSERT INTO ml.videos (video) VALUES (%s)", (str(video),))
    db.execute("SELECT pxt.create_view('ml.frames', 'ml.videos', 'pxt.frame_iterator(video, fps => 2)')")
    db.execute("SELECT pxt.add_computed_column('ml.frames_rows', 'thumb', 'pxt.resize(frame, 16, 8)')")
    db.execute("SELECT pxt.add_computed_column('ml.frames_rows', 'second', 'pos_msec / 1000')")
    db.execute("INSERT INTO ml.videos (video) VALUES (%s)", (str(video),))
    rows = db.execute("SELECT frame_idx, pxt.width(thumb), pxt.height(thumb), second, thumb "
                      f"FROM {internal(db, 'ml.frames')} ORDER BY _pxt_rowid").fetchall()
    assert len(rows) == 8  # backfilled for the first video, computed on insert for the second
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [(i, 16, 8, i / 10) for i in (0, 5, 10, 15)] * 2
    assert [level(db, r[4]) for r in rows[:4]] == [0, 5, 10, 15]
    # the joined view shows the new columns
    cols = [r[0] for r in db.execute("SELECT attname FROM pg_attribute WHERE attrelid = 'ml.frames'::regclass "
                                     "AND attnum > 0")]
    assert {"thumb", "second", "video", "frame"} <= set(cols)
    # dropping a computed column of the view, and a column of the base, follow too
    db.execute("SELECT pxt.drop_column('ml.frames_rows', 'second')")
    db.execute("SELECT pxt.drop_column('ml.videos', 'title')")
    cols = [r[0] for r in db.execute("SELECT attname FROM pg_attribute WHERE attrelid = 'ml.frames'::regclass "
                                     "AND attnum > 0")]
    assert "second" not in cols and "title" not in cols and "thumb" in cols
    db.execute("INSERT INTO ml.videos (video) VALUES (%s)", (str(video),))
    assert db.execute("SELECT count(thumb) FROM ml.frames").fetchone()[0] == 12
    # the iterated column cannot be dropped while the view reads it
    with pytest.raises(psycopg.Error, match="view ml.frames iterates over"):
        db.execute("SELECT pxt.drop_column('ml.videos', 'video')")


def test_table_functions_take_the_view_name(videos, video):
    """pxt.add_computed_column & co. on 'ml.frames' act on its storage (tables.managed)."""
    db = videos
    db.execute("SELECT pxt.create_view('ml.frames', 'ml.videos', 'pxt.frame_iterator(video, fps => 1)')")
    db.execute("SELECT pxt.add_computed_column('ml.frames', 'next_pos', 'pos + 1')")
    db.execute("INSERT INTO ml.videos (video) VALUES (%s)", (str(video),))
    assert db.execute("SELECT array_agg(next_pos ORDER BY pos) FROM ml.frames").fetchone()[0] == [1, 2]
    assert "next_pos" in [r[0] for r in db.execute("SELECT name FROM pxt.columns('ml.frames')")]


def test_views_have_their_own_history(videos, video):
    db = videos
    db.execute("SELECT pxt.create_view('ml.frames', 'ml.videos', 'pxt.frame_iterator(video, fps => 1)')")
    db.execute("INSERT INTO ml.videos (video) VALUES (%s), (%s)", (str(video), str(video)))
    db.execute('DELETE FROM pxt_data."ml.videos" WHERE _pxt_rowid = 1')
    hist = db.execute("SELECT inserts, deletes FROM pxt.history('ml.frames_rows') WHERE change_type = 'data' "
                      "ORDER BY version").fetchall()
    assert hist == [(4, 0), (0, 2)]


def test_view_ddl_and_drop(videos, files, video):
    db = videos
    db.execute("INSERT INTO ml.videos (video, title) VALUES (%s, 'a')", (str(video),))
    # the Pixeltable spelling (column name as a string, bare function name) is accepted too
    db.execute("SELECT pxt.create_view('ml.frames', 'ml.videos', $$frame_iterator('video', num_frames => 2)$$)")
    assert db.execute("SELECT call FROM pxt.iterator_views").fetchone()[0] == 'pxt.frame_iterator(video, num_frames => 2)'
    # a view over a view
    db.execute("SELECT pxt.create_view('ml.words', 'ml.frames', $$pxt.string_splitter(frame || '. Second.')$$)")
    assert db.execute("SELECT count(*), count(DISTINCT frame_idx) FROM ml.words").fetchone() == (4, 2)
    db.execute("ALTER TABLE ml.videos ADD COLUMN lang text")
    db.execute("UPDATE ml.videos SET lang = 'en'")
    assert db.execute("SELECT DISTINCT lang FROM ml.frames").fetchall() == [("en",)]
    db.execute("SELECT pxt.rename_column('ml.videos', 'title', 'name')")
    assert db.execute("SELECT DISTINCT name FROM ml.frames").fetchall() == [("a",)]
    db.execute("INSERT INTO ml.videos (video, name) VALUES (%s, 'b')", (str(video),))
    assert db.execute("SELECT count(*) FROM ml.words").fetchone()[0] == 8
    assert db.execute("SELECT count(*) FROM pxt.views()").fetchone()[0] == 2
    # dropping a view drops its storage and its triggers; the base works as before
    db.execute("SELECT pxt.drop_view('ml.frames')")
    assert db.execute("SELECT count(*) FROM pxt.iterator_views").fetchone()[0] == 0
    assert db.execute("SELECT to_regclass('ml.frames_rows'), to_regclass('ml.words_rows'), to_regclass('ml.words')"
                      ).fetchone() == (None, None, None)
    assert db.execute("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'ml.videos'::regclass AND tgname LIKE 'pxt_view%'"
                      ).fetchone()[0] == 0
    db.execute("INSERT INTO ml.videos (video) VALUES (%s)", (str(video),))
    # DROP VIEW and dropping the base take the storage along
    db.execute("SELECT pxt.create_view('ml.frames', 'ml.videos', 'pxt.frame_iterator(video, fps => 1)')")
    db.execute("DROP VIEW ml.frames")
    assert db.execute("SELECT to_regclass('ml.frames_rows')").fetchone()[0] is None
    db.execute("SELECT pxt.create_view('ml.frames', 'ml.videos', 'pxt.frame_iterator(video, fps => 1)')")
    db.execute("SELECT pxt.drop_table('ml.videos')")
    assert db.execute("SELECT to_regclass('ml.frames_rows'), to_regclass('ml.frames')").fetchone() == (None, None)
    assert db.execute("SELECT count(*) FROM pxt.tables").fetchone()[0] == 0


# --- documents -----------------------------------------------------------------------------------------
def make_pdf(path: Path) -> Path:
    from reportlab.lib.pagesizes import letter
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import PageBreak, Paragraph, SimpleDocTemplate

    ss = getSampleStyleSheet()
    story = [Paragraph("Introduction", ss["Heading1"]),
             Paragraph("Pixelgres keeps data in Postgres. It runs models too.", ss["BodyText"]),
             Paragraph("Second paragraph of the introduction, " * 6, ss["BodyText"]),
             Paragraph("Scope", ss["Heading2"]),
             Paragraph("The scope is video and documents.", ss["BodyText"]),
             PageBreak(),
             Paragraph("Results", ss["Heading1"]),
             Paragraph("Results are on page two.", ss["BodyText"])]
    SimpleDocTemplate(str(path), pagesize=letter, title="Pixelgres Report").build(story)
    os.chmod(path, 0o644)
    return path




def write(path: Path, text: str) -> Path:
    path.write_text(text)
    os.chmod(path, 0o644)
    return path


def chunks(db, doc, *args, **named):
    params = [str(doc)] + list(args)
    sql = ", ".join(["%s"] * len(params) + [f'"{k}" => %s' for k in named])
    return db.execute(f"SELECT pos, text, title, heading, page FROM pxt.document_splitter({sql})",
                      params + list(named.values())).fetchall()


def test_pdf_chunks(db, files):
    pdf = make_pdf(files / "report.pdf")
    rows = chunks(db, pdf, "heading")
    assert [(r[3], r[4]) for r in rows] == [({"h1": "Introduction"}, 1), ({"h1": "Introduction", "h2": "Scope"}, 1),
                                             ({"h1": "Results"}, 2)]
    assert rows[0][1].startswith("Pixelgres keeps data in Postgres. It runs models too.\n\nSecond paragraph")
    assert rows[2][1] == "Results are on page two."
    assert {r[2] for r in rows} == {"Pixelgres Report"}
    sentences = chunks(db, pdf, "sentence")
    assert [r[1] for r in sentences[:2]] == ["Pixelgres keeps data in Postgres.", "It runs models too."]
    assert sentences[-1][1:] == ("Results are on page two.", "Pixelgres Report", {"h1": "Results"}, 2)
    # page only: a chunk per page
    pages = chunks(db, pdf, "page", metadata="page")
    assert [(r[2], r[3], r[4]) for r in pages] == [(None, None, 1), (None, None, 2)]
    assert "Introduction" not in pages[0][1] and "scope is video" in pages[0][1]


def test_chunk_limits(db, files):
    md = write(files / "long.md", "# Long\n\n" + " ".join(f"word{i}," for i in range(100)) + "\n\n## Next\n\nshort one.")
    token = re.compile(r"\w+|[^\w\s]")
    rows = chunks(db, md, "heading,token_limit", 30, 5)
    toks = [token.findall(r[1]) for r in rows]
    assert all(len(t) <= 30 for t in toks) and len(rows) == 9  # 200 tokens: 8 pieces, then "short one."
    for a, b in zip(toks[:7], toks[1:8]):  # consecutive pieces of the long section share 5 tokens
        assert a[-5:] == b[:5]
    assert rows[-1][1:4] == ("short one.", "Long", {"h1": "Long", "h2": "Next"})
    rows = chunks(db, md, "heading,char_limit", 50, overlap=10)
    assert all(len(r[1]) <= 50 for r in rows)
    assert "".join(rows[0][1].split()).startswith("word0,word1,")
    words = [w for r in rows[:-1] for w in r[1].split()]
    assert set(f"word{i}," for i in range(100)) <= set(words)  # nothing lost
    for a, b in zip(rows[:3], rows[1:4]):  # overlap: a piece starts with words that ended the last
        assert a[1].endswith(b[1].split()[0])
    for args, msg in ((("token_limit",), "token_limit needs limit"), (("token_limit", 10, 10), "overlap must be"),
                      (("token_limit,char_limit", 10), "at most one of"), (("chapter",), "unknown separator 'chapter'"),
                      (("paragraph", 10), "limit applies with")):
        with pytest.raises(psycopg.errors.InvalidParameterValue, match=msg):
            chunks(db, md, *args)
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="unknown metadata field 'author'"):
        chunks(db, md, "heading", metadata="author")


def test_document_view(db, files):
    db.execute("""SELECT pxt.create_table('docs', '{"doc": "document", "source": "string"}')""")
    db.execute("SELECT pxt.create_view('chunks', 'docs', "
               "$$pxt.document_splitter(doc, 'heading,token_limit', 40, 8)$$)")
    db.execute("INSERT INTO docs (doc, source) VALUES (%s, 'pdf'), (%s, 'html'), (%s, 'md')",
               (str(make_pdf(files / "r.pdf")), str(write(files / "g.html", HTML)), str(write(files / "m.md", MARKDOWN))))
    got = dict(db.execute("SELECT source, count(*) FROM chunks GROUP BY source").fetchall())
    assert got == {"pdf": 4, "html": 4, "md": 3}
    assert db.execute("SELECT max(page) FROM chunks WHERE source = 'pdf'").fetchone()[0] == 2
    db.execute("SELECT pxt.add_computed_column('chunks_rows', 'n_chars', 'length(text)')")
    assert db.execute("SELECT bool_and(n_chars = length(text)) FROM chunks").fetchone()[0]


# --- audio ------------------------------------------------------------------------------------------------
def make_wav(path: Path, seconds: float, rate: int = 16000, channels: int = 1) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    x = (np.sin(2 * np.pi * 440 * t) * 8000).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.repeat(x[:, None], channels, 1).tobytes())
    os.chmod(path, 0o644)
    return path


def make_m4a(path: Path, seconds: float, rate: int = 22050) -> Path:
    c = av.open(str(path), "w")
    s = c.add_stream("aac", rate=rate, layout="stereo")
    x = (np.sin(2 * np.pi * 330 * np.arange(int(seconds * rate)) / rate) * 8000).astype(np.int16)
    for i in range(0, len(x), 1024):
        part = np.repeat(x[i:i + 1024, None], 2, 1).reshape(1, -1)
        f = av.AudioFrame.from_ndarray(np.ascontiguousarray(part), format="s16", layout="stereo")
        f.sample_rate = rate
        for p in s.encode(f):
            c.mux(p)
    for p in s.encode(None):
        c.mux(p)
    c.close()
    os.chmod(path, 0o644)
    return path


def duration(db, ref: str) -> float:
    data = db.execute("SELECT pg_read_binary_file(pxt.media_path(%s))", (ref,)).fetchone()[0]
    with av.open(io.BytesIO(data)) as c:
        s = c.streams.audio[0]
        return sum(f.samples for f in c.decode(s)) / s.rate


@pytest.mark.parametrize("fmt, ext", [("flac", "flac"), ("wav", "wav"), ("mp3", "mp3")])
def test_audio_segments(db, files, fmt, ext):
    wav = make_wav(files / "tone.wav", 5.5, channels=2)
    rows = db.execute("SELECT pos, start_time_sec, end_time_sec, segment FROM pxt.audio_splitter(%s, 2, 0.5, format => %s)",
                      (str(wav), fmt)).fetchall()
    assert [(r[0], r[1], r[2]) for r in rows] == [(0, 0, 2), (1, 1.5, 3.5), (2, 3, 5), (3, 4.5, 5.5)]
    assert all(r[3].startswith("media://") and r[3].endswith("." + ext) for r in rows)
    assert [duration(db, r[3]) for r in rows] == pytest.approx([2, 2, 2, 1], abs=1e-3)


def test_audio_segments_of_compressed_audio_and_view(db, files):
    m4a = make_m4a(files / "talk.m4a", 7.0)
    rows = db.execute("SELECT start_time_sec, end_time_sec, segment FROM pxt.audio_splitter(%s, 3, min_duration => 1.5)",
                      (str(m4a),)).fetchall()
    assert [r[0] for r in rows] == [0, 3]  # the 1 s tail is shorter than min_duration
    assert [duration(db, r[2]) for r in rows] == pytest.approx([3, 3], abs=1e-3)
    db.execute("""SELECT pxt.create_table('talks', '{"audio": "audio"}')""")
    db.execute("SELECT pxt.create_view('segments', 'talks', 'pxt.audio_splitter(audio, 2.5)')")
    wav = make_wav(files / "t.wav", 5.0)
    db.execute("INSERT INTO talks VALUES (%s), (%s)", (str(m4a), str(wav)))
    by: dict = {}
    for audio, length in db.execute("SELECT audio, end_time_sec - start_time_sec "
                                    f"FROM {internal(db, 'segments')} ORDER BY _pxt_rowid"):
        by.setdefault(audio, []).append(length)
    assert by[str(wav)] == [2.5, 2.5]
    assert by[str(m4a)][:2] == [2.5, 2.5] and len(by[str(m4a)]) == 3 and 1.9 < by[str(m4a)][2] < 2.2
    for args, msg in (("0", "duration must be > 0"), ("2, 2", "overlap must be >= 0 and smaller"),
                      ("2, format => 'ogg'", "segment format must be one of")):
        with pytest.raises(psycopg.errors.InvalidParameterValue, match=msg):
            db.execute(f"SELECT * FROM pxt.audio_splitter(%s, {args})", (str(m4a),))
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="has no audio stream"):
        db.execute("SELECT * FROM pxt.audio_splitter(%s, 1)", (str(make_video(files / "v.mp4")),))


def test_revert_of_the_base_reverts_the_view(videos, files, video):
    db = videos
    db.execute("SELECT pxt.create_view('ml.frames', 'ml.videos', iterator => 'pxt.frame_iterator(video, fps => 1)')")
    db.execute("INSERT INTO ml.videos (video, title) VALUES (%s, 'a')", (str(video),))
    snap = db.execute("SELECT _pxt_rowid, _pxt_base_rowid, frame_idx, frame FROM ml.frames_rows ORDER BY 1").fetchall()
    view_versions = db.execute("SELECT count(*) FROM pxt.history('ml.frames_rows')").fetchone()[0]
    db.execute("INSERT INTO ml.videos (video, title) VALUES (%s, 'b')", (str(video),))
    # each view version records the base version whose statement wrote it
    base_v = db.execute("SELECT version FROM pxt.tables WHERE relid = pxt.internal_relation('ml.videos')").fetchone()[0]
    assert db.execute("SELECT caused_by FROM pxt.versions WHERE relid = pxt.internal_relation('ml.frames_rows') "
                      "ORDER BY version DESC LIMIT 1").fetchone()[0] == base_v
    db.execute("DELETE FROM ml.videos WHERE title = 'a'")
    assert [r[0] for r in db.execute("SELECT DISTINCT title FROM ml.frames")] == ["b"]
    db.execute("SELECT pxt.revert('ml.videos')")  # the delete: frames of 'a' come back, same rows
    db.execute("SELECT pxt.revert('ml.videos')")  # the second insert: frames of 'b' go
    assert db.execute("SELECT _pxt_rowid, _pxt_base_rowid, frame_idx, frame FROM ml.frames_rows ORDER BY 1"
                      ).fetchall() == snap
    assert frames(db) == [(1, 0, "a"), (1, 10, "a")]
    assert db.execute("SELECT count(*) FROM pxt.history('ml.frames_rows')").fetchone()[0] == view_versions
    # a view change made later blocks reverting the base past it
    db.execute("SELECT pxt.add_computed_column('ml.frames', 'w', 'pxt.width(frame)')")
    with pytest.raises(psycopg.Error, match="has changes made after version"):
        db.execute("SELECT pxt.revert('ml.videos')")
