-- Versioning: history, revert, snapshots, time travel, schema versions, retention, and the
-- SQLSTATEs of its errors. (The model-based property test stays in tests/test_versioning.py.)
\getenv files PXT_REGRESS_FILES
\set SHOW_CONTEXT never
-- the NOTICEs of the DDL pixelgres runs name its internal objects, some by random keys
SET client_min_messages = warning;

-- revert undoes one version at a time, down to version 0
SELECT pxt.create_table('r', '{"x": "int"}');
INSERT INTO r (x) VALUES (1);
INSERT INTO r (x) VALUES (2), (3);
SELECT pxt.revert('r');
SELECT pxt.revert('r');
SELECT pxt.revert('r');
SELECT count(*) FROM r;

-- every statement that changes data is a version, and so is every schema change
SELECT pxt.create_table('h', '{"x": "int"}');
SELECT pxt.add_computed_column('h', 'y', 'pxt_test.batch_probe(x::text)', on_error => 'ignore');
INSERT INTO h (x) SELECT g FROM generate_series(1, 5) g;
UPDATE h SET x = x + 10 WHERE x <= 2;
DELETE FROM h WHERE x = 3;
-- changes nothing: no version
UPDATE h SET x = x WHERE false;
SELECT pxt.rename_column('h', 'x', 'xx');
INSERT INTO h (xx) VALUES (NULL);
SELECT version, change_type, inserts, updates, deletes, schema_change->>'op' AS op FROM pxt.history('h') ORDER BY version;
-- the batched write-back belongs to the inserting statement's version
SELECT count(DISTINCT _pxt_v) FROM pxt_data."public.h" WHERE xx > 3 AND xx < 10;
SELECT column_name FROM information_schema.columns WHERE table_name = 'h' AND column_name IN ('x', 'xx');
-- reverting the insert, then the rename
SELECT pxt.revert('h');
SELECT pxt.revert('h');
SELECT column_name FROM information_schema.columns WHERE table_name = 'h' AND column_name IN ('x', 'xx');

-- per-cell errors are counted in the history
SELECT pxt.create_table('e', '{"s": "string"}');
SELECT pxt.add_computed_column('e', 'p', 'pxt_test.batch_probe(s)', on_error => 'ignore');
INSERT INTO e (s) VALUES ('ok'), ('fail1'), ('fail2');
SELECT inserts, errors FROM pxt.history('e') WHERE version = 2;

-- a snapshot is unchanged by later changes, and by reverts of the version it shows
SELECT pxt.create_table('ml.images', '{"label": "string"}');
INSERT INTO ml.images (label) VALUES ('cat'), ('dog');
SELECT pxt.create_snapshot('ml.images_before_relabeling', 'ml.images');
SELECT _pxt_rowid, label FROM ml.images_before_relabeling ORDER BY 1;
UPDATE ml.images SET label = 'animal';
INSERT INTO ml.images (label) VALUES ('bird');
DELETE FROM pxt_data."ml.images" WHERE _pxt_rowid = 1;
SELECT pxt.add_computed_column('ml.images', 'n', 'length(label)');
SELECT _pxt_rowid, label FROM ml.images_before_relabeling ORDER BY 1;
-- read-only (terse: the DETAIL would describe how the snapshot view is built)
\set VERBOSITY terse
UPDATE ml.images_before_relabeling SET label = 'x';
\set VERBOSITY default
SELECT pxt.revert('ml.images');
SELECT pxt.revert('ml.images');
SELECT pxt.revert('ml.images');
SELECT pxt.revert('ml.images');
-- the strict mode refuses to undo the version a snapshot shows, as Pixeltable does
SELECT pxt.revert('ml.images', if_pinned => 'error');
SELECT pxt.revert('ml.images', if_pinned => 'x');
-- the default keeps the snapshot: it takes over the rows version 1 inserted
SELECT pxt.revert('ml.images');
SELECT count(*) FROM ml.images;
SELECT _pxt_rowid, label FROM ml.images_before_relabeling ORDER BY 1;
SELECT version, pins FROM pxt.tables WHERE relid = 'ml.images_before_relabeling'::regclass;
-- version 1 again, a different one
INSERT INTO ml.images (label) VALUES ('fish');
SELECT _pxt_rowid, label FROM ml.images_before_relabeling ORDER BY 1;
SELECT pxt.drop_table('ml.images');
-- dropping the snapshot drops its overlay table
SELECT 'pxt_internal.' || quote_ident('snap_' || vkey) AS overlay FROM pxt.tables
 WHERE relid = 'ml.images_before_relabeling'::regclass \gset
SELECT to_regclass(:'overlay') IS NOT NULL AS overlay_exists;
SELECT pxt.drop_snapshot('ml.images_before_relabeling');
SELECT to_regclass(:'overlay') IS NOT NULL AS overlay_exists;
SELECT pxt.drop_table('ml.images');

-- a chain of reverts under a snapshot: data versions move only their rows into the overlay
-- (the snapshot then pins the previous version), a schema version copies the snapshot whole
SELECT pxt.create_table('sv', '{"a": "int"}');
INSERT INTO sv (a) SELECT g FROM generate_series(1, 50) g;
SELECT pxt.add_computed_column('sv', 'b', 'a * 2');
UPDATE sv SET a = a + 100 WHERE a <= 10;
DELETE FROM sv WHERE a BETWEEN 20 AND 24;
SELECT pxt.create_snapshot('sv_s', 'sv');
CREATE TEMP TABLE want AS SELECT _pxt_rowid, a, b FROM pxt_data."public.sv";
SELECT count(*) FROM want;
SELECT 'pxt_internal.' || quote_ident('snap_' || vkey) AS overlay FROM pxt.tables WHERE relid = 'sv_s'::regclass \gset
-- version 4 (5 deletes): 5 tombstones in the overlay; then version 3 (10 updates): 10 more rows
SELECT pxt.revert('sv');
SELECT (SELECT array_agg((_pxt_rowid, a, b) ORDER BY _pxt_rowid) FROM sv_s) = (SELECT array_agg((_pxt_rowid, a, b) ORDER BY _pxt_rowid) FROM want) AS unchanged,
       (SELECT count(*) FROM :overlay) AS overlay_rows;
SELECT pxt.revert('sv');
SELECT (SELECT array_agg((_pxt_rowid, a, b) ORDER BY _pxt_rowid) FROM sv_s) = (SELECT array_agg((_pxt_rowid, a, b) ORDER BY _pxt_rowid) FROM want) AS unchanged,
       (SELECT count(*) FROM :overlay) AS overlay_rows;
SELECT pins FROM pxt.tables WHERE relid = 'sv_s'::regclass;
-- the schema version: the snapshot is copied whole and pins nothing
SELECT pxt.revert('sv');
SELECT pins FROM pxt.tables WHERE relid = 'sv_s'::regclass;
SELECT pxt.revert('sv');
INSERT INTO sv (a) VALUES (7);
SELECT (SELECT array_agg((_pxt_rowid, a, b) ORDER BY _pxt_rowid) FROM sv_s) = (SELECT array_agg((_pxt_rowid, a, b) ORDER BY _pxt_rowid) FROM want) AS unchanged;
SELECT pxt.vacuum_history('sv', keep => 1)->'retained_from' AS retained_from;
SELECT (SELECT array_agg((_pxt_rowid, a, b) ORDER BY _pxt_rowid) FROM sv_s) = (SELECT array_agg((_pxt_rowid, a, b) ORDER BY _pxt_rowid) FROM want) AS unchanged;
SELECT pxt.drop_table('sv', force => true);

-- reverting an added computed column removes it; adding it again computes only it
CREATE SEQUENCE calls;
CREATE FUNCTION counted(x bigint) RETURNS bigint LANGUAGE sql VOLATILE AS $$ SELECT x + 0 * nextval('calls') $$;
SELECT pxt.create_table('c', '{"x": "int"}');
SELECT pxt.add_computed_column('c', 'k', 'counted(x)');
INSERT INTO c (x) SELECT g FROM generate_series(1, 10) g;
SELECT pxt.add_computed_column('c', 'sq', 'x * x');
SELECT last_value AS calls0 FROM calls \gset
SELECT pxt.revert('c');
SELECT name FROM pxt.columns('c');
SELECT column_name FROM information_schema.columns WHERE table_name = 'c' AND column_name = 'sq';
SELECT pxt.add_computed_column('c', 'sq', 'x * x');
SELECT (SELECT last_value FROM calls) - :calls0 AS k_calls, count(*) FILTER (WHERE sq = x * x) AS squared FROM c;

-- reverting pxt.drop_column restores the column with its values
SELECT pxt.create_table('d', '{"x": "int", "note": "string"}');
SELECT pxt.add_computed_column('d', 'up', 'upper(note)');
INSERT INTO d (x, note) VALUES (1, 'a'), (2, 'b');
SELECT pxt.drop_column('d', 'up');
SELECT pxt.drop_column('d', 'note');
SELECT name FROM pxt.columns('d');
-- a plain DROP COLUMN would lose history
ALTER TABLE d DROP COLUMN x;
SELECT pxt.revert('d');
SELECT pxt.revert('d');
SELECT x, note, up FROM d ORDER BY x;
-- and it computes again
INSERT INTO d (x, note) VALUES (3, 'c');
SELECT up FROM d WHERE x = 3;

-- time travel: a version's rows with its columns as named then
SELECT pxt.create_table('tt', '{"x": "int", "old": "string"}');
INSERT INTO tt (x, old) VALUES (1, 'one');
SELECT pxt.rename_column('tt', 'old', 'renamed');
SELECT pxt.drop_column('tt', 'renamed');
INSERT INTO tt (x) VALUES (2);
SELECT pxt.at_version('tt', 1);
SELECT * FROM "tt@1";
SELECT pxt.at_version('tt', 2);
SELECT * FROM "tt@2";
SELECT pxt.at_version('tt', 4);
SELECT * FROM "tt@4" ORDER BY x;
SELECT pxt.at_version('tt', 9);

-- vacuum_history: keeps what snapshots read, then removes old versions and dropped columns
SELECT pxt.create_table('vh', '{"x": "int", "gone": "string"}');
INSERT INTO vh (x, gone) VALUES (1, 'a');
UPDATE vh SET x = x + 1;
UPDATE vh SET x = x + 1;
UPDATE vh SET x = x + 1;
UPDATE vh SET x = x + 1;
UPDATE vh SET x = x + 1;
-- version 7
SELECT pxt.drop_column('vh', 'gone');
SELECT pxt.create_snapshot('vh_s', 'vh', 3);
SELECT pxt.vacuum_history('vh', keep => 2);
SELECT pxt.drop_snapshot('vh_s');
SELECT v->'retained_from' AS retained_from, v->'rows_removed' AS rows_removed FROM pxt.vacuum_history('vh', keep => 2) v;
SELECT pxt.at_version('vh', 2);
SELECT * FROM pxt.rows_at_version('vh', 6);
-- now the dropped column can go
SELECT v->'retained_from' AS retained_from FROM pxt.vacuum_history('vh', keep => 1) v;
SELECT column_name FROM information_schema.columns WHERE table_name = 'vh' AND column_name = '_pxt_dropped_2';

-- _pxt_v and _pxt_rowid (in the table's storage), which history, time travel and revert trust, cannot be updated;
-- the refusal names the table and leaves the table and its history as they were
-- (no computed columns: no row trigger; the guard is a statement trigger on UPDATE OF _pxt_v)
SELECT pxt.create_table('sc', '{"a": "int"}');
INSERT INTO sc (a) VALUES (1), (2);
UPDATE pxt_data."public.sc" SET _pxt_v = 0 WHERE a = 1;
\echo :LAST_ERROR_SQLSTATE
UPDATE pxt_data."public.sc" SET _pxt_rowid = 9 WHERE a = 1;
\echo :LAST_ERROR_SQLSTATE
-- naming it at all is refused, even unchanged; other columns update as usual
UPDATE pxt_data."public.sc" SET a = a + 1, _pxt_v = _pxt_v;
\echo :LAST_ERROR_SQLSTATE
UPDATE pxt_data."public.sc" SET a = a + 1;
SELECT _pxt_rowid, _pxt_v, a FROM pxt_data."public.sc" ORDER BY 1;
SELECT version FROM pxt.history('sc');
SELECT * FROM pxt.rows_at_version('sc', 1) r ORDER BY r->'_pxt_rowid';

-- errors carry specific SQLSTATEs, for clients to branch on
SELECT pxt.create_table('st', '{"a": "int"}');
CREATE TABLE plain_t (a int);
SELECT pxt.revert('st');
\echo :LAST_ERROR_SQLSTATE
SELECT pxt.revert('nope');
\echo :LAST_ERROR_SQLSTATE
SELECT pxt.revert('plain_t');
\echo :LAST_ERROR_SQLSTATE
SELECT pxt.drop_column('st', 'zz');
\echo :LAST_ERROR_SQLSTATE
SELECT pxt.add_column('st', 'a', 'int');
\echo :LAST_ERROR_SQLSTATE
SELECT pxt.create_table('st', '{"b": "int"}');
\echo :LAST_ERROR_SQLSTATE
INSERT INTO st (a) VALUES (1);
SELECT pxt.create_snapshot('st_s', 'st');
SELECT pxt.drop_table('st');
\echo :LAST_ERROR_SQLSTATE
SELECT pxt.revert('st', if_pinned => 'error');
\echo :LAST_ERROR_SQLSTATE

-- the media store keeps what any version or snapshot references (red, green, blue: 64x48 PNGs)
\set red :files/red.png
\set green :files/green.png
\set blue :files/blue.png
SELECT pxt.create_table('mv', '{"image": "image"}');
SELECT pxt.add_computed_column('mv', 'small', 'pxt.resize(image, 8, 8)');
INSERT INTO mv (image) VALUES (:'red'), (:'green');
SELECT pxt.create_snapshot('mv_snap', 'mv');
-- still in the history and the snapshot
DELETE FROM mv WHERE image = :'red';
INSERT INTO mv (image) VALUES (:'blue');
-- its thumbnail is now garbage
SELECT pxt.revert('mv');
SELECT pxt.store_media('\x00ff'::bytea, 'bin') AS orphan \gset
-- deleted: the reverted thumbnail and the orphan
SELECT pxt.vacuum_media(min_age => '0 seconds')->'deleted' AS deleted;
-- every version's media still resolves
SELECT pxt.width(small) FROM mv_snap ORDER BY _pxt_rowid;
SELECT pxt.media_path(:'orphan');
SELECT pxt.vacuum_media(min_age => '0 seconds')->'deleted' AS deleted;
-- reverting everything the snapshot shows moves its rows into its overlay: still referenced
CREATE TEMP TABLE snap_refs AS SELECT small FROM mv_snap;
SELECT pxt.revert('mv');
SELECT pxt.revert('mv');
SELECT pxt.revert('mv');
SELECT version FROM pxt.list_tables() WHERE name = 'public.mv';
SELECT pins FROM pxt.tables WHERE relid = 'mv_snap'::regclass;
SELECT pxt.vacuum_media(min_age => '0 seconds')->'deleted' AS deleted;
SELECT (SELECT array_agg(small ORDER BY small) FROM mv_snap) = (SELECT array_agg(small ORDER BY small) FROM snap_refs) AS same_refs;
SELECT pxt.width(small) FROM mv_snap ORDER BY _pxt_rowid;
