"""media.video.split, without a database: a sparse frame selection cut at closed-GOP keyframes
into groups that separate decoders decode at once. Videos are made here with PyAV (frame i a
flat grey of level 12 * i mod 252, a keyframe every 5 frames, B-frames)."""
import fractions

import av
import numpy as np
import pytest

from pixelgres.testing.media import grey_video
from pixelgres.testing.offline import server_module

video = server_module("media.video")


def make(path, n=60, **x264):
    opts = {"g": "5", "keyint_min": "5", "bf": "2", "sc_threshold": "0", **x264}
    return str(grey_video(path, n, 10, (64, 48), options=opts))


def index_of(path):
    """What video.index reads (it checks the file's limits through plpy first)."""
    with av.open(path) as c:
        s = c.streams.video[0]
        pk = [video.Packet(p.pts, p.dts, bool(p.is_keyframe)) for p in c.demux(s) if p.pts is not None]
        return video.Index(pk, sorted(p.pts for p in pk), fractions.Fraction(s.time_base), float(s.average_rate))


def levels(path, ix, wanted, ranges=None):
    got = video.decode_selected("v", path, ix, wanted, ranges, threaded=False)
    return [(f.pts, round(float(np.asarray(f.to_ndarray(format="rgb24")).mean()) / 12)) for f in got]


@pytest.mark.parametrize("step", [1, 3, 7, 20])
@pytest.mark.parametrize("parts", [1, 2, 4])
def test_groups_cover_the_selection_and_decode_alone(tmp_path, step, parts):
    path = make(tmp_path / "v.mp4")
    ix = index_of(path)
    wanted = ix.pts[::step]
    groups = video.split(ix, wanted, parts)
    assert 1 <= len(groups) <= parts
    assert [t for _, w in groups for t in w] == wanted  # each wanted frame in one group, in order
    if parts == 1:
        assert groups == [(video.plan(ix, wanted), wanted)]
    for ranges, w in groups:
        assert ix.packets[ranges[0][0]].key  # each group starts clean at a keyframe
        got = levels(path, ix, w, ranges)
        assert sorted(got) == [(t, ix.frame_idx(t) % 21) for t in w]  # the right pixels, decoded alone
    # and all of it is what one decoder gives for the whole plan
    assert sorted(sum((levels(path, ix, w, r) for r, w in groups), [])) == sorted(levels(path, ix, wanted))


def test_work_is_shared_when_the_selection_allows(tmp_path):
    ix = index_of(make(tmp_path / "v.mp4"))  # 12 closed GOPs
    sizes = [len(w) for _, w in video.split(ix, ix.pts[::2], 4)]
    assert len(sizes) == 4 and max(sizes) - min(sizes) <= 3, sizes
    one_gop = ix.pts[10:14]  # inside one GOP: nothing to cut
    assert len(video.split(ix, one_gop, 4)) == 1
