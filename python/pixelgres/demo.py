"""The demo pipeline ``make demo`` runs against the embedded cluster, printing what it does.

The seed's pipeline through the Python wrapper (``import pixelgres as pxt``) — every step is
SQL the database runs: images -> thumbnails -> captions (chat completions) -> embedding index
-> similarity search; video -> frames; history, snapshot, revert. It generates its own sample
media and needs no network: captions come from the OpenAI-compatible stand-in server in
pixelgres.testing (deterministic: it names the dominant colour) unless OPENAI_API_KEY is set,
and the embedding index uses the local all-MiniLM-L6-v2 model.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

from .cluster import Cluster

SCENES = [  # (file, background, shape colour, shape)
    ("red_ball.jpg", (40, 90, 200), (220, 30, 30), "ellipse"),
    ("green_box.jpg", (240, 240, 230), (30, 160, 60), "rectangle"),
    ("yellow_sun.jpg", (250, 140, 40), (255, 230, 80), "ellipse"),
    ("white_moon.png", (10, 10, 40), (240, 240, 255), "ellipse"),
]


def make_samples(d: Path) -> tuple[list[Path], Path]:
    import av
    import numpy as np
    from PIL import Image, ImageDraw

    d.mkdir(parents=True, exist_ok=True)
    os.chmod(d, 0o755)
    images = []
    for name, bg, fg, shape in SCENES:
        p = d / name
        if not p.exists():
            im = Image.new("RGB", (1024, 768), bg)
            getattr(ImageDraw.Draw(im), shape)((212, 84, 812, 684), fill=fg)
            im.save(p)
            os.chmod(p, 0o644)
        images.append(p)
    video = d / "demo.mp4"
    if not video.exists():  # 3 s, 10 fps, a colour ramp
        with av.open(str(video), "w") as out:
            s = out.add_stream("libx264", rate=10)
            s.width, s.height, s.pix_fmt = 320, 240, "yuv420p"
            for i in range(30):
                arr = np.full((240, 320, 3), (i * 8, 255 - i * 8, 128), dtype=np.uint8)
                for pkt in s.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                    out.mux(pkt)
            for pkt in s.encode():
                out.mux(pkt)
        os.chmod(video, 0o644)
    return images, video


def step(title: str) -> None:
    print(f"\n== {title}")


CLIP_MODEL = "clip-vit-base-patch32"


def clip_text_to_image(images) -> None:
    """With CLIP weights installed, a text -> image search; without, say so and how to install them."""
    from pixelgres.functions.huggingface import clip

    if CLIP_MODEL not in _models(images._session):
        print(f"skipped: no {CLIP_MODEL} in pixelgres.model_dir (no CLIP weights ship on PyPI; install a copy "
              f"with `pixelgres models add {CLIP_MODEL} PATH`)")
        return
    images.add_embedding_index("image", embedding=clip.using(model_id=CLIP_MODEL))
    sim = images.image.similarity(string="a yellow circle")
    print(images.order_by(sim, asc=False).limit(2).select(images.image).collect().to_pandas().to_string())


def _models(s) -> list[str]:
    """Model directories in the server's pixelgres.model_dir (the demo runs next to the server)."""
    d = s.fetchone("SELECT current_setting('pixelgres.model_dir')")[0]
    if not d or not os.path.isdir(d):
        return []
    return [e.name for e in os.scandir(d) if os.path.isfile(os.path.join(e.path, "config.json"))]


def run(cluster: Cluster) -> int:
    import pixelgres as pxt
    from pixelgres.functions.huggingface import sentence_transformer
    from pixelgres.functions.openai import chat_completions
    from pixelgres.functions.video import frame_iterator

    dsn = cluster.ensure_database()
    samples, video = make_samples(cluster.runtime / "samples")
    with contextlib.ExitStack() as stack:
        if os.environ.get("OPENAI_API_KEY"):
            base_url, key, note = os.environ.get("OPENAI_BASE_URL"), os.environ["OPENAI_API_KEY"], "OpenAI"
        else:
            from .testing.openai_server import OpenAIServer
            srv = stack.enter_context(OpenAIServer())
            base_url, key, note = srv.base_url, "sk-demo", "the local OpenAI-compatible stand-in"
        # the stand-in listens on loopback, which the server refuses unless allowed (superuser, session only)
        session_dsn = f"{dsn} options='-c pixelgres.allowed_url_hosts=127.0.0.1'"
        pxt.init(session_dsn, openai_api_key=key, openai_base_url=base_url)
        print(f"pixelgres demo on {dsn}")

        step("images -> thumbnails -> captions -> embedding search")
        for name in ("demo.images_before_relabeling", "demo.frames", "demo.videos", "demo.images"):
            pxt.drop_table(name, if_not_exists="ignore", force=True)
        images = pxt.create_table("demo.images", {"image": pxt.Image, "category": pxt.String})
        images.add_computed_column(thumbnail=images.image.resize((256, 256)))
        messages = [{"role": "user", "content": [
            {"type": "text", "text": "Describe this image in one sentence."},
            {"type": "image_url", "image_url": images.image}]}]
        images.add_computed_column(response=chat_completions(messages=messages, model="gpt-4o-mini"))
        images.add_computed_column(caption=images.response.choices[0].message.content)
        images.add_embedding_index("caption", string_embed=sentence_transformer.using(model_id="all-MiniLM-L6-v2"))
        status = images.insert([{"image": str(p), "category": "unknown"} for p in samples])
        print(f"inserted: {status}   (captions by {note})")
        print(images.select(images.image, images.thumbnail, images.caption).collect().to_pandas().to_string())
        sim = images.caption.similarity(string="a yellow sun in the sky")
        print("\nmost similar to 'a yellow sun in the sky':")
        print(images.order_by(sim, asc=False).limit(2).select(images.image, images.caption).collect()
              .to_pandas().to_string())

        step("CLIP: images found by a text (local model from pixelgres.model_dir)")
        clip_text_to_image(images)

        step("video -> frames (an iterator view kept in step with its base table)")
        videos = pxt.create_table("demo.videos", {"video": pxt.Video})
        frames = pxt.create_view("demo.frames", videos, iterator=frame_iterator(videos.video, fps=1))
        videos.insert([{"video": str(video)}])
        print(frames.select(frames.pos, frames.frame_idx, frames.pos_msec, frames.frame).head(10)
              .to_pandas().to_string())

        step("versions: history, snapshot, relabel, revert")
        images.update({"category": "shape"}, where=images.image == str(samples[0]))
        print(images.history().to_pandas()[["version", "change_type", "inserts", "updates"]].to_string())
        images.revert()
        snap = pxt.create_snapshot("demo.images_before_relabeling", images)
        print(f"reverted the relabeling; snapshot rows: {snap.count()}, "
              f"categories: {sorted(set(images.select(images.category).collect()['category']))}")
    print("\ndemo done: explore with `.venv/bin/pixelgres psql` (e.g. SELECT * FROM demo.frames)")
    return 0
