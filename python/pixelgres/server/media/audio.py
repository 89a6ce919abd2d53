"""Audio segments with PyAV for audio_splitter: fixed-length, optionally overlapping pieces.

The first audio stream is decoded once, resampled to packed 16-bit samples at its own rate
and channel layout, and cut by sample counts, so each segment is exactly ``duration``
seconds long (the last one may be shorter; it is dropped when shorter than
``min_duration``). Segments are encoded losslessly (FLAC by default, or WAV) or as MP3
(encoder padding makes MP3 lengths approximate) and written to the media store. Only the
samples of the segment being filled are held in memory, whatever the file's length.
"""
from __future__ import annotations

import io
import wave

from ..core import deps
from ..core.errors import MediaError
from .store import check_limits, local_path, store_bytes

av = deps.need("av")
np = deps.need("numpy")

FORMATS = {"flac": "flac", "wav": "wav", "mp3": "mp3"}


def _encode(samples, rate: int, layout: str, fmt: str) -> bytes:
    channels = samples.shape[1]
    buf = io.BytesIO()
    if fmt == "wav":
        with wave.open(buf, "wb") as w:
            w.setnchannels(channels)
            w.setsampwidth(2)
            w.setframerate(rate)
            w.writeframes(np.ascontiguousarray(samples, dtype="<i2").tobytes())
        return buf.getvalue()
    codec = {"flac": "flac", "mp3": "libmp3lame"}[fmt]
    with av.open(buf, "w", format=fmt) as out:
        st = out.add_stream(codec, rate=rate, layout=layout)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples).reshape(1, -1), format="s16", layout=layout)
        frame.sample_rate = rate
        for p in st.encode(frame):
            out.mux(p)
        for p in st.encode(None):
            out.mux(p)
    return buf.getvalue()


def _samples(uri: str, path: str):
    """(rate, layout name, generator of int16 arrays shaped (n, channels))."""
    try:
        c = av.open(path)
    except Exception as e:
        raise MediaError(f"not a decodable audio file: {uri!r} ({type(e).__name__}: {e})")
    if not c.streams.audio:
        c.close()
        raise MediaError(f"{uri!r} has no audio stream")
    try:
        check_limits(uri, path, c.duration / 1_000_000 if c.duration else None)
    except MediaError:
        c.close()
        raise
    s = c.streams.audio[0]
    rate = s.codec_context.sample_rate or s.rate
    lay = s.codec_context.layout
    nch = lay.nb_channels if lay else 2
    # a file without a channel mask says "2 channels": name the usual layouts so encoders take them
    layout = {1: "mono", 2: "stereo"}.get(nch, lay.name if lay else "stereo")
    if not rate:
        c.close()
        raise MediaError(f"audio {uri!r} has no sample rate")

    def gen():
        res = av.AudioResampler(format="s16", layout=layout, rate=rate)
        n = 0
        try:
            try:
                for frame in c.decode(s):
                    for f in res.resample(frame):
                        a = f.to_ndarray().reshape(-1, f.layout.nb_channels)
                        n += len(a)
                        yield a
                for f in res.resample(None):
                    a = f.to_ndarray().reshape(-1, f.layout.nb_channels)
                    n += len(a)
                    yield a
            except av.error.FFmpegError as e:
                raise MediaError(f"audio {uri!r} does not decode after {n / rate:.3f} s: {type(e).__name__}: {e}")
            if n == 0:
                raise MediaError(f"audio {uri!r} has no samples")
        finally:
            c.close()

    return rate, layout, gen()


def mono(uri: str, rate: int = 16000):
    """The first audio stream (of an audio or a video file) as one float32 array in [-1, 1],
    mono, at ``rate`` Hz: what speech models take. Within pixelgres.max_media_seconds."""
    path = local_path(uri)
    try:
        c = av.open(path)
    except Exception as e:
        raise MediaError(f"not a decodable audio file: {uri!r} ({type(e).__name__}: {e})")
    with c:
        if not c.streams.audio:
            raise MediaError(f"{uri!r} has no audio stream")
        check_limits(uri, path, c.duration / 1_000_000 if c.duration else None)
        res = av.AudioResampler(format="flt", layout="mono", rate=rate)
        parts = []
        try:
            for frame in c.decode(c.streams.audio[0]):
                parts.extend(f.to_ndarray().reshape(-1) for f in res.resample(frame))
            parts.extend(f.to_ndarray().reshape(-1) for f in res.resample(None))
        except av.error.FFmpegError as e:
            raise MediaError(f"audio {uri!r} does not decode: {type(e).__name__}: {e}")
    if not parts:
        raise MediaError(f"audio {uri!r} has no samples")
    return np.concatenate(parts).astype(np.float32, copy=False)


def check_args(duration, overlap, min_duration, fmt) -> str:
    if duration is None or not duration > 0:
        raise ValueError(f"duration must be > 0 seconds, not {duration}")
    if overlap is None or overlap < 0 or overlap >= duration:
        raise ValueError(f"overlap must be >= 0 and smaller than duration (got {overlap} and {duration})")
    if min_duration is not None and min_duration < 0:
        raise ValueError(f"min_duration must be >= 0, not {min_duration}")
    f = FORMATS.get((fmt or "flac").lower())
    if f is None:
        raise ValueError(f"segment format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    return f


def segments(uri: str, duration: float, overlap: float = 0.0, min_duration: float = 0.0, fmt: str = "flac"):
    """Rows (pos, start_time_sec, end_time_sec, segment)."""
    fmt = check_args(duration, overlap, min_duration, fmt)
    rate, layout, chunks = _samples(uri, local_path(uri))
    length = max(1, round(duration * rate))
    step = max(1, length - round(overlap * rate))
    min_len = round((min_duration or 0) * rate)
    buf, start, pos = [], 0, 0  # samples of the current segment (from sample ``start``)
    have = 0
    last_end = 0
    for a in chunks:
        buf.append(a)
        have += len(a)
        while have >= length:
            seg = np.concatenate(buf) if len(buf) > 1 else buf[0]
            yield (pos, start / rate, (start + length) / rate, store_bytes(_encode(seg[:length], rate, layout, fmt), fmt))
            pos += 1
            last_end = start + length
            seg = seg[step:]
            buf, have, start = [seg], len(seg), start + step
    if have and start + have > last_end and have >= max(min_len, 1):
        seg = np.concatenate(buf) if len(buf) > 1 else buf[0]
        yield (pos, start / rate, (start + have) / rate, store_bytes(_encode(seg, rate, layout, fmt), fmt))
