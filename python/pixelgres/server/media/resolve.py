"""Where an image input is read from: a store or local file, a URL, or a video frame.

Only image inputs accept a virtual video frame (``pxt-frame:...``); the frame is decoded once
and cached as PNG by ``media.video``. PyAV loads only when a frame is actually read, so
working with plain images never pays for it.
"""
from .store import FRAME_SCHEME
from .store import local_path as _stored_path


def local_path(uri: str) -> str:
    if isinstance(uri, str) and uri.startswith(FRAME_SCHEME):
        from . import video  # lazy: PyAV is heavy (see above), not a cycle

        return video.frame_file(uri)
    return _stored_path(uri)
