"""bench/summary.py reads the benches' verdict lines: met, missed (ABOVE/BELOW TARGET), failed."""
import importlib.util
from pathlib import Path

spec = importlib.util.spec_from_file_location("summary", Path(__file__).resolve().parent.parent / "bench" / "summary.py")
summary = importlib.util.module_from_spec(spec)
spec.loader.exec_module(summary)


def test_verdict_lines():
    out = "\n".join([
        "  repeat 1/3: query 47.0 ms vs raw 33.0 ms",
        "W5 insert 100000 rows in statements of 1000: unmanaged 1 rows/s, ratio 1.63x (target <= 1.3x, ABOVE TARGET)",
        "W5 revert of a 100-row version: 10k rows 4.7 ms, ratio 0.61x (target <= 2x)",
        "W11 throughput of 8 inserting clients, shared / in-process: median 1.22x (min 1.22x, max 1.28x; target > 1x)",
        "W6 ratio 0.90x (target >= 1.0x, BELOW TARGET)",
        "W9 the target of this line is not a verdict",
        "W5 revert of a 100-row version: 10k rows 4.7 ms, ratio 0.61x (target <= 2x)",  # repeated in a summary
    ])
    rows = summary.verdicts("wX.py", out)
    assert [(r["measure"][:9], r["verdict"]) for r in rows] == [
        ("W5 insert", "missed"), ("W5 revert", "met"), ("W11 throu", "met"), ("W6 ratio ", "missed")]
    assert rows[1]["result"] == "10k rows 4.7 ms, ratio 0.61x (target <= 2x)"
