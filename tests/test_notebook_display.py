"""Notebook display of ResultSet, Query and Table (client/display.py): the HTML parsed and
checked -- thumbnails are images no larger than the cap, video poster frames, players when a
media server runs, truncated JSON, escaped values -- and the same HTML shown in a real
headless Chromium (Debian's, driven by Playwright), where the thumbnails must load and be
visible.
"""
import base64
import html.parser
import io

import pytest
from PIL import Image

import pixelgres as pxt
from pixelgres.client import display
from pixelgres.testing.media import grey_video
from test_local_tasks import speech
from test_media_urls import media_server  # noqa: F401  (fixture)

CHROMIUM = "/usr/bin/chromium"  # Debian's package; `make test` installs it


@pytest.fixture
def px(dsn):
    s = pxt.init(dsn)
    yield s
    s.close()


class Parsed(html.parser.HTMLParser):
    def __init__(self, text: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def all(self, tag: str) -> list[dict]:
        return [a for t, a in self.tags if t == tag]


def decoded(data_uri: str) -> Image.Image:
    head, _, b64 = data_uri.partition(",")
    assert head.startswith("data:image/") and head.endswith(";base64")
    return Image.open(io.BytesIO(base64.b64decode(b64)))


@pytest.fixture
def media_table(px, files):
    photo, wide = files / "photo.jpg", files / "wide.png"
    Image.new("RGB", (640, 480), (200, 40, 40)).save(photo)
    Image.new("RGB", (900, 100), (40, 40, 200)).save(wide)
    video = grey_video(files / "clip.mp4", 6)
    audio = speech(files / "talk.wav", 1.0)
    for p in (photo, wide, video):
        p.chmod(0o644)
    t = pxt.create_table("shown", {"image": pxt.Image, "video": pxt.Video, "audio": pxt.Audio, "note": pxt.String})
    t.add_computed_column(info=t.image.get_metadata())
    t.insert([{"image": str(photo), "video": str(video), "audio": audio, "note": "<script>alert(1)</script>"},
              {"image": str(wide), "video": str(video), "audio": audio, "note": "x" * 500}])
    return t


def test_result_html_has_capped_thumbnails_posters_json_and_escaped_text(media_table):
    t = media_table
    page = Parsed(t.order_by(t.note).collect()._repr_html_())
    imgs = page.all("img")
    assert len(imgs) == 4  # per row: the image's thumbnail and the video's poster frame
    sizes = [decoded(i["src"]).size for i in imgs]
    assert all(max(s) <= display.THUMB for s in sizes)
    assert sorted(sizes) == [(64, 48), (64, 48), (128, 14), (128, 96)]  # photos cut to the cap, aspect kept;
    # the 64x48 video's first frame as it is
    assert all(i["src"].startswith("data:image/") and len(i["src"]) <= display.MAX_DATA_URI for i in imgs)
    text = "".join(page.text)
    assert "<script>alert(1)</script>" in text  # shown as text...
    assert not page.all("script")  # ...never as a tag
    assert not page.all("audio") and not page.all("video")  # no media server: no players
    codes = [a for a in page.all("code")]
    assert len(codes) == 2 and all(len(c["title"]) > 0 for c in codes)  # the metadata JSON, compact
    assert all(len(s) <= display.JSON_CHARS for s in page.text)
    assert any(s.endswith("…") and s.startswith("xxx") for s in page.text)  # long text cut


def test_query_and_table_html(media_table):
    t = media_table
    q = Parsed(t.select(t.image, t.note).where(t.note == "x" * 500)._repr_html_())
    assert len(q.all("img")) == 1 and any("SELECT" in s for s in q.text)  # the rows under the query's SQL
    tab = Parsed(t._repr_html_())
    text = " ".join(tab.text)
    assert "table public.shown, version" in text
    for name in ("image", "video", "audio", "note", "info"):
        assert name in tab.text
    assert "pxt.Image" in tab.text and any("image" in s and "(" in s for s in tab.text)  # info's expression


def test_players_stream_from_the_media_server(media_server, media_table):  # noqa: F811  (the server first: the session sees its settings)
    page = Parsed(media_table.collect()._repr_html_())
    videos, audios = page.all("video"), page.all("audio")
    assert len(videos) == 2 and len(audios) == 2
    assert all(v["src"].startswith(media_server + "/m/") and v["poster"].startswith("data:image/") for v in videos)
    assert all(a["src"].startswith(media_server + "/m/") for a in audios)


def test_thumbnails_load_and_show_in_a_real_browser(media_table, tmp_path):
    from playwright.sync_api import sync_playwright

    out = tmp_path / "notebook.html"
    out.write_text("<!doctype html><html><body>" + media_table.collect()._repr_html_() + "</body></html>")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        try:
            page = browser.new_page()
            page.goto(out.as_uri())
            page.wait_for_load_state("load")  # every <img> has loaded or failed by then
            shown = page.evaluate("""() => Array.from(document.images).map(i => {
                const r = i.getBoundingClientRect();
                return {ok: i.complete && i.naturalWidth > 0, w: r.width, h: r.height,
                        visible: getComputedStyle(i).visibility === 'visible' && r.width > 0 && r.height > 0};
            })""")
        finally:
            browser.close()
    assert len(shown) == 4
    assert all(s["ok"] and s["visible"] for s in shown), shown
    assert max(max(s["w"], s["h"]) for s in shown) <= display.THUMB


def test_readme_notebook_section_runs(px, files):
    import re
    from pathlib import Path

    photo = files / "a.jpg"
    Image.new("RGB", (300, 200), (10, 120, 200)).save(photo)
    photo.chmod(0o644)
    images = pxt.create_table("ml.images", {"image": pxt.Image})
    images.add_computed_column(thumbnail=images.image.resize((64, 64)))
    images.insert([{"image": str(photo)}])
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    block = re.findall(r"```python\n(.*?)```", readme[readme.index("### In a notebook"):], flags=re.S)[0]
    env, shown = {"pxt": pxt}, []
    for line in block.splitlines():  # each line a notebook cell: an expression's value is displayed
        code = re.sub(r"\s+#.*$", "", line).strip()
        try:
            value = eval(compile(code, "README.md", "eval"), env)
        except SyntaxError:
            exec(compile(code, "README.md", "exec"), env)
            continue
        if hasattr(value, "_repr_html_"):
            shown.append(Parsed(value._repr_html_()))
    schema, rows = shown
    assert "thumbnail" in schema.text and any("version" in s for s in schema.text)
    assert len(rows.all("img")) == 2  # the image and its thumbnail
    assert env["shown"].select(env["shown"].rotated).collect()[0]["rotated"].startswith("media://")
