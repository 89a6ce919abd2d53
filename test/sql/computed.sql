-- Computed columns from SQL: dependency chains, on_error, per-cell errors, recompute,
-- batched functions, adopted plain-DDL tables, hostile expressions and table names.
\set SHOW_CONTEXT never

-- a chain of computed columns through a JSON path; the catalog shows types and dependencies
SELECT pxt.create_table('ml.docs', '{"body": "json", "n": "int"}');
SELECT pxt.add_computed_column('ml.docs', 'response', $$jsonb_build_object('choices', jsonb_build_array(jsonb_build_object('message', jsonb_build_object('content', body->>'text'))))$$);
SELECT pxt.add_computed_column('ml.docs', 'caption', $$response->'choices'->0->'message'->>'content'$$);
SELECT pxt.add_computed_column('ml.docs', 'shout', 'upper(caption) || n');
INSERT INTO ml.docs (body, n) VALUES ('{"text": "a dog"}', 1), ('{"text": "a cat"}', 2);
SELECT caption, shout FROM ml.docs ORDER BY n;
SELECT name, type, is_computed, depends_on FROM pxt.columns('ml.docs');
-- updating an input flows down the whole chain
UPDATE ml.docs SET body = '{"text": "a bird"}' WHERE n = 1;
SELECT shout FROM ml.docs WHERE n = 1;

-- a function that fails for the inputs listed in fail_set (so the cause can be "fixed")
CREATE TABLE fail_set (x int PRIMARY KEY);
CREATE FUNCTION flaky(x bigint) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM fail_set f WHERE f.x = flaky.x) THEN
        RAISE EXCEPTION 'flaky refuses %', x USING ERRCODE = '22000';
    END IF;
    RETURN x * 2;
END $$;
INSERT INTO fail_set SELECT g FROM generate_series(10, 100, 10) g;

-- on_error => 'abort' (the default): the error names the column, the row and the cause,
-- keeps the cause's SQLSTATE, and nothing is half-written
SELECT pxt.create_table('t_abort', '{"x": "int", "note": "string"}');
SELECT pxt.add_computed_column('t_abort', 'y', 'flaky(x)');
INSERT INTO t_abort (x) SELECT g FROM generate_series(1, 100) g;
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM t_abort;

-- on_error => 'ignore': NULL and a per-cell error; recompute only the failed cells once fixed
SELECT pxt.create_table('t_ignore', '{"x": "int", "note": "string"}');
SELECT pxt.add_computed_column('t_ignore', 'y', 'flaky(x)', on_error => 'ignore');
SELECT pxt.add_computed_column('t_ignore', 'z', 'y + 1');
INSERT INTO t_ignore (x) SELECT g FROM generate_series(1, 100) g;
SELECT count(*) FROM t_ignore WHERE y IS NOT NULL;
SELECT rowid, "column", error_type, message, sqlstate FROM pxt.errors('t_ignore') ORDER BY rowid;
-- _pxt_errors is queryable like any jsonb column, in the table's storage (SELECT * shows the user's columns)
SELECT count(*) FROM pxt_data."public.t_ignore" WHERE _pxt_errors ? 'y';
DELETE FROM fail_set;
SELECT pxt.recompute_columns('t_ignore', ARRAY['y'], errors_only => true);
SELECT count(*) FROM t_ignore WHERE y = 2 * x AND z = y + 1;
SELECT count(*) FROM pxt.errors('t_ignore');

-- computed columns cannot be written
SELECT pxt.create_table('t_write', '{"x": "int", "note": "string"}');
SELECT pxt.add_computed_column('t_write', 'y', 'x + 1');
INSERT INTO t_write (x, y) VALUES (1, 5);
\echo :LAST_ERROR_SQLSTATE
INSERT INTO t_write (x) VALUES (1);
UPDATE t_write SET y = 7;
\echo :LAST_ERROR_SQLSTATE
SELECT x, y FROM t_write;

-- a column others depend on cannot be dropped, with pxt.drop_column or plain DDL
SELECT pxt.create_table('t_drop', '{"x": "int", "note": "string"}');
SELECT pxt.add_computed_column('t_drop', 'y', 'x + 1');
SELECT pxt.add_computed_column('t_drop', 'z', 'y * 10');
SELECT pxt.drop_column('t_drop', 'y');
-- (terse: the DETAIL names the internal view that reads the column)
\set VERBOSITY terse
ALTER TABLE t_drop DROP COLUMN x;
\set VERBOSITY default
\echo :LAST_ERROR_SQLSTATE
-- (client_min_messages: PostgreSQL's notices about pixelgres's own objects the drops cascade to)
SET client_min_messages = warning;
SELECT pxt.drop_column('t_drop', 'z');
SELECT pxt.drop_column('t_drop', 'y');
RESET client_min_messages;
SELECT name FROM pxt.columns('t_drop');
-- the regenerated trigger works
INSERT INTO t_drop (x) VALUES (3);
SELECT x, note FROM t_drop;

-- adding a column backfills the existing rows, in chunks, with progress notices
-- (terse: their messages, without the DETAIL clients parse)
SELECT pxt.create_table('big', '{"x": "int"}');
INSERT INTO big (x) SELECT g FROM generate_series(1, 12000) g;
\set VERBOSITY terse
SELECT pxt.add_computed_column('big', 'sq', 'x * x');
\set VERBOSITY default
SELECT count(*) FROM big WHERE sq = x * x;

-- an UPDATE recomputes only the columns whose inputs changed (sequences count the calls)
CREATE SEQUENCE calls_a;
CREATE SEQUENCE calls_b;
CREATE FUNCTION count_a(x bigint) RETURNS bigint LANGUAGE sql VOLATILE AS $$ SELECT x + 0 * nextval('calls_a') $$;
CREATE FUNCTION count_b(x text) RETURNS text LANGUAGE sql VOLATILE AS $$ SELECT x || (0 * nextval('calls_b'))::text $$;
SELECT pxt.create_table('u', '{"a": "int", "b": "string"}');
SELECT pxt.add_computed_column('u', 'fa', 'count_a(a)');
SELECT pxt.add_computed_column('u', 'fb', 'count_b(b)');
INSERT INTO u (a, b) SELECT g, 's' || g FROM generate_series(1, 20) g;
SELECT (SELECT last_value FROM calls_a) AS a0, (SELECT last_value FROM calls_b) AS b0 \gset
UPDATE u SET b = b || '!' WHERE a <= 5;
SELECT (SELECT last_value FROM calls_a) - :a0 AS fa_calls, (SELECT last_value FROM calls_b) - :b0 AS fb_calls;
SELECT count(*) FROM u WHERE fb LIKE '%!0';

-- altering, dropping and re-adding a column recompute only that column
SELECT pxt.create_table('u2', '{"a": "int"}');
SELECT pxt.add_computed_column('u2', 'fa', 'count_a(a)');
SELECT pxt.add_computed_column('u2', 'dbl', 'a * 2');
INSERT INTO u2 (a) SELECT g FROM generate_series(1, 10) g;
SELECT last_value AS a0 FROM calls_a \gset
SELECT pxt.alter_computed_column('u2', 'dbl', 'a * 3');
SELECT (SELECT last_value FROM calls_a) - :a0 AS fa_calls, count(*) FILTER (WHERE dbl = 3 * a) AS tripled FROM u2;
SELECT pxt.drop_column('u2', 'dbl');
SELECT pxt.add_computed_column('u2', 'dbl', 'a * 4');
SELECT (SELECT last_value FROM calls_a) - :a0 AS fa_calls, count(*) FILTER (WHERE dbl = 4 * a) AS quadrupled FROM u2;
-- the new expression must keep the column's type
SELECT pxt.alter_computed_column('u2', 'dbl', $$'x'$$);

-- a batched function sees each statement's new rows as one batch
SELECT pxt.create_table('b', '{"s": "string"}');
SELECT pxt.add_computed_column('b', 'p', 'pxt_test.batch_probe(s)');
SELECT pxt.add_computed_column('b', 'after', 'upper(p)');
INSERT INTO b (s) SELECT 'r' || g FROM generate_series(1, 100) g;
SELECT count(*) AS n, count(*) FILTER (WHERE p = s || '|batch=100' AND after = upper(p)) AS one_batch_of_100 FROM b;
-- a second statement is a second batch; an update re-evaluates only the changed rows
INSERT INTO b (s) VALUES ('x'), ('y');
SELECT p FROM b WHERE s = 'x';
UPDATE b SET s = s || 'z' WHERE s IN ('r1', 'r2', 'r3');
SELECT s, p, after FROM b WHERE s LIKE '%z' ORDER BY s;
-- identical inputs within a statement are one call
INSERT INTO b (s) VALUES ('same'), ('same'), ('same');
SELECT DISTINCT p FROM b WHERE s = 'same';
-- called directly, outside any table, it is a batch of one
SELECT pxt_test.batch_probe('solo');

-- errors of batched functions follow on_error
SELECT pxt.create_table('b2', '{"s": "string"}');
SELECT pxt.add_computed_column('b2', 'p', 'pxt_test.batch_probe(s)', on_error => 'ignore');
INSERT INTO b2 (s) VALUES ('ok1'), ('fail1'), ('ok2');
SELECT s, p FROM pxt_data."public.b2" ORDER BY _pxt_rowid;
SELECT "column", error_type, message FROM pxt.errors('b2');
SELECT pxt.create_table('c', '{"s": "string"}');
SELECT pxt.add_computed_column('c', 'p', 'pxt_test.batch_probe(s)');
INSERT INTO c (s) VALUES ('ok1'), ('fail1');
SELECT count(*) FROM c;
-- no stale batch state
INSERT INTO c (s) VALUES ('fine');
SELECT p FROM c;

-- a table made with plain DDL, adopted
CREATE TABLE plain (id serial PRIMARY KEY, image pxt.image, label text);
INSERT INTO plain (label) VALUES ('a'), ('b');
SELECT pxt.manage('plain');
SELECT pxt.add_computed_column('plain', 'shout', 'upper(label)');
INSERT INTO plain (label) VALUES ('c');
SELECT id, label, shout FROM plain ORDER BY id;
SELECT name, media_type, is_computed FROM pxt.columns('plain');
-- columns added with plain DDL join the catalog as inputs
ALTER TABLE plain ADD COLUMN extra int;
SELECT name, is_computed FROM pxt.columns('plain');

-- a renamed input: the column keeps computing and depends on the new name
SELECT pxt.create_table('r', '{"a": "string"}');
SELECT pxt.add_computed_column('r', 'up', 'upper(a)');
ALTER TABLE r RENAME COLUMN a TO b;
INSERT INTO r (b) VALUES ('x');
SELECT up FROM r;
SELECT name, depends_on FROM pxt.columns('r') WHERE name = 'up';

-- hostile expressions are refused, and change nothing
SELECT pxt.create_table('inj', '{"x": "int"}');
SELECT pxt.add_computed_column('inj', 'c', '1); DROP TABLE inj; SELECT (1');
SELECT pxt.add_computed_column('inj', 'c', 'x; DROP TABLE inj');
SELECT pxt.add_computed_column('inj', 'c', '1) FROM inj --');
SELECT pxt.add_computed_column('inj', 'c', '(SELECT count(*) FROM inj)');
SELECT pxt.add_computed_column('inj', 'c', 'x /* c */');
SELECT pxt.add_computed_column('inj', 'c', 'E''\x''');
SELECT pxt.add_computed_column('inj', 'c', '$$a$$');
SELECT pxt.add_computed_column('inj', 'c', 'pg_class.oid');
SELECT pxt.add_computed_column('inj', 'c', 'nosuchcol + 1');
SELECT pxt.add_computed_column('inj', 'c', '''unterminated');
SELECT name FROM pxt.columns('inj');
SELECT to_regclass('inj') IS NOT NULL AS inj_exists;

-- hostile table names are refused
SELECT pxt.create_table('bad"name', '{"x": "int"}');
SELECT pxt.create_table('x; DROP TABLE t', '{"x": "int"}');
SELECT pxt.create_table('a.b.c.d', '{"x": "int"}');
SELECT pxt.create_table('', '{"x": "int"}');
SELECT 1 AS still_connected;

-- quoted identifiers work everywhere
SELECT pxt.create_table('"My Schema"."Odd ""Table"""', '{"Col; x": "string"}');
SELECT pxt.add_computed_column('"My Schema"."Odd ""Table"""', 'len', 'length("Col; x")');
INSERT INTO "My Schema"."Odd ""Table""" ("Col; x") VALUES ('abc');
SELECT len FROM "My Schema"."Odd ""Table""";

-- dropping a table, with pxt.drop_table or plain DDL, leaves nothing behind in the catalog
SELECT (SELECT count(*) FROM pxt.tables) AS tables0,
       (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'pxt_internal') AS functions0 \gset
SELECT pxt.create_table('gone', '{"x": "int"}');
SELECT pxt.add_computed_column('gone', 'y', 'x + 1');
SET client_min_messages = warning;
SELECT pxt.drop_table('gone');
RESET client_min_messages;
SELECT (SELECT count(*) FROM pxt.tables) - :tables0 AS tables_left,
       (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'pxt_internal') - :functions0 AS functions_left;
SELECT pxt.create_table('gone2', '{"x": "int"}');
DROP TABLE gone2;
SELECT count(*) - :tables0 AS tables_left FROM pxt.tables;

-- create_table keeps the schema's column order
SELECT pxt.create_table('ord', '{"zeta": "int", "alpha": "string", "mid": "float"}');
SELECT name FROM pxt.columns('ord');
