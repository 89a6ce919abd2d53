"""Video frames with PyAV: the frame iterator, single-frame extraction, virtual frames.

Decoding is planned before it starts. Unless every frame is wanted, a demux pass (reading
packets, no decoding) lists the stream's packets in decode order with their timestamps and
key flags; that gives each frame's index in presentation order, the frame count (a container
whose index promises more frames than the file holds is reported as truncated) and, for each
wanted frame, the packets that must be decoded to produce it: from the last keyframe at or
before it up to its own packet. Packets outside those ranges are not fed to the decoder at
all (a long gap is crossed with a seek instead of reading through it); inside a range, frames
that are not wanted are decoded only if other frames refer to them (``skip_frame=NONREF``).
The ranges are cut at closed-GOP keyframes into groups that pixelgres.media_threads helpers
decode at once, each with its own decoder, and each converts, encodes and stores its frames
(``split``, ``_selected``): one decoder's own threads gained nothing on 2 cores, separate
decoders use both. When every frame is wanted, the main thread decodes (``thread_type=AUTO``)
and the helpers convert, encode and store. A *virtual* frame is stored as a reference
``pxt-frame:<idx>:<pts>:<video>`` and decoded when read (``frame_file``), with the decoded PNG
cached in the media store.
"""
from __future__ import annotations

import bisect
import hashlib
import math
import os
import threading
from collections import deque
from dataclasses import dataclass

from ..core import deps, threads
from ..core.errors import MediaError
from .encode import pil_bytes
from .gucs import media_threads
from .store import FRAME_SCHEME, check_limits, local_path, media_dir, setting, store_bytes, write_atomic, writer

av = deps.need("av")
Image = deps.need("PIL.Image")
VideoReformatter = deps.need("av.video.reformatter").VideoReformatter

FORMATS = {"jpeg": ("JPEG", "jpg"), "jpg": ("JPEG", "jpg"), "png": ("PNG", "png")}
SEEK_GAP = 120      # packets: a longer gap between wanted frames is crossed with a seek, not read through
IN_FLIGHT = 8       # frames converted/encoded concurrently at most
_LOCAL = threading.local()


@dataclass
class Packet:
    pts: int
    dts: int | None
    key: bool


@dataclass
class Index:
    """The stream's packets in decode order, and the frames in presentation order."""
    packets: list[Packet]
    pts: list[int]            # presentation order
    time_base: object         # fractions.Fraction
    rate: float | None        # native frame rate

    def frame_idx(self, pts: int) -> int:
        return bisect.bisect_left(self.pts, pts)

    def msec(self, pts: int) -> float:
        return float((pts - self.pts[0]) * self.time_base * 1000)


# --- opening and indexing ---------------------------------------------------------------------
def _open(uri: str, path: str | None = None, checked: bool = False):
    """The container and its video stream. ``checked``: the limits were checked on the main
    thread already (by ``index``), so a helper thread, which may not read settings, opens it."""
    path = path or local_path(uri)
    try:
        c = av.open(path)
    except Exception as e:
        raise MediaError(f"not a decodable video: {uri!r} ({type(e).__name__}: {e})")
    if not c.streams.video:
        kinds = sorted({st.type for st in c.streams} & {"audio", "subtitle"})
        c.close()
        if not kinds:
            raise MediaError(f"not a decodable video: {uri!r} (no audio or video streams found: the file is "
                             "truncated or not a video)")
        raise MediaError(f"{uri!r} has no video stream (it has {', '.join(kinds)})")
    if checked:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        return c, s
    try:
        check_limits(uri, path, c.duration / 1_000_000 if c.duration else None)
    except MediaError:
        c.close()
        raise
    fmt = c.format.name or ""
    if fmt in ("image2", "png_pipe", "jpeg_pipe", "webp_pipe", "gif", "bmp_pipe", "tiff_pipe") or fmt.endswith("_pipe"):
        c.close()
        raise MediaError(f"{uri!r} is an image ({fmt}), not a video")
    s = c.streams.video[0]
    limit = int(setting("pixelgres.max_image_pixels"))
    if (s.codec_context.width or 0) * (s.codec_context.height or 0) > limit:  # before any frame is decoded
        c.close()
        raise MediaError(f"video {uri!r} has {s.codec_context.width}x{s.codec_context.height} frames, more than "
                         f"pixelgres.max_image_pixels ({limit})")
    try:  # the container's index says where every packet is: a file cut short is caught here
        entries = s.index_entries
        end = max((e.pos + e.size for e in entries), default=0) if len(entries) else 0
    except Exception:
        end = 0
    if end > os.path.getsize(path):
        c.close()
        raise MediaError(f"video {uri!r} is truncated: its index needs {end} bytes, the file has "
                         f"{os.path.getsize(path)}")
    s.thread_type = "AUTO"
    return c, s


def _rate(s) -> float | None:
    r = s.average_rate or s.guessed_rate or s.base_rate
    return float(r) if r else None


def index(uri: str, path: str) -> Index:
    """Demux pass: every packet's timestamps and key flag, no decoding."""
    c, s = _open(uri, path)
    try:
        pkts = []
        try:
            for p in c.demux(s):
                if p.size == 0 and p.pts is None:
                    continue  # the demuxer's end-of-stream marker
                if p.pts is None:
                    raise MediaError(f"video {uri!r} has packets without timestamps; "
                                     "remux it (e.g. into MP4 or MKV) to iterate over it")
                pkts.append(Packet(p.pts, p.dts, bool(p.is_keyframe)))
        except av.error.FFmpegError as e:
            raise MediaError(f"video {uri!r} cannot be read after {len(pkts)} packets: {e}")
        if s.frames and len(pkts) < s.frames:
            raise MediaError(f"video {uri!r} is truncated: its index lists {s.frames} frames, "
                             f"the file holds {len(pkts)}")
        if not pkts:
            raise MediaError(f"video {uri!r} has no frames")
        return Index(pkts, sorted(p.pts for p in pkts), s.time_base, _rate(s))
    finally:
        c.close()


# --- which frames ---------------------------------------------------------------------------------
def check_args(fps, num_frames, keyframes_only) -> None:
    given = [n for n, v in (("fps", fps), ("num_frames", num_frames), ("keyframes_only", keyframes_only or None))
             if v is not None]
    if len(given) > 1:
        raise ValueError(f"frame_iterator takes at most one of fps, num_frames and keyframes_only "
                         f"(got {' and '.join(given)})")
    if fps is not None and not fps > 0:
        raise ValueError(f"fps must be > 0, not {fps}")
    if num_frames is not None and num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, not {num_frames}")


def select(ix: Index, fps=None, num_frames=None, keyframes_only=False) -> list[int]:
    """pts of the wanted frames, in presentation order.

    fps: the frame shown at each time k/fps within the video (so ceil(duration * fps)
    frames; every frame when fps >= the native rate); num_frames: that many frames evenly
    spaced from the first to the last (all when there are fewer); keyframes_only: keyframes.
    """
    pts, n = ix.pts, len(ix.pts)
    if keyframes_only:
        return sorted(p.pts for p in ix.packets if p.key)
    if num_frames is not None:
        if num_frames >= n:
            return list(pts)
        if num_frames == 1:
            return [pts[0]]
        return [pts[i] for i in sorted({round(k * (n - 1) / (num_frames - 1)) for k in range(num_frames)})]
    if fps is None or (ix.rate and fps >= ix.rate):
        return list(pts)
    times = [float((p - pts[0]) * ix.time_base) for p in pts]
    step = 1.0 / ix.rate if ix.rate else (times[-1] - times[0]) / max(n - 1, 1)
    duration = times[-1] + step
    out, k = [], 0
    while True:
        t = k / fps
        if t >= duration - 1e-9:
            break
        i = bisect.bisect_right(times, t + 1e-9) - 1  # the frame on screen at time t
        if i >= 0 and (not out or out[-1] != pts[i]):
            out.append(pts[i])
        k += 1
    return out


def plan(ix: Index, wanted: list[int]) -> list[tuple[int, int]]:
    """Decode-order packet ranges [start, end] that produce the wanted frames."""
    pos = {p.pts: i for i, p in enumerate(ix.packets)}
    keys = sorted((p.pts, i) for i, p in enumerate(ix.packets) if p.key)
    key_pts = [k[0] for k in keys]
    ranges = []
    for t in wanted:
        j = bisect.bisect_right(key_pts, t) - 1
        start = keys[j][1] if j >= 0 else 0
        ranges.append((min(start, pos[t]), pos[t]))
    ranges.sort()
    merged: list[list[int]] = []
    for a, b in ranges:
        if merged and a <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return [(a, b) for a, b in merged]


def split(ix: Index, wanted: list[int], parts: int) -> list[tuple[list[tuple[int, int]], list[int]]]:
    """``plan``'s ranges cut into at most ``parts`` groups of similar work, each (ranges, its
    wanted frames), that separate decoders can decode at once. A cut falls only at a keyframe
    that no frame crosses (every packet before it presents before it, every packet after it
    after it: a closed GOP), so each group starts clean at its own keyframe. The work of a
    packet range is its packets plus 3 per wanted frame (converting and encoding a frame
    costs about three decodes)."""
    ranges = plan(ix, wanted)
    pk = ix.packets
    if parts <= 1 or not pk:
        return [(ranges, wanted)]
    low, low_after = math.inf, [0] * len(pk)  # least pts from each packet on
    for i in range(len(pk) - 1, -1, -1):
        low = low_after[i] = min(low, pk[i].pts)
    cuts, high = [], -math.inf
    for i, p in enumerate(pk):
        if p.key and i and high < p.pts <= low_after[i]:
            cuts.append(i)
        high = max(high, p.pts)
    pos = {p.pts: i for i, p in enumerate(pk)}
    at = sorted(pos[t] for t in wanted)
    pieces = []
    for a, b in ranges:
        for k in cuts[bisect.bisect_right(cuts, a):bisect.bisect_right(cuts, b)]:
            pieces.append((a, k - 1))
            a = k
        pieces.append((a, b))

    def work(a: int, b: int) -> int:
        return b - a + 1 + 3 * (bisect.bisect_right(at, b) - bisect.bisect_left(at, a))
    share = sum(work(a, b) for a, b in pieces) / parts
    groups: list[list] = [[] for _ in range(parts)]
    done = 0
    for a, b in pieces:  # a piece goes to the group its middle falls in
        w = work(a, b)
        g = groups[min(parts - 1, int((done + w / 2) / share))]
        if g and g[-1][1] + 1 == a:  # adjacent pieces in one group decode as one range
            g[-1] = (g[-1][0], b)
        else:
            g.append((a, b))
        done += w
    return [(g, [t for t in wanted if g[0][0] <= pos[t] <= g[-1][1]]) for g in groups if g]


# --- decoding -------------------------------------------------------------------------------------
def _decode_error(uri: str, e: Exception, where: str) -> MediaError:
    return MediaError(f"video {uri!r} does not decode {where}: {type(e).__name__}: {e}")


def decode_all(uri: str, path: str):
    """Every frame in presentation order (one pass, no demux pass)."""
    c, s = _open(uri, path)
    n = 0
    try:
        try:
            for f in c.decode(s):
                f.time_base = s.time_base
                yield f
                n += 1
        except av.error.FFmpegError as e:
            raise _decode_error(uri, e, f"after frame {n}")
        if s.frames and n < s.frames:
            raise MediaError(f"video {uri!r} is truncated: its index lists {s.frames} frames, {n} decode")
        if n == 0:
            raise MediaError(f"video {uri!r} has no frames")
    finally:
        c.close()


def decode_selected(uri: str, path: str, ix: Index, wanted: list[int], ranges=None, threaded: bool = True):
    """The wanted frames (by pts), in decode order, decoding as little as possible: the packet
    ``ranges`` (``plan``'s, or a piece of them from ``split``), with the decoder's own threads
    unless ``threaded`` is false (when several decoders run at once). Runs on any thread:
    ``index`` checked the file's limits on the main thread."""
    ranges = plan(ix, wanted) if ranges is None else ranges
    want = set(wanted)
    c, s = _open(uri, path, checked=True)
    if not threaded:
        s.thread_type = "NONE"
    ctx = s.codec_context
    pos = {p.pts: i for i, p in enumerate(ix.packets)}
    got = 0

    def out(frames):
        nonlocal got
        for f in frames:
            if f.pts in want:
                got += 1
                f.time_base = s.time_base
                yield f

    try:
        try:
            at = 0  # decode index of the next packet the demuxer returns
            for start, end in ranges:
                if start - at > SEEK_GAP:  # cheaper to seek than to read through the gap
                    k = ix.packets[start]
                    c.seek(k.dts if k.dts is not None else k.pts, backward=True, stream=s)
                    at = None
                for p in c.demux(s):
                    if p.size == 0 and p.pts is None:
                        break
                    i = pos.get(p.pts) if at is None else at
                    if i is None:
                        raise MediaError(f"video {uri!r}: a packet at pts {p.pts} was not there when indexed")
                    at = i + 1
                    if i < start:
                        continue
                    ctx.skip_frame = "DEFAULT" if p.pts in want else "NONREF"
                    yield from out(ctx.decode(p))
                    if i >= end:
                        break
                else:
                    at = len(ix.packets)
                if at is not None and at <= start:
                    raise MediaError(f"video {uri!r}: seeking to packet {start} failed")
                ctx.skip_frame = "DEFAULT"
                yield from out(ctx.decode(None))  # drain, then reset for the next range
                ctx.flush_buffers()
        except av.error.FFmpegError as e:
            raise _decode_error(uri, e, f"(after {got} wanted frames)")
        if got < len(want):
            raise MediaError(f"video {uri!r}: {len(want) - got} of the {len(want)} wanted frames did not decode")
    finally:
        c.close()


# --- output ---------------------------------------------------------------------------------------
def _encode(frame, fmt: str, quality: int) -> bytes:
    """RGB conversion and encoding: runs on the pool (swscale and, through media.encode,
    Pillow release the GIL). Each thread keeps one reformatter: a frame's own builds a new
    swscale context per frame, which cost 3x the conversion itself."""
    r = getattr(_LOCAL, "reformatter", None)
    if r is None:
        r = _LOCAL.reformatter = VideoReformatter()
    im = Image.fromarray(r.reformat(frame, format="rgb24").to_ndarray())
    if fmt == "JPEG":
        return pil_bytes(im, "JPEG", quality=quality)
    return pil_bytes(im, "PNG", compress_level=1)


def frame_ref(uri: str, frame_idx: int, pts: int) -> str:
    return f"{FRAME_SCHEME}{frame_idx}:{pts}:{uri}"


def check_format(fmt: str | None, quality: int | None) -> tuple[str, str]:
    f = FORMATS.get((fmt or "jpeg").lower())
    if f is None:
        raise ValueError(f"frame format must be 'jpeg' or 'png', not {fmt!r}")
    if quality is not None and not 1 <= quality <= 100:
        raise ValueError(f"quality must be between 1 and 100, not {quality}")
    return f


def frame_iterator(uri: str | None, fps=None, num_frames=None, keyframes_only=None, virtual=None,
                   fmt: str | None = "jpeg", quality: int | None = 90):
    """pxt.frame_iterator. The arguments are checked even without a video: a view over an
    empty table must refuse bad ones when it is created."""
    check_args(fps, num_frames, keyframes_only or False)
    if uri is None:
        return []
    return frames(uri, fps, num_frames, keyframes_only or False, virtual or False, fmt, quality)


def frames(uri: str, fps=None, num_frames=None, keyframes_only=False, virtual=False,
           fmt: str | None = "jpeg", quality: int | None = 90):
    """Rows (pos, frame_idx, pos_msec, pts, key_frame, frame) of the frame iterator."""
    check_args(fps, num_frames, keyframes_only)
    pil_fmt, ext = check_format(fmt, quality)
    quality = quality or 90
    path = local_path(uri)
    every = fps is None and num_frames is None and not keyframes_only
    ix = None
    if not every or virtual:
        ix = index(uri, path)
        wanted = select(ix, fps, num_frames, keyframes_only)
        if virtual:
            keys = {p.pts for p in ix.packets if p.key}
            for pos, t in enumerate(wanted):
                i = ix.frame_idx(t)
                yield (pos, i, ix.msec(t), t, t in keys, frame_ref(uri, i, t))
            return
        if len(wanted) < len(ix.pts):
            yield from _selected(uri, path, ix, wanted, pil_fmt, ext, quality)
            return
        # every frame wanted (fps at or above the native rate...): one plain pass
    source = decode_all(uri, path)
    put = writer()

    def job(f) -> str:
        return put(_encode(f, pil_fmt, quality), ext)
    pending: deque = deque()
    pos, first_pts = 0, None
    pool = threads.pool("pixelgres-frames", media_threads())

    def row(item):
        f_idx, msec, t, key, fut = item
        return (pos, f_idx, msec, t, key, fut.result())
    try:
        for f in source:
            if first_pts is None:
                first_pts = ix.pts[0] if ix else f.pts
            f_idx = ix.frame_idx(f.pts) if ix else pos + len(pending)
            msec = float((f.pts - first_pts) * f.time_base * 1000)
            pending.append((f_idx, msec, f.pts, bool(f.key_frame), pool.submit(job, f)))
            while len(pending) >= IN_FLIGHT or (pending and pending[0][4].done()):
                yield row(pending.popleft())
                pos += 1
        while pending:
            yield row(pending.popleft())
            pos += 1
    finally:
        for item in pending:
            item[4].cancel()


def _selected(uri: str, path: str, ix: Index, wanted: list[int], pil_fmt: str, ext: str, quality: int):
    """frames() of some frames: ``split``'s groups each decoded, converted, encoded and stored by
    one helper (pixelgres.media_threads; decoding releases the GIL, so separate decoders use
    every core where one decoder's own threads gained nothing on 2 cores), in presentation order."""
    n = media_threads()
    groups = split(ix, wanted, 4 * n if n > 1 else 1)  # more groups than helpers: whoever is free takes the next
    put, stop, found = writer(), threading.Event(), []

    def work(group):
        out = []
        for f in decode_selected(uri, path, ix, group[1], group[0], threaded=len(groups) == 1):
            if stop.is_set():  # the statement ended (an error elsewhere, a cancel)
                break
            out.append((f.pts, bool(f.key_frame), put(_encode(f, pil_fmt, quality), ext)))
        return out

    def done(_: int, r) -> None:
        if isinstance(r, BaseException):
            raise r
        found.extend(r)
    try:
        threads.each(work, groups, n, done, prefix="pixelgres-frames")
    finally:
        stop.set()
    found.sort()
    for pos, (t, key, ref) in enumerate(found):
        yield (pos, ix.frame_idx(t), ix.msec(t), t, key, ref)


# --- single frames --------------------------------------------------------------------------------
def extract(uri: str, frame_idx: int, fmt: str | None = "jpeg", quality: int | None = 90) -> str:
    """Frame ``frame_idx`` (presentation order) as an image in the media store."""
    pil_fmt, ext = check_format(fmt, quality)
    path = local_path(uri)
    ix = index(uri, path)
    if not 0 <= frame_idx < len(ix.pts):
        raise MediaError(f"video {uri!r} has {len(ix.pts)} frames; there is no frame {frame_idx}")
    for f in decode_selected(uri, path, ix, [ix.pts[frame_idx]]):
        return store_bytes(_encode(f, pil_fmt, quality or 90), ext)
    raise MediaError(f"video {uri!r}: frame {frame_idx} did not decode")


def info(uri: str) -> dict:
    c, s = _open(uri)
    try:
        tb = s.time_base
        return {"width": s.codec_context.width, "height": s.codec_context.height,
                "fps": _rate(s), "frames": s.frames or None, "codec": s.codec_context.name,
                "duration_sec": float(s.duration * tb) if s.duration and tb else
                (c.duration / 1e6 if c.duration else None),
                "pix_fmt": s.codec_context.pix_fmt}
    finally:
        c.close()


def _decode_at(uri: str, path: str, pts: int):
    """The frame with timestamp ``pts``: seek to a keyframe before it, decode forward."""
    c, s = _open(uri, path)
    try:
        margin = max(1, int(1 / s.time_base)) if s.time_base else 1  # one second
        back = 0
        for _ in range(8):
            try:
                c.seek(pts - back, backward=True, stream=s)
            except av.error.FFmpegError:
                c.seek(0)
            s.codec_context.flush_buffers()
            first = None
            try:
                for f in c.decode(s):
                    first = f.pts if first is None else first
                    if first > pts:
                        break  # landed after the frame: seek further back
                    if f.pts == pts:
                        return f
                    if f.pts > pts:
                        raise MediaError(f"video {uri!r} has no frame at pts {pts}")
                else:
                    raise MediaError(f"video {uri!r} has no frame at pts {pts}")
            except av.error.FFmpegError as e:
                raise _decode_error(uri, e, f"near pts {pts}")
            back = back * 2 + margin
        raise MediaError(f"video {uri!r}: cannot seek to pts {pts}")
    finally:
        c.close()


def parse_frame_ref(ref: str) -> tuple[int, int, str]:
    try:
        idx, pts, uri = ref[len(FRAME_SCHEME):].split(":", 2)
        return int(idx), int(pts), uri
    except ValueError:
        raise MediaError(f"invalid frame reference {ref!r} (expected {FRAME_SCHEME}<frame_idx>:<pts>:<video>)")


def frame_file(ref: str) -> str:
    """A local PNG of a virtual frame: decoded on first read, then cached in the media store."""
    _, pts, uri = parse_frame_ref(ref)
    path = local_path(uri)
    st = os.stat(path)
    key = hashlib.sha256(f"{ref}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()
    d = os.path.join(media_dir(), "_frame_cache", key[:2])
    final = os.path.join(d, key + ".png")
    if os.path.exists(final):
        return final
    write_atomic(final, _encode(_decode_at(uri, path, pts), "PNG", 0))
    return final


def materialize(ref: str, fmt: str | None = "png", quality: int | None = 90) -> str:
    """A virtual frame reference -> an image in the media store (other refs pass through)."""
    if not ref.startswith(FRAME_SCHEME):
        return ref
    pil_fmt, ext = check_format(fmt, quality)
    _, pts, uri = parse_frame_ref(ref)
    return store_bytes(_encode(_decode_at(uri, local_path(uri), pts), pil_fmt, quality or 90), ext)
