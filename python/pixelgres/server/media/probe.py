"""Checking a video, audio or document file on write, from its headers, without decoding it.

A media value is probed when it is written, so that a fake or broken file (a text file named
x.mp4, a truncated download) fails at insert, naming the value, rather than at its first
read. The probe reads only what says what the file is: the container's stream headers and
its first few packets (media), the PDF page tree, or the first MiB of a text file. It never
decodes a frame, a sample or a page's content, so its cost does not grow with the file.
"""
from __future__ import annotations

import codecs
import os

from ..core import deps
from ..core.errors import MediaError

PACKETS = 8            # packets of the probed stream read at most
TEXT_PREFIX = 1 << 20  # bytes of a text document checked


def probe(path: str, kind: str, label: str) -> dict:
    """What ``path`` (a local file) holds, as a ``kind`` ("video", "audio" or "document")
    value named ``label`` in messages; MediaError if it is not one."""
    if kind in ("video", "audio"):
        return _media(path, kind, label)
    if kind == "document":
        return _document(path, label)
    raise ValueError(f"cannot probe a {kind!r} value: the kind must be video, audio or document")


def _why(e: Exception, path: str) -> str:
    """A library exception as a message: its class and text, without the local path (an FFmpeg
    error's text is its strerror; its str() adds the errno and the file name)."""
    text = getattr(e, "strerror", None) or str(e) or "no detail"
    return f"{type(e).__name__}: {text}".replace(path, "<file>")


# --- video and audio (PyAV) -----------------------------------------------------------------------
def _media(path: str, kind: str, label: str) -> dict:
    av = deps.need("av")

    def bad(detail: str) -> MediaError:
        return MediaError(f"not a decodable {kind}: {label!r} ({detail})")

    try:
        with av.open(path) as c:
            if c.format.name == "tty":  # FFmpeg's demuxer for ANSI art: any .txt file opens as "video"
                raise bad("it is a text file")
            streams = [s for s in c.streams if s.type == kind and not (
                kind == "video" and s.disposition & av.stream.Disposition.attached_pic)]  # cover art
            if not streams:
                has = ", ".join(sorted({s.type for s in c.streams})) or "none"
                raise bad(f"it has no {kind} stream; its streams: {has}")
            stream = streams[0]
            ctx = stream.codec_context
            if ctx is None:  # FFmpeg has no decoder for it
                raise bad(f"its {kind} codec is not supported")
            for s in c.streams:  # the demuxer skips other streams' packets instead of reading them
                if s is not stream:
                    s.discard = av.stream.Discard.all
            packets = 0
            for p in c.demux(stream):  # ends with an empty flush packet
                packets += 1 if p.size else 0
                if packets >= PACKETS:
                    break
            if not packets:
                raise bad(f"it has no {kind} data")
            info = {"format": c.format.name, "codec": ctx.name, "duration": _duration(c, stream)}
            if kind == "video":
                info.update(streams=len(c.streams), width=ctx.width, height=ctx.height)
            else:
                info.update(sample_rate=ctx.sample_rate, channels=ctx.channels)
            return info
    except MediaError:
        raise
    except Exception as e:
        raise bad(_why(e, path)) from None


def _duration(c, stream) -> float | None:
    if c.duration is not None:
        return c.duration / 1_000_000  # AV_TIME_BASE
    if stream.duration is not None and stream.time_base:
        return float(stream.duration * stream.time_base)
    return None


# --- documents ----------------------------------------------------------------------------------
def _document(path: str, label: str) -> dict:
    with open(path, "rb") as f:
        head = f.read(TEXT_PREFIX + 1)
    ext = (os.path.splitext(label.split("?")[0])[1] or os.path.splitext(path)[1]).lower()
    if head.startswith(b"%PDF-"):
        return {"format": "pdf", "pages": _pdf_pages(path, label)}
    if ext == ".pdf":
        raise MediaError(f"not a PDF document: {label!r} (no %PDF- header)")
    whole = len(head) <= TEXT_PREFIX
    head = head[:TEXT_PREFIX]
    try:  # not final unless the file ends here: a character cut at the boundary is not an error
        text = codecs.getincrementaldecoder("utf-8")().decode(head, final=whole)
    except UnicodeDecodeError as e:
        try:  # what the document splitter also reads (media.documents)
            text = head.decode("cp1252")
        except UnicodeDecodeError:
            raise MediaError(f"not a PDF or text document: {label!r} (neither UTF-8 nor Windows-1252; "
                             f"invalid UTF-8 at byte {e.start})") from None
    if "\x00" in text:
        raise MediaError(f"not a PDF or text document: {label!r} (binary data: it contains NUL bytes)")
    start = text[:4096].lstrip("\ufeff").lstrip().lower()  # after a byte order mark and whitespace
    if ext in (".html", ".htm", ".xhtml") or start.startswith(("<!doctype html", "<html")):
        return {"format": "html"}
    if ext in (".md", ".markdown", ".mdown"):
        return {"format": "markdown"}
    return {"format": "text"}


def _pdf_pages(path: str, label: str) -> int:
    pypdf = deps.need("pypdf")
    try:
        with open(path, "rb") as f:  # a file, not the path: pypdf would read a path into memory whole
            reader = pypdf.PdfReader(f, strict=False)
            if reader.is_encrypted and not reader.decrypt(""):
                raise MediaError(f"not a readable PDF: {label!r} (it is encrypted with a password)")
            pages = len(reader.pages)  # the page tree, not the pages' content
    except MediaError:
        raise
    except Exception as e:
        raise MediaError(f"not a readable PDF: {label!r} ({_why(e, path)})") from None
    if not pages:
        raise MediaError(f"not a readable PDF: {label!r} (it has no pages)")
    return pages
