"""Retention: drop history older than what a table keeps, and store files nothing references."""
import os
import time

import plpy

from ..catalog import current_version, display_name
from ..core.errors import fail as _fail
from ..core.spi import one
from ..core.errors import MediaError
from ..media import buckets, objects
from ..media.store import media_dir
from ..sqlgen import versioning as gen
from ..sqlgen.compose import Composable
from .history import history_of, relation_of


def _execute(stmt: Composable):
    return plpy.execute(stmt.as_string())


def vacuum_history(oid: int, keep, older_than) -> dict:
    table = display_name(oid)
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
    n = _execute(gen.delete_history_through(history_of(oid), int(cutoff))).nrows()
    plpy.execute(plpy.prepare("UPDATE pxt.tables SET retained_from = $2 WHERE relid = $1", ["oid", "int"]), [oid, cutoff])
    # soft-dropped columns no retained version can see are dropped for good
    for d in plpy.execute(plpy.prepare(
            "SELECT attnum, name FROM pxt.column_defs WHERE relid = $1 AND dropped_at IS NOT NULL AND dropped_at <= $2",
            ["oid", "int"]), [oid, cutoff]):
        plpy.execute("SELECT set_config('pxt_v.no_log', 'on', true)")
        _execute(gen.drop_dropped_column(relation_of(oid), int(d["attnum"])))
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
        h = history_of(oid)
        has_h = one("SELECT to_regclass($1) IS NOT NULL AS e", h.as_string())["e"]
        for c in cols:
            column = gen.Column(c["attname"], attnum=int(c["attnum"]))
            for r in _execute(gen.media_references(relation_of(oid), h if has_h else None, column)):
                refs.add(r["r"])
    # snapshots that outlived a revert hold their own rows (see _keep_snapshot)
    for s in plpy.execute("SELECT vkey FROM pxt.tables WHERE kind = 'snapshot' AND pins IS DISTINCT FROM version"):
        ov = gen.overlay_table(s["vkey"])
        for c in plpy.execute(plpy.prepare(
                "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped "
                "AND atttypid = ANY (ARRAY['pxt.image', 'pxt.video', 'pxt.audio', 'pxt.document']::regtype[])",
                ["text"]), [ov.as_string()]):
            for r in _execute(gen.overlay_media_references(ov, c["attname"])):
                refs.add(r["r"])
    objects_report = _vacuum_buckets(refs, min_age_seconds, dry_run)
    refs = {r[len("media://"):] for r in refs if r.startswith("media://")}
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
    return {"files": scanned, "referenced": len(refs), "deleted": deleted, "bytes_freed": freed, "dry_run": dry_run,
            **objects_report}


def _vacuum_buckets(refs: set, min_age_seconds: float, dry_run: bool) -> dict:
    """Delete objects in computed columns' destinations that no version references.

    Only content-addressed names directly under a destination (``<prefix><sha256>.<ext>``,
    what pixelgres writes there) are candidates: anything else in the bucket is not ours.
    Destinations of every column ever defined count, dropped ones too (their history may
    still hold references until vacuum_history removes it)."""
    report = {"objects": 0, "objects_deleted": 0, "object_bytes_freed": 0, "destinations_skipped": []}
    now = time.time()
    for d in plpy.execute("SELECT DISTINCT destination FROM pxt.column_defs WHERE destination IS NOT NULL "
                          "ORDER BY destination"):
        prefix = d["destination"]
        try:
            u = buckets.check(prefix, prefix=True)
            listing = objects.list_prefix(prefix, buckets.settings_for(u))
        except (MediaError, objects.ObjectStoreError) as e:
            report["destinations_skipped"].append({"destination": prefix, "reason": str(e)})
            continue
        for uri, info in listing:
            name = uri[len(prefix):]
            if "/" in name or not buckets.CONTENT_NAME.fullmatch(name):
                continue
            report["objects"] += 1
            if uri in refs:
                continue
            if info.last_modified is not None and now - info.last_modified.timestamp() < min_age_seconds:
                continue
            report["objects_deleted"] += 1
            report["object_bytes_freed"] += info.size
            if not dry_run:
                objects.delete(uri, buckets.settings_for(u))
                buckets.forget(uri)
    return report
