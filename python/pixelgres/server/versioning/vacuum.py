"""Retention: drop history older than what a table keeps, and store files nothing references."""
import os
import time

import plpy

from ..catalog import current_version, hist_name, overlay_name
from ..core.errors import fail as _fail
from ..core.spi import lit, one, q, qualified
from ..media.store import media_dir


def vacuum_history(oid: int, keep, older_than) -> dict:
    table = qualified(oid)
    v = current_version(oid)
    cutoffs = []
    if keep is not None:
        if keep < 1:
            _fail("keep must be at least 1 (the current version)")
        cutoffs.append(v - keep + 1)
    if older_than is not None:
        r = one("SELECT coalesce(max(version), 0) AS v FROM pxt.versions WHERE relid = $1 AND created_at <= now() - $2::interval",
                oid, older_than, types=["oid", "text"])
        cutoffs.append(r["v"])
    if not cutoffs:
        _fail("give keep => N versions or older_than => interval")
    cutoff = max(0, min(cutoffs))
    snap = one("SELECT min(pins) AS v FROM pxt.tables WHERE kind = 'snapshot' AND base = $1", oid, types=["oid"])["v"]
    if snap is not None and snap < cutoff:
        _fail(f"cannot vacuum {table} history before version {cutoff}: a snapshot pins version {snap}",
                   hint="drop the snapshot or keep more versions", sqlstate="55000")
    old = one("SELECT retained_from FROM pxt.tables WHERE relid = $1", oid, types=["oid"])["retained_from"]
    if cutoff <= old:
        return {"retained_from": old, "rows_removed": 0}
    n = plpy.execute(f"DELETE FROM {hist_name(oid)} WHERE _pxt_v_to <= {int(cutoff)}").nrows()
    plpy.execute(plpy.prepare("UPDATE pxt.tables SET retained_from = $2 WHERE relid = $1", ["oid", "int"]), [oid, cutoff])
    # soft-dropped columns no retained version can see are dropped for good
    for d in plpy.execute(plpy.prepare(
            "SELECT attnum, name FROM pxt.column_defs WHERE relid = $1 AND dropped_at IS NOT NULL AND dropped_at <= $2",
            ["oid", "int"]), [oid, cutoff]):
        plpy.execute("SELECT set_config('pxt_v.no_log', 'on', true)")
        plpy.execute(f"ALTER TABLE {table} DROP COLUMN IF EXISTS {q('_pxt_dropped_' + str(d['attnum']))}")
        plpy.execute("SELECT set_config('pxt_v.no_log', 'off', true)")
    return {"retained_from": cutoff, "rows_removed": n}


def vacuum_media(min_age_seconds: float, dry_run: bool) -> dict:
    """Delete store files that no live row, history row or snapshot references.
    Files younger than ``min_age_seconds`` are kept: a concurrent, not yet committed
    transaction may have just written them."""
    refs = set()
    for t in plpy.execute("SELECT relid::oid::int AS oid FROM pxt.tables WHERE kind <> 'snapshot'"):
        oid = t["oid"]
        cols = plpy.execute(plpy.prepare(
            "SELECT a.attname, d.attnum FROM pxt.column_defs d JOIN pg_attribute a ON a.attrelid = d.relid "
            "AND a.attnum = d.attnum AND NOT a.attisdropped WHERE d.relid = $1 AND d.media_type IS NOT NULL",
            ["oid"]), [oid])
        h = hist_name(oid)
        has_h = one(f"SELECT to_regclass({lit(h)}) IS NOT NULL AS e")["e"]
        for c in cols:
            parts = [f"SELECT {q(c['attname'])}::text AS r FROM ONLY {qualified(oid)}"]
            if has_h:
                parts.append(f"SELECT c{int(c['attnum'])}::text FROM {h}")
            for r in plpy.execute(f"SELECT DISTINCT r FROM ({' UNION ALL '.join(parts)}) s "
                                  f"WHERE r LIKE 'media://%'"):
                refs.add(r["r"][len("media://"):])
    # snapshots that outlived a revert hold their own rows (see _keep_snapshot)
    for s in plpy.execute("SELECT vkey FROM pxt.tables WHERE kind = 'snapshot' AND pins IS DISTINCT FROM version"):
        ov = overlay_name(s["vkey"])
        for c in plpy.execute(plpy.prepare(
                "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped "
                "AND atttypid = ANY (ARRAY['pxt.image', 'pxt.video', 'pxt.audio', 'pxt.document']::regtype[])",
                ["text"]), [ov]):
            for r in plpy.execute(f"SELECT DISTINCT {q(c['attname'])}::text AS r FROM {ov} "
                                  f"WHERE {q(c['attname'])}::text LIKE 'media://%'"):
                refs.add(r["r"][len("media://"):])
    root = media_dir()
    now = time.time()
    scanned = deleted = freed = 0
    for sub in sorted(os.listdir(root)):
        d = os.path.join(root, sub)
        if len(sub) != 2 or not os.path.isdir(d):
            continue  # e.g. _url_cache
        for name in os.listdir(d):
            if name.startswith(".tmp-"):
                path = os.path.join(d, name)  # an interrupted write: remove once old enough
            elif name in refs:
                scanned += 1
                continue
            else:
                path = os.path.join(d, name)
            scanned += 1
            st = os.stat(path)
            if now - st.st_mtime < min_age_seconds:
                continue
            deleted += 1
            freed += st.st_size
            if not dry_run:
                os.unlink(path)
    return {"files": scanned, "referenced": len(refs), "deleted": deleted, "bytes_freed": freed, "dry_run": dry_run}
