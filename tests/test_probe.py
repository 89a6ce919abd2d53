"""Probing media on write (media/probe.py), without a database: real files made here with
PyAV and pypdf, real fakes (text named .mp4, truncated and garbled containers, junk PDFs)."""
import struct

import av
import numpy as np
import pypdf
import pytest

from pixelgres.testing.media import HTML, MARKDOWN, garble, grey_video
from pixelgres.testing.offline import server_module

probe_mod = server_module("media.probe")
probe = probe_mod.probe
from pixelgres.server.core.errors import MediaError  # noqa: E402  (after the stand-in plpy)


def refused(path, kind, label, match):
    """probe's MediaError message, checked to name the label and to be fit for a user."""
    with pytest.raises(MediaError, match=match) as e:
        probe(str(path), kind, label)
    msg = str(e.value)
    assert repr(label) in msg
    assert "0x" not in msg and "Traceback" not in msg and str(path) not in msg, msg
    assert e.value.__cause__ is None and (e.value.__suppress_context__ or e.value.__context__ is None)
    return msg


def sine(path, codec="pcm_s16le", rate=8000, seconds=1):
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=rate, layout="mono")
        t = np.arange(rate * seconds) / rate
        frame = av.AudioFrame.from_ndarray((np.sin(2 * np.pi * 440 * t) * 10000).astype(np.int16)[None],
                                           format="s16", layout="mono")
        frame.sample_rate = rate
        for p in [*s.encode(frame), *s.encode()]:
            c.mux(p)
    return path


def pdf(path, pages=3, password=None):
    w = pypdf.PdfWriter()
    for _ in range(pages):
        w.add_blank_page(200, 200)
    if password is not None:
        w.encrypt(user_password=password, owner_password="owner")
    w.write(str(path))
    return path


def talkie(path, seconds=2):
    """64x48 h264 at 10 fps with an AAC track: both kinds in one container."""
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=10)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        a = c.add_stream("aac", rate=8000, layout="mono")
        frames = [av.VideoFrame.from_ndarray(np.full((48, 64, 3), 10 * i, np.uint8), format="rgb24")
                  for i in range(10 * seconds)]
        sound = av.AudioFrame.from_ndarray(np.zeros((1, 8000 * seconds), np.float32), format="fltp", layout="mono")
        sound.sample_rate = 8000
        for p in [*(p for f in frames for p in v.encode(f)), *v.encode(), *a.encode(sound), *a.encode()]:
            c.mux(p)
    return path


@pytest.fixture
def video(tmp_path):
    return grey_video(tmp_path / "clip.mp4", 20, rate=10, size=(64, 48))


# --- good files -----------------------------------------------------------------------------------
def test_video(video):
    info = probe(str(video), "video", "s3://b/clip.mp4")
    assert info == {"format": "mov,mp4,m4a,3gp,3g2,mj2", "streams": 1, "width": 64, "height": 48,
                    "codec": "h264", "duration": pytest.approx(2.0)}


def test_video_with_sound_is_both(tmp_path):
    path = str(talkie(tmp_path / "talkie.mp4"))
    assert probe(path, "video", "talkie.mp4") | {"duration": None} == {
        "format": "mov,mp4,m4a,3gp,3g2,mj2", "streams": 2, "width": 64, "height": 48, "codec": "h264", "duration": None}
    audio = probe(path, "audio", "talkie.mp4")
    assert (audio["codec"], audio["sample_rate"], audio["channels"]) == ("aac", 8000, 1)
    assert audio["duration"] == pytest.approx(2.0, abs=0.2)


@pytest.mark.parametrize("name,codec,fmt", [("tone.wav", "pcm_s16le", "wav"), ("tone.flac", "flac", "flac")])
def test_audio(tmp_path, name, codec, fmt):
    info = probe(str(sine(tmp_path / name, codec)), "audio", name)
    assert info == {"format": fmt, "codec": codec, "sample_rate": 8000, "channels": 1,
                    "duration": pytest.approx(1.0, abs=0.01)}


def test_pdf_pages(tmp_path):
    assert probe(str(pdf(tmp_path / "a.pdf")), "document", "a.pdf") == {"format": "pdf", "pages": 3}


def test_pdf_by_content_not_name(tmp_path):
    assert probe(str(pdf(tmp_path / "blob", pages=2)), "document", "s3://b/blob") == {"format": "pdf", "pages": 2}


def test_pdf_with_only_an_owner_password_opens(tmp_path):
    assert probe(str(pdf(tmp_path / "o.pdf", 1, password="")), "document", "o.pdf")["pages"] == 1


@pytest.mark.parametrize("name,text,fmt", [
    ("guide.html", HTML, "html"),
    ("guide", "\ufeff \n <!DOCTYPE HTML><p>x</p>", "html"),
    ("page.txt", "<HTML><body>x</body></HTML>", "html"),
    ("manual.md", MARKDOWN, "markdown"),
    ("notes.txt", "plain words, ünïcode too\n", "text"),
    ("notes", "", "text"),
])
def test_text_documents(tmp_path, name, text, fmt):
    (tmp_path / name).write_text(text, encoding="utf-8")
    assert probe(str(tmp_path / name), "document", name) == {"format": fmt}


def test_multibyte_char_cut_by_the_prefix_is_accepted(tmp_path):
    n = probe_mod.TEXT_PREFIX
    (tmp_path / "big.txt").write_bytes(b"a" * (n - 1) + "é".encode() + b" \xff after the prefix: unchecked")
    assert probe(str(tmp_path / "big.txt"), "document", "big.txt") == {"format": "text"}


# --- fakes and broken files -----------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["video", "audio"])
def test_text_named_as_media(tmp_path, kind):
    (tmp_path / "x.mp4").write_text("hello, this is not a video\n" * 10)
    msg = refused(tmp_path / "x.mp4", kind, "s3://b/x.mp4", f"^not a decodable {kind}: ")
    assert "InvalidDataError: Invalid data found when processing input" in msg
    assert "Errno" not in msg


def test_txt_file_is_not_video(tmp_path):
    """FFmpeg's tty demuxer opens any .txt as an ANSI-art video stream."""
    (tmp_path / "notes.txt").write_text("hello\n" * 100)
    refused(tmp_path / "notes.txt", "video", "notes.txt", r"\(it is a text file\)$")


def test_audio_only_in_a_video_column(tmp_path):
    msg = refused(sine(tmp_path / "tone.wav"), "video", "tone.wav", "no video stream")
    assert msg.endswith("(it has no video stream; its streams: audio)")


def test_silent_video_in_an_audio_column(video):
    refused(video, "audio", "clip.mp4", r"\(it has no audio stream; its streams: video\)$")


def test_unknown_codec(tmp_path):
    data = b"\x01\x02" * 4000
    fmt = struct.pack("<HHIIHH", 0x7777, 1, 8000, 16000, 2, 16)  # a WAVE format tag FFmpeg does not know
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    (tmp_path / "odd.wav").write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    refused(tmp_path / "odd.wav", "audio", "odd.wav", r"\(its audio codec is not supported\)$")


def test_truncated_video(tmp_path, video):
    (tmp_path / "cut.mp4").write_bytes(video.read_bytes()[:200])  # the moov atom (at the end) is gone
    refused(tmp_path / "cut.mp4", "video", "cut.mp4",
            r"\(InvalidDataError: Invalid data found when processing input\)$")


def test_garbled_header(tmp_path, video):
    (tmp_path / "g.mp4").write_bytes(garble(video.read_bytes(), 0, 64))
    refused(tmp_path / "g.mp4", "video", "g.mp4", "InvalidDataError")


def test_header_without_data(tmp_path):
    """moov first, then the file ends after the mdat box header: streams, but not one packet."""
    data = grey_video(tmp_path / "fs.mp4", 20, faststart=True).read_bytes()
    (tmp_path / "h.mp4").write_bytes(data[:data.index(b"mdat") + 4])
    refused(tmp_path / "h.mp4", "video", "h.mp4", r"\(it has no video data\)$")


def test_pdf_header_then_junk(tmp_path):
    (tmp_path / "j.pdf").write_bytes(b"%PDF-1.4\n" + b"this is junk\n" * 20)
    refused(tmp_path / "j.pdf", "document", "j.pdf", r"^not a readable PDF: 'j.pdf' \(PdfStreamError: ")


def test_encrypted_pdf(tmp_path):
    refused(pdf(tmp_path / "e.pdf", 1, password="secret"), "document", "e.pdf", "it is encrypted with a password")


def test_pdf_without_pages(tmp_path):
    refused(pdf(tmp_path / "z.pdf", 0), "document", "z.pdf", r"\(it has no pages\)$")


def test_pdf_name_without_pdf_content(tmp_path):
    (tmp_path / "fake.pdf").write_text("just text")
    refused(tmp_path / "fake.pdf", "document", "fake.pdf", r"\(no %PDF- header\)$")


def test_binary_junk_named_txt(tmp_path):
    (tmp_path / "j.txt").write_bytes(np.random.default_rng(3).bytes(4096) + b"\x00" * 64)
    refused(tmp_path / "j.txt", "document", "j.txt", "^not a PDF or text document: 'j.txt' ")


def test_nul_bytes_in_valid_utf8(tmp_path):
    (tmp_path / "n.md").write_bytes(b"# Title\n\x00\x00\x00 body\n")
    refused(tmp_path / "n.md", "document", "n.md", r"\(binary data: it contains NUL bytes\)$")


@pytest.mark.parametrize("data,at", [(b"caf\x81\x8d latin-1?", 3), (b"\xef\xbb\xbfBOM, then \x81", 13),
                                     (b"ends mid-char \x81\xc3", 14)])
def test_neither_utf8_nor_windows_1252(tmp_path, data, at):
    (tmp_path / "l.txt").write_bytes(data)
    refused(tmp_path / "l.txt", "document", "l.txt", rf"invalid UTF-8 at byte {at}\)$")


def test_windows_1252_text_is_accepted(tmp_path):
    """The document splitter reads Windows-1252 when a file is not UTF-8; so does the check."""
    (tmp_path / "w.txt").write_bytes("caf\u00e9 \u201cquoted\u201d".encode("cp1252"))
    assert probe(str(tmp_path / "w.txt"), "document", "w.txt") == {"format": "text"}


def test_other_kinds_are_not_probed_here(tmp_path, video):
    with pytest.raises(ValueError, match="'image'"):
        probe(str(video), "image", "clip.mp4")
