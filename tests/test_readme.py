"""The README's SQL quick start runs as written (media paths point at generated files)."""
import re
from pathlib import Path

from PIL import Image

README = Path(__file__).resolve().parent.parent / "README.md"


def sql_blocks(section: str) -> list[str]:
    text = README.read_text()
    body = text[text.index(section):]
    return re.findall(r"```sql\n(.*?)```", body, flags=re.S)


def statements(block: str) -> list[str]:
    lines = [re.sub(r"\s+--.*$", "", ln) for ln in block.splitlines() if not ln.lstrip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def test_quick_start_sql(db, files):
    Image.new("RGB", (640, 480), (10, 120, 200)).save(files / "a.jpg")
    Image.new("RGBA", (300, 200), (200, 10, 10, 128)).save(files / "b.png")
    results = []
    for stmt in statements(sql_blocks("### In SQL")[0]):
        cur = db.execute(stmt.replace("'/data/", f"'{files}/"))
        results.append(cur.fetchall() if cur.description else None)
    by_stmt = dict(zip(range(len(results)), results))
    thumbs = by_stmt[4]
    assert [(w) for _, _, w in thumbs] == [640, 300] and all(t.startswith("media://") for _, t, _ in thumbs)
    assert ("thumbnail", True, "pxt.resize(image, 256, 256)") in by_stmt[5]
    assert results[-1] == [(2,)]  # the snapshot kept both rows
    assert db.execute("SELECT count(*) FROM ml.images WHERE category = 'animal'").fetchone()[0] == 0  # reverted


def test_python_quick_start(dsn, files):
    Image.new("RGB", (640, 480), (10, 120, 200)).save(files / "a.jpg")
    text = README.read_text()
    block = re.findall(r"```python\n(.*?)```", text[text.index("## Python"):], flags=re.S)[0]
    code = block.replace("pxt.init()", f"pxt.init({dsn!r})").replace("'/data/", f"'{files}/")
    env = {}
    try:
        exec(compile(code, "README.md", "exec"), env)
        df = env["images"].select(env["images"].width).collect().to_pandas()
        assert list(df["width"]) == []  # reverted: the insert was the latest version
        assert env["ds"] is not None
    finally:  # the test database goes away: leave no default session pointing at it
        from pixelgres.client import session
        if session._current is not None:
            session._current.close()
            session._current = None
