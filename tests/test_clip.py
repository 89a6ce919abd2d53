"""CLIP image and text embeddings from pixelgres.model_dir, on tiny random-weight models built
from a config (pixelgres.testing.models): the real loading, batching, index and search paths.
The vectors are checked against the same model run directly with transformers in this process."""
import json
import subprocess
import sys

import numpy as np
import psycopg
import pytest
from PIL import Image

from conftest import set_for_database

from pixelgres.testing.models import tiny_clip


@pytest.fixture(scope="module")
def model_root(server):
    root = server.files / "models"
    if not (root / "tiny-clip").exists():
        root.mkdir(exist_ok=True)
        root.chmod(0o755)
        tiny_clip(root / "tiny-clip", seed=0)
        tiny_clip(root / "tiny-clip-b", seed=1)
        hub = root / "models--acme--hub-clip"  # the Hugging Face cache layout
        tiny_clip(hub / "snapshots" / "0123abcd", seed=2)
        (hub / "refs").mkdir()
        (hub / "refs" / "main").write_text("0123abcd")
        for p in [hub, *hub.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)
    return root


@pytest.fixture
def clip_db(db, dbname, model_root):
    """The models for this database (every new session: pxt clients too) and this session."""
    set_for_database(db, dbname, {"pixelgres.model_dir": str(model_root)})
    return db


def reference(path, texts=(), images=()):
    """The same model, run directly: L2-normalised features."""
    import torch
    from transformers import CLIPModel, CLIPProcessor

    m = CLIPModel.from_pretrained(path, local_files_only=True).eval()
    p = CLIPProcessor.from_pretrained(path, local_files_only=True)
    out = {}
    with torch.inference_mode():
        if texts:
            t = p.tokenizer(list(texts), padding=True, truncation=True, max_length=77, return_tensors="pt")
            f = m.get_text_features(input_ids=t["input_ids"], attention_mask=t["attention_mask"])
            out["text"] = torch.nn.functional.normalize(getattr(f, "pooler_output", f), dim=-1).numpy()
        if images:
            i = p(images=[im.convert("RGB") for im in images], return_tensors="pt")
            f = m.get_image_features(pixel_values=i["pixel_values"])
            out["image"] = torch.nn.functional.normalize(getattr(f, "pooler_output", f), dim=-1).numpy()
    return out


def vec(text: str) -> np.ndarray:
    return np.array(json.loads(text), dtype=np.float32)


def pictures(files, n=5):
    rng = np.random.default_rng(3)
    paths, ims = [], []
    for i in range(n):
        im = Image.fromarray(rng.integers(0, 256, (24 + 4 * i, 40, 3), dtype=np.uint8))
        p = files / f"pic{i}.png"
        im.save(p)
        paths.append(str(p))
        ims.append(Image.open(p))
    return paths, ims


def test_text_and_image_vectors_match_the_model_run_directly(clip_db, model_root, files):
    paths, ims = pictures(files)
    texts = ["a photo of a cat", "a red truck", "a cat"]
    ref = reference(model_root / "tiny-clip", texts, ims)
    got = [vec(r[0]) for r in clip_db.execute(
        "SELECT pxt.clip_text(t, 'tiny-clip')::text FROM unnest(%s::text[]) WITH ORDINALITY u(t, o) ORDER BY o",
        (texts,)).fetchall()]
    assert np.allclose(np.stack(got), ref["text"], atol=1e-5)
    got = [vec(r[0]) for r in clip_db.execute(
        "SELECT pxt.clip_image(p::pxt.image, 'tiny-clip')::text FROM unnest(%s::text[]) WITH ORDINALITY u(p, o) "
        "ORDER BY o", (paths,)).fetchall()]
    assert np.allclose(np.stack(got), ref["image"], atol=1e-5)
    assert all(abs(np.linalg.norm(v) - 1) < 1e-5 for v in got) and got[0].shape == (16,)


def test_computed_column_is_batched_and_loads_once(clip_db, model_root, files):
    paths, ims = pictures(files, 6)
    clip_db.execute("SELECT pxt.create_table('ml.pics', '{\"image\": \"image\"}')")
    clip_db.execute("SELECT pxt.add_computed_column('ml.pics', 'emb', 'pxt.clip_image(image, ''tiny-clip'')')")
    clip_db.execute("INSERT INTO ml.pics (image) SELECT unnest(%s::text[])", (paths,))
    got = np.stack([vec(r[0]) for r in clip_db.execute('SELECT emb::text FROM pxt_data."ml.pics" ORDER BY _pxt_rowid')])
    assert np.allclose(got, reference(model_root / "tiny-clip", images=ims)["image"], atol=1e-5)
    stats = {r[1]: r for r in clip_db.execute("SELECT * FROM pxt.embedding_models() WHERE function = 'clip'")}
    _, _, dims, loads, _, batches, n, _ = stats["tiny-clip"]
    assert (dims, loads, batches, n) == (16, 1, 1, 6)  # one statement: one batch of six


def test_cross_modal_search_through_an_embedding_index(clip_db, model_root, files):
    paths, ims = pictures(files, 5)
    clip_db.execute("SELECT pxt.create_table('ml.pics', '{\"image\": \"image\", \"i\": \"int\"}')")
    clip_db.execute("INSERT INTO ml.pics (image, i) SELECT p, o FROM unnest(%s::text[]) WITH ORDINALITY u(p, o)",
                    (paths,))
    clip_db.execute("SELECT pxt.add_embedding_index('ml.pics', 'image', "
                    "embedding => 'pxt.clip_image(model => ''tiny-clip'')', "
                    "query_embedding => 'pxt.clip_text(model => ''tiny-clip'')')")
    ref = reference(model_root / "tiny-clip", ["a cat on a sofa"], ims)
    want = list(np.argsort(-(ref["image"] @ ref["text"][0]))[:3] + 1)
    got = [r[0]["i"] for r in clip_db.execute("SELECT \"row\" FROM pxt.search('ml.pics', 'image', 'a cat on a sofa', k => 3)")]
    assert got == want
    # an image query finds itself first
    first = clip_db.execute("SELECT \"row\" FROM pxt.search('ml.pics', 'image', %s, k => 1)", (paths[2],)).fetchall()
    assert first[0][0]["i"] == 3


def test_models_are_found_by_name_and_in_the_hub_layout(clip_db, model_root):
    a = vec(clip_db.execute("SELECT pxt.clip_text('x', 'tiny-clip')::text").fetchone()[0])
    b = vec(clip_db.execute("SELECT pxt.clip_text('x', 'tiny-clip-b')::text").fetchone()[0])
    h = vec(clip_db.execute("SELECT pxt.clip_text('x', 'acme/hub-clip')::text").fetchone()[0])
    assert not np.allclose(a, b) and not np.allclose(a, h)
    assert np.allclose(h, reference(model_root / "models--acme--hub-clip" / "snapshots" / "0123abcd", ["x"])["text"][0],
                       atol=1e-5)


def test_missing_model_and_hostile_names(db, clip_db, model_root):
    with pytest.raises(psycopg.Error,
                       match=r"ValueError: model 'nope' is not installed in pixelgres.model_dir .*pixelgres models add nope"):
        clip_db.execute("SELECT pxt.clip_text('x', 'nope')")
    for bad in ("../tiny-clip", "/etc", "a/b/c", "tiny clip", ""):
        with pytest.raises(psycopg.Error, match="ValueError: invalid model name"):
            clip_db.execute("SELECT pxt.clip_text('x', %s)", (bad,))
    clip_db.execute("SELECT set_config('pixelgres.model_dir', '', false)")
    with pytest.raises(psycopg.Error, match="pixelgres.model_dir is not set"):
        clip_db.execute("SELECT pxt.clip_text('x', 'tiny-clip')")
    # at index creation, not per row, and with no unrelated hint
    clip_db.execute("SELECT set_config('pixelgres.model_dir', %s, false)", (str(model_root),))
    clip_db.execute("SELECT pxt.create_table('docs', '{\"body\": \"string\"}')")
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="not installed") as e:
        clip_db.execute("SELECT pxt.add_embedding_index('docs', 'body', embedding => 'pxt.clip_text(model => ''nope'')')")
    assert e.value.diag.message_hint is None


def test_a_bad_image_is_that_rows_error(clip_db, files):
    paths, _ = pictures(files, 2)
    clip_db.execute("SELECT pxt.create_table('t', '{\"ref\": \"string\"}')")
    clip_db.execute("SELECT pxt.add_computed_column('t', 'emb', 'pxt.clip_image(ref::pxt.image, ''tiny-clip'')', "
                    "on_error => 'ignore')")
    (files / "junk.png").write_bytes(b"not a png")
    clip_db.execute("INSERT INTO t (ref) VALUES (%s), (%s), (%s)", (paths[0], str(files / "junk.png"), paths[1]))
    rows = clip_db.execute('SELECT emb IS NOT NULL, _pxt_errors FROM pxt_data."public.t" ORDER BY _pxt_rowid').fetchall()
    assert [r[0] for r in rows] == [True, False, True] and "junk.png" in rows[1][1]["emb"]["message"]


def test_loaded_models_are_bounded(clip_db):
    clip_db.execute("SET pixelgres.max_loaded_models = 1")
    for name in ("tiny-clip", "tiny-clip-b", "tiny-clip", "tiny-clip-b"):
        clip_db.execute("SELECT pxt.clip_text('x', %s)", (name,))
    loads = dict(clip_db.execute("SELECT model, loads FROM pxt.embedding_models() WHERE function = 'clip'").fetchall())
    assert loads == {"tiny-clip": 2, "tiny-clip-b": 2}  # one at a time: each was unloaded and loaded again
    clip_db.execute("SET pixelgres.max_loaded_models = 2")
    for name in ("tiny-clip", "tiny-clip-b", "tiny-clip"):
        clip_db.execute("SELECT pxt.clip_text('y', %s)", (name,))
    loads = dict(clip_db.execute("SELECT model, loads FROM pxt.embedding_models() WHERE function = 'clip'").fetchall())
    assert loads == {"tiny-clip": 3, "tiny-clip-b": 2}  # b was still loaded; a came back once, then stayed


def test_model_settings_are_superuser_only(db, dsn):
    db.execute("CREATE ROLE model_user LOGIN")
    try:
        with psycopg.connect(dsn, user="model_user", autocommit=True) as c:
            for guc in ("pixelgres.model_dir", "pixelgres.max_loaded_models", "pixelgres.model_threads"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    c.execute(f"SET {guc} = '1'")
    finally:
        db.execute("DROP ROLE model_user")


def test_cli_models_add_and_list(db, dsn, server, tmp_path, files):
    """`pixelgres models add` installs a directory into the server's model_dir, whole, readable."""
    root = files / "cli-models"
    root.mkdir()
    root.chmod(0o777)
    db.execute(f"ALTER DATABASE {db.info.dbname} SET pixelgres.model_dir = '{root}'")
    src = tiny_clip(tmp_path / "built", seed=5)
    cli = [sys.executable, "-m", "pixelgres.cli", "models", "--dsn", dsn]
    out = subprocess.run([*cli, "add", "mine", str(src)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(root / "mine")
    assert "mine\tclip" in subprocess.run([*cli, "list"], capture_output=True, text=True, check=True).stdout
    again = subprocess.run([*cli, "add", "mine", str(src)], capture_output=True, text=True)
    assert again.returncode != 0 and "--replace" in again.stderr
    bad = subprocess.run([*cli, "add", "../up", str(src)], capture_output=True, text=True)
    assert bad.returncode != 0 and "invalid model name" in bad.stderr
    with psycopg.connect(dsn, autocommit=True) as c:
        v = vec(c.execute("SELECT pxt.clip_text('x', 'mine')::text").fetchone()[0])
    assert np.allclose(v, reference(src, ["x"])["text"][0], atol=1e-5)
    assert not any(p.name.startswith(".tmp-") for p in root.iterdir())


def test_python_clip_index_and_similarity(dsn, clip_db, model_root, files):
    import pixelgres as pxt
    from pixelgres.functions.huggingface import clip

    paths, ims = pictures(files, 5)
    s = pxt.init(dsn)
    try:
        t = pxt.create_table("pics", {"image": pxt.Image, "i": pxt.Int})
        t.insert([{"image": p, "i": i + 1} for i, p in enumerate(paths)])
        t.add_embedding_index("image", embedding=clip.using(model_id="tiny-clip"))
        sim = t.image.similarity(string="a cat on a sofa")
        got = [r["i"] for r in t.select(t.i, s=sim).order_by(sim, asc=False).limit(3).collect()]
        ref = reference(model_root / "tiny-clip", ["a cat on a sofa"], ims)
        assert got == list(np.argsort(-(ref["image"] @ ref["text"][0]))[:3] + 1)
        sim = t.image.similarity(image=paths[3])
        assert t.select(t.i).order_by(sim, asc=False).limit(1).collect()[0]["i"] == 4
    finally:
        s.close()


def test_a_missing_model_fails_when_the_column_is_added(clip_db):
    """Not per row: the column is refused at add_computed_column time, even on an empty table."""
    clip_db.execute("SELECT pxt.create_table('ml.pics', '{\"image\": \"image\", \"m\": \"string\"}')")
    for expr, why in (("pxt.clip_image(image, 'nope')", "model 'nope' is not installed"),
                      ("pxt.clip_image(image, model => 'o''brien')", "invalid model name \"o'brien\""),
                      ("pxt.detect(image)", "model 'yolos-tiny' is not installed"),  # the default
                      ("coalesce(pxt.caption(image, max_tokens => 5), 'x')",
                       "model 'blip-image-captioning-base' is not installed")):
        with pytest.raises(psycopg.errors.InvalidParameterValue, match=f"computed column 'c': {why}"):
            clip_db.execute("SELECT pxt.add_computed_column('ml.pics', 'c', %s)", (expr,))
    assert clip_db.execute("SELECT count(*) FROM pxt.column_defs WHERE name = 'c'").fetchone()[0] == 0
    clip_db.execute("SELECT pxt.add_computed_column('ml.pics', 'ok', 'pxt.clip_image(image, ''tiny-clip'')')")
    clip_db.execute("SELECT pxt.add_computed_column('ml.pics', 'late', 'pxt.clip_text(m, m)', on_error => 'ignore')")
    clip_db.execute("INSERT INTO ml.pics (m) VALUES ('nope')")  # a model named by a column: that row's error
    assert "not installed" in clip_db.execute("SELECT _pxt_errors->'late'->>'message' FROM pxt_data.\"ml.pics\"").fetchone()[0]


def test_the_model_table_agrees_with_the_sql_defaults(db):
    import ast
    from pathlib import Path

    src = Path(__file__).resolve().parent.parent / "python/pixelgres/server/model_store.py"
    node = next(n for n in ast.parse(src.read_text()).body
                if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", None) == "LOCAL_MODEL_FUNCTIONS")
    LOCAL_MODEL_FUNCTIONS = ast.literal_eval(node.value)  # noqa: N806 - the module's name for it
    assert set(LOCAL_MODEL_FUNCTIONS) == {"clip_image", "clip_text", "detect", "caption", "transcribe"}
    for fn, default in LOCAL_MODEL_FUNCTIONS.items():
        args = db.execute("SELECT pg_get_function_arguments(%s::regproc)", (f"pxt.{fn}",)).fetchone()[0]
        assert f"model text DEFAULT '{default}'::text" in args, (fn, args)


def test_demo_step_searches_images_by_text_when_clip_is_installed(dsn, clip_db, model_root, files, capsys):
    """The demo's CLIP step, with a model installed under the name it uses."""
    import shutil

    import pixelgres as pxt
    from pixelgres import demo

    if not (model_root / demo.CLIP_MODEL).exists():
        shutil.copytree(model_root / "tiny-clip", model_root / demo.CLIP_MODEL)
    paths, _ = pictures(files, 3)
    s = pxt.init(dsn)
    try:
        t = pxt.create_table("demo_pics", {"image": pxt.Image})
        t.insert([{"image": p} for p in paths])
        demo.clip_text_to_image(t)
        out = capsys.readouterr().out
        assert "skipped" not in out and sum(p in out for p in paths) == 2  # the top two images
    finally:
        s.close()
        shutil.rmtree(model_root / demo.CLIP_MODEL, ignore_errors=True)
