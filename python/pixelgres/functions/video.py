"""Video, audio and document iterators for ``pxt.create_view`` (SQL: ``pxt.frame_iterator``,
``pxt.audio_splitter``, ``pxt.document_splitter``; see the iterator views issue)."""
from __future__ import annotations

from ..client.iterators import Iterator


def frame_iterator(video, *, fps: float | None = None, num_frames: int | None = None,
                   keyframes_only: bool | None = None, **options):
    """One row per frame: at ``fps`` frames per second, ``num_frames`` evenly spaced, or key frames."""
    given = [n for n, v in (("fps", fps), ("num_frames", num_frames), ("keyframes_only", keyframes_only)) if v]
    if len(given) > 1:
        raise TypeError(f"frame_iterator takes at most one of fps, num_frames, keyframes_only (got {', '.join(given)})")
    if fps is not None and fps <= 0:
        raise ValueError("fps must be > 0")
    return Iterator("frame_iterator", video, fps=fps, num_frames=num_frames,
                    keyframes_only=keyframes_only or None, **options)


def audio_splitter(audio, *, duration: float, overlap: float | None = None, **options):
    """One row per segment of ``duration`` seconds."""
    return Iterator("audio_splitter", audio, duration=duration, overlap=overlap, **options)


def document_splitter(document, *, separators: str | None = None, limit: int | None = None,
                      overlap: int | None = None, metadata: str | None = None, **options):
    """One row per chunk of a PDF / HTML / Markdown / text document."""
    return Iterator("document_splitter", document, separators=separators, limit=limit, overlap=overlap,
                    metadata=metadata, **options)

