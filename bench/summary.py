"""Run every benchmark in bench/ (w*.py), then print one table of their targets and write it as
JSON under bench/results/, so that runs can be compared. Each bench prints its own ratios
against a baseline measured in its own run; a line with "(target ...)" is a verdict, missed
when the bench marks it ABOVE TARGET or BELOW TARGET. A bench that fails is a row of its own.

    .venv/bin/python bench/summary.py [w1 w5 ...]      # make bench
"""
import datetime
import json
import os
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGET = re.compile(r"\((?:[^()]*; )?target\b")
MISSED = ("ABOVE TARGET", "BELOW TARGET")


def verdicts(bench: str, out: str) -> list[dict]:
    rows = []
    for line in out.splitlines():
        line = line.strip()
        if re.match(r"W\d+\b", line) and TARGET.search(line):
            measure, _, value = line.partition(": ")
            row = {"bench": bench, "measure": measure, "result": value or line,
                   "verdict": "missed" if any(m in line for m in MISSED) else "met"}
            if row not in rows:  # a bench that repeats its verdicts in a closing summary counts them once
                rows.append(row)
    return rows


def run(script: Path) -> tuple[int, str]:
    """The bench's exit code and stdout (shown as it runs; stderr passes through)."""
    p = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, cwd=HERE.parent)
    lines = []
    for line in p.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        lines.append(line)
    return p.wait(), "".join(lines)


def main(argv: list[str]) -> int:
    scripts = sorted(HERE.glob("w*.py"))
    if argv:
        scripts = [s for s in scripts if s.name.split("_")[0] in argv]
    rows, failed = [], 0
    for s in scripts:
        print(f"== {s.name}", flush=True)
        rc, out = run(s)
        found = verdicts(s.name, out)
        if rc != 0:
            failed += 1
            found.append({"bench": s.name, "measure": "run", "result": f"exit code {rc}", "verdict": "failed"})
        rows.extend(found)
    width = max((len(r["measure"]) for r in rows), default=10)
    print("\n" + "bench".ljust(24) + "measure".ljust(width + 2) + "verdict  result")
    for r in rows:
        print(r["bench"].ljust(24) + r["measure"].ljust(width + 2) + r["verdict"].ljust(9) + r["result"])
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=HERE).stdout.strip()
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    path = results / f"{stamp}.json"
    path.write_text(json.dumps({"when": stamp, "commit": commit, "cores": os.cpu_count(), "rows": rows}, indent=1))
    met = sum(r["verdict"] == "met" for r in rows)
    print(f"\n{met} of {len(rows)} targets met; {failed} bench(es) failed; written to {path.relative_to(HERE.parent)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
