#!/usr/bin/env bash
# The peers venv (bench/peers/.venv): PyPI pixeltable and what its W4 embedding path needs
# (sentence-transformers on the CPU torch 2.13.0), pinned in bench/peers/requirements.txt.
# Created when missing, or when requirements.txt changed since; `make bench-peers` runs this.
# Exits non-zero, saying why, if Pixeltable cannot be installed or imported here.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
venv=$here/.venv
req=$here/requirements.txt
stamp=$venv/.installed-requirements.txt

if [ -x "$venv/bin/python" ] && cmp -s "$req" "$stamp"; then
    exit 0
fi

# the project venv's interpreter (Python 3.11: the CPU torch wheel on disk is for it)
base=""
if [ -x "$root/.venv/bin/python" ]; then
    base=$("$root/.venv/bin/python" -c 'import sys; print(getattr(sys, "_base_executable", "") or sys.executable)' 2>/dev/null)
fi
[ -n "$base" ] && [ -x "$base" ] || base=$(command -v python3.11 || command -v python3)

log=$(mktemp "${TMPDIR:-/tmp}/pixelgres-peers-pip.XXXXXX")
fail() {
    echo "PEERS: cannot run: $1 (pip log: $log)" >&2
    tail -n 15 "$log" | sed 's/^/  | /' >&2
    rm -rf "$venv"
    exit 1
}

echo "bench-peers: creating $venv with $(grep -E '^pixeltable==' "$req") (Python: $base) ..."
start=$(date +%s)
rm -rf "$venv"
"$base" -m venv "$venv" >>"$log" 2>&1 || fail "could not create a venv with $base"
# one resolve with every pin, torch==2.13.0 among them, so that nothing pulls a CUDA torch
"$venv/bin/pip" install --quiet -r "$req" >>"$log" 2>&1 || fail "pip could not install Pixeltable (bench/peers/requirements.txt)"
"$venv/bin/python" -c 'import pixeltable, sentence_transformers, torch' >>"$log" 2>&1 \
    || fail "Pixeltable was installed but does not import"
cp "$req" "$stamp"
echo "bench-peers: $("$venv/bin/python" -c 'import pixeltable; print("pixeltable", pixeltable.__version__)' 2>/dev/null) ready in $(( $(date +%s) - start ))s"
rm -f "$log"
