#!/usr/bin/env bash
# Installs whatever pixelgres is missing, and nothing that is already there:
#   1. the distribution's PostgreSQL server, plpython3u and server headers (major detected);
#   2. pgvector: the distribution's package, else built from Debian's source package;
#   3. the server-side Python (requirements-server.txt) for the Python plpython3u links
#      against, into a private versioned directory /usr/local/lib/pixelgres/<version>;
#   4. the client venv (.venv) with the package and its test extras;
#   5. the extension itself (make -C extension install).
# With --test (make test) step 1 also installs what only the tests use: Debian's JDBC driver
# (a real JDBC client in tests/test_bi_access.py) and Chromium (notebook output in a browser),
# and a last step installs node-postgres for tests/node (npm ci, from its lock file).
# Each step is skipped when a stamp says it is current, so a second run takes seconds.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
VERSION=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' python/pixelgres/_version.py)
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
log() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }
export DEBIAN_FRONTEND=noninteractive

# --- 1. Debian packages --------------------------------------------------------------
eval "$(scripts/pgenv.sh)"
want="postgresql-$PG_MAJOR postgresql-plpython3-$PG_MAJOR postgresql-server-dev-$PG_MAJOR python3-pip python3-venv make gcc rsync"
if [ "${1:-}" = "--test" ]; then
  want="$want libpostgresql-jdbc-java default-jre-headless chromium"
fi
missing=""
for p in $want; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  log "installing Debian packages:$missing"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
  eval "$(scripts/pgenv.sh)"
fi
PG_CONFIG="$PG_BINDIR/pg_config"
[ -x "$PG_CONFIG" ] || PG_CONFIG=/usr/bin/pg_config

# --- 2. pgvector -----------------------------------------------------------------------
if [ ! -f "$($PG_CONFIG --sharedir)/extension/vector.control" ]; then
  if apt-cache show "postgresql-$PG_MAJOR-pgvector" >/dev/null 2>&1; then
    log "installing postgresql-$PG_MAJOR-pgvector"
    $SUDO apt-get install -y -qq "postgresql-$PG_MAJOR-pgvector" >/dev/null
  else
    log "building pgvector from Debian's source package (no binary package for PostgreSQL $PG_MAJOR here)"
    # apt-get source unpacks with dpkg-source (dpkg-dev)
    dpkg-query -W -f='${Status}' dpkg-dev 2>/dev/null | grep -q "install ok installed" \
      || $SUDO apt-get install -y -qq --no-install-recommends dpkg-dev >/dev/null
    src=/etc/apt/sources.list.d/pixelgres-pgvector-src.list
    if ! apt-cache showsrc pgvector >/dev/null 2>&1 || [ -z "$(apt-cache showsrc pgvector 2>/dev/null)" ]; then
      echo "deb-src http://deb.debian.org/debian trixie main" | $SUDO tee "$src" >/dev/null
      $SUDO apt-get update -qq
    fi
    build=$(mktemp -d)
    (cd "$build" && apt-get source -qq pgvector >/dev/null 2>&1)
    dir=$(find "$build" -maxdepth 1 -type d -name 'pgvector-*' | head -1)
    make -s -C "$dir" PG_CONFIG="$PG_CONFIG" >/dev/null 2>&1
    $SUDO make -s -C "$dir" PG_CONFIG="$PG_CONFIG" install >/dev/null
    rm -rf "$build"
  fi
fi

# --- 3. server-side Python ---------------------------------------------------------------
# plpython3u runs the Python it was linked against; find it rather than guess.
libpy=$(ldd "$($PG_CONFIG --pkglibdir)/plpython3.so" | sed -n 's/.*libpython\(3\.[0-9]*\).*/\1/p' | head -1)
SERVER_PY="/usr/bin/python$libpy"
PYDIR="/usr/local/lib/pixelgres/$VERSION"
want_stamp=$( (cat requirements-server.txt; echo "$SERVER_PY") | sha256sum | cut -d' ' -f1)
if [ "$(cat "$PYDIR/.requirements.sha256" 2>/dev/null)" != "$want_stamp" ]; then
  log "installing server-side Python for $SERVER_PY into $PYDIR"
  tmp="$PYDIR.tmp.$$"
  $SUDO rm -rf "$tmp"
  # another release installed the same pinned requirements: hard-link its files (pip and rsync
  # replace files by renaming, never in place, so the two directories cannot affect each other)
  same=$(grep -lx "$want_stamp" /usr/local/lib/pixelgres/*/.requirements.sha256 2>/dev/null | head -1 || true)
  if [ -n "$same" ]; then
    $SUDO cp -al "$(dirname "$same")" "$tmp" && $SUDO rm -rf "$tmp/pixelgres"
  else
    $SUDO "$SERVER_PY" -m pip install -q --disable-pip-version-check --no-warn-script-location \
         --target "$tmp" -r requirements-server.txt 2>&1 | grep -v -e "Running pip as the 'root'" -e "is ignored: it is neither" || true
  fi
  [ -d "$tmp/PIL" ] || { echo "server-side pip install failed" >&2; exit 1; }
  [ -d "$PYDIR/pixelgres" ] && $SUDO cp -a "$PYDIR/pixelgres" "$tmp/"
  echo "$want_stamp" | $SUDO tee "$tmp/.requirements.sha256" >/dev/null
  $SUDO rm -rf "$PYDIR"
  $SUDO mv "$tmp" "$PYDIR"
fi

# --- 4. client venv (skipped for server-only installs, e.g. docker/Dockerfile) --------------
VENV="$ROOT/.venv"
if [ -z "${PIXELGRES_SERVER_ONLY:-}" ]; then
client_stamp=$(cat pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$VENV/.pixelgres-stamp" 2>/dev/null)" != "$client_stamp" ]; then
  log "creating the client venv in $VENV"
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -e ".[test]" 2>&1 | grep -v "is ignored: it is neither" || true
  "$VENV/bin/python" -c "import pixelgres, psycopg, sqlglot" 
  echo "$client_stamp" > "$VENV/.pixelgres-stamp"
fi
fi

# --- 5. the extension ----------------------------------------------------------------------
$SUDO make -s -C extension install PG_CONFIG="$PG_CONFIG" PYDIR="$PYDIR" >/dev/null
if [ "${1:-}" = "--test" ] && command -v npm >/dev/null; then
  node_stamp=$(sha256sum tests/node/package-lock.json | cut -d' ' -f1)
  if [ "$(cat tests/node/node_modules/.pixelgres-stamp 2>/dev/null)" != "$node_stamp" ]; then
    log "installing node-postgres for the tests (tests/node)"
    npm ci --prefix tests/node --no-audit --no-fund --silent
    echo "$node_stamp" > tests/node/node_modules/.pixelgres-stamp
  fi
fi
log "ready: PostgreSQL $PG_MAJOR, pgvector, server Python in $PYDIR, client in .venv"
