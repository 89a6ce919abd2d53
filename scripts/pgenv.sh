#!/usr/bin/env bash
# Prints PG_MAJOR and PG_BINDIR for the PostgreSQL this machine runs (or will run):
# the newest installed server, else the distribution's default major. Never hard-coded.
set -euo pipefail
major=""
for d in /usr/lib/postgresql/*/bin/postgres; do
  [ -x "$d" ] || continue
  v=$(basename "$(dirname "$(dirname "$d")")")
  if [ -z "$major" ] || [ "$v" -gt "$major" ]; then major=$v; fi
done
if [ -z "$major" ]; then
  # postgresql (the metapackage) depends on postgresql-<major>
  major=$(apt-cache depends postgresql 2>/dev/null | sed -n 's/.*Depends: postgresql-\([0-9][0-9]*\)$/\1/p' | head -1)
fi
[ -n "$major" ] || { echo "cannot detect the PostgreSQL major version" >&2; exit 1; }
echo "PG_MAJOR=$major"
echo "PG_BINDIR=/usr/lib/postgresql/$major/bin"
