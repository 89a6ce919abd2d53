-- Image functions and the media store through SQL: argument checks, pixel limits, truncated
-- JPEGs, store references and data URIs, and table inserts that fail on media.
-- (Pixel-level checks of every function and format stay in tests/test_images.py.)
-- Inputs (tests/test_regress.py): quad.png 64x48 RGB; big.png 40x40; 30x30.png; 8x8.png;
-- thin.png 100000x1; small.png 32x24; cut_*.jpg a 256x192 JPEG (made by the server) cut short,
-- half_bytes.jpg its first half; stub.png a 30000x30000 PNG header without its pixels; bomb.png the whole PNG.
\getenv files PXT_REGRESS_FILES
\set SHOW_CONTEXT never
-- results name files (written @files@ here, see test/launcher.sh): columns are not padded
\pset format unaligned
\pset fieldsep ' | '
\set quad :files/quad.png
-- error_of(query): 'SQLSTATE: message' of the error the query fails with, or 'no error'
CREATE FUNCTION pg_temp.error_of(query text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE query;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

-- bad media are errors whose message starts with 'MediaError:' (SQLSTATE 22023), the backend lives on
SELECT pxt.width(:'files' || '/missing.jpg');
\echo :LAST_ERROR_SQLSTATE
SELECT 1 AS still_connected;

-- crop boxes must lie inside the image
SELECT box, pg_temp.error_of(format('SELECT pxt.crop(%L, %s)', :'quad', box)) AS error
  FROM (VALUES ('0, 0, 65, 48'), ('0, 0, 64, 49'), ('-1, 0, 10, 10'), ('0, -1, 10, 10'), ('10, 10, 10, 20'),
               ('10, 10, 20, 10'), ('30, 0, 20, 10'), ('64, 0, 65, 10'), ('0, 0, 0, 0')) b(box);
-- the full image is a valid box
SELECT pxt.width(c), pxt.height(c) FROM pxt.crop(:'quad', 0, 0, 64, 48) c;

-- sizes must be positive, modes known, angles finite
SELECT f, w, h, pg_temp.error_of(format('SELECT pxt.%s(%L, %s, %s)', f, :'quad', w, h)) AS error
  FROM unnest(ARRAY['resize', 'thumbnail']) f, (VALUES (0, 10), (10, 0), (0, 0), (-5, 10)) s(w, h);
SELECT pxt.convert(:'quad', 'NOPE');
\echo :LAST_ERROR_SQLSTATE
SELECT angle, pg_temp.error_of(format('SELECT pxt.rotate(%L, %L::float8)', :'quad', angle)) AS error
  FROM unnest(ARRAY['NaN', 'Infinity', '-Infinity']) angle;
-- modes PNG cannot hold are stored as TIFF; a mode nothing can store is a clear error
SELECT right(c, 5) AS ext, pxt.mode(c) FROM pxt.convert(:'quad', 'CMYK') c;
SELECT pxt.mode(pxt.convert(:'quad', 'F'));
SELECT pxt.convert(:'quad', 'HSV');
\echo :LAST_ERROR_SQLSTATE

-- pixelgres.max_image_pixels bounds what is decoded and what is made
\set big :files/big.png
\set small :files/30x30.png
SET pixelgres.max_image_pixels = 1000;
SELECT q, pg_temp.error_of(format(q, :'big')) AS error
  FROM unnest(ARRAY['SELECT pxt.width(%L)', 'SELECT pxt.resize(%L, 10, 10)', 'SELECT pxt.to_bytes(%L, ''PNG'')',
                    'SELECT pxt.image_url(%L)']) q;
SELECT pxt.image_from_bytes(pg_read_binary_file(:'big'));
\echo :LAST_ERROR_SQLSTATE
SELECT pxt.width(:'small');
-- results are bounded too: no resize or expanded rotate larger than the limit
SELECT pxt.resize(:'small', 100, 100);
\echo :LAST_ERROR_SQLSTATE
SELECT pxt.rotate(:'small', 45, expand => true);
\echo :LAST_ERROR_SQLSTATE
SELECT pxt.width(r), pxt.height(r) FROM pxt.resize(:'small', 20, 50) r;
-- and so is a table insert
SELECT pxt.create_table('ml.images', '{"image": "image"}');
INSERT INTO ml.images (image) VALUES (:'big');
\echo :LAST_ERROR_SQLSTATE
RESET pixelgres.max_image_pixels;
SELECT pxt.width(:'big');
INSERT INTO ml.images (image) VALUES (:'big');
SELECT count(*) FROM ml.images;
SELECT pxt.drop_table('ml.images');

-- under the default limit a 100000x100000 resize would allocate ~40 GB: a clear error instead
-- of a backend killed by the OOM killer (which restarts the whole cluster)
SET pixelgres.max_image_pixels = 100000000;
SELECT pxt.resize(:'files' || '/8x8.png', 100000, 100000);
\echo :LAST_ERROR_SQLSTATE
SELECT pxt.rotate(:'files' || '/thin.png', 45, expand => true);
\echo :LAST_ERROR_SQLSTATE
RESET pixelgres.max_image_pixels;

-- a 30000x30000 PNG is refused from its header: a file with only the header gives the same
-- pixel-limit error (a decode would have failed on its missing data instead), and so do its bytes
\set stub :files/stub.png
SELECT q, pg_temp.error_of(format(q, :'stub')) AS error
  FROM unnest(ARRAY['SELECT pxt.width(%L)', 'SELECT pxt.resize(%L, 10, 10)', 'SELECT pxt.image_url(%L, 64)',
                    'SELECT pxt._validate_media(%L, ''image'')']) q;
SELECT pxt.image_from_bytes(pg_read_binary_file(:'files' || '/bomb.png'));
SELECT pxt.image_from_bytes(pg_read_binary_file(:'stub'));
-- a smaller image is decoded as usual (the limit is not a blanket refusal of PNGs)
SELECT pxt.width(pxt.image_from_bytes(pg_read_binary_file(:'files' || '/small.png')));

-- a truncated JPEG is refused wherever it is cut: half, all but 100, 2 or 1 bytes
SELECT pxt.create_table('ml.images', '{"image": "image"}');
SELECT cut, pg_temp.error_of(format('SELECT pxt.resize(%L, 16, 16)', :'files' || '/' || cut)) AS resize
  FROM unnest(ARRAY['cut_half.jpg', 'cut_minus100.jpg', 'cut_minus2.jpg', 'cut_minus1.jpg']) cut;
SELECT cut, pg_temp.error_of(format('INSERT INTO ml.images (image) VALUES (%L)', :'files' || '/' || cut)) AS "insert"
  FROM unnest(ARRAY['cut_half.jpg', 'cut_minus100.jpg', 'cut_minus2.jpg', 'cut_minus1.jpg']) cut;
SELECT count(*) FROM ml.images;
SELECT pxt.drop_table('ml.images');

-- the store is content addressed: media://<sha256>.<ext>, written once
CREATE TEMP TABLE blob AS
SELECT convert_to('pixelgres store test', 'UTF8') AS data, encode(sha256(convert_to('pixelgres store test', 'UTF8')), 'hex') AS digest;
SELECT pxt.store_media(data, 'bin') = 'media://' || digest || '.bin' AS content_addressed,
       pxt.store_media(data, 'bin') = pxt.store_media(data, 'bin') AS same_content_same_ref,
       pxt.store_media(data, 'txt') = 'media://' || digest || '.txt' AS other_extension,
       pxt.store_media(data) = 'media://' || digest || '.bin' AS default_extension_is_bin
  FROM blob;
SELECT pxt.media_path(r) LIKE '%/' || left(digest, 2) || '/' || digest || '.bin' AS store_path,
       pg_read_binary_file(pxt.media_path(r)) = data AS same_bytes,
       (pg_stat_file(pxt.media_path(r))).size = length(data) AS same_size
  FROM blob, pxt.store_media(data, 'bin') r;
-- an image stored as bytes is an image value
SELECT pxt.width(pxt.store_media(pg_read_binary_file(:'quad'), 'png'));
-- two files with the same content give one derived image, stored under its own hash
SELECT a = b AS same_ref, substr(a, 9, 64) = encode(sha256(pg_read_binary_file(pxt.media_path(a))), 'hex') AS hash_of_content,
       a <> pxt.thumbnail(:'quad', 21, 21) AS other_size_other_ref
  FROM pxt.thumbnail(:'quad', 20, 20) a, pxt.thumbnail(:'files' || '/quad_copy.png', 20, 20) b;

-- errors of the store, bytes and data URIs
SELECT pxt.store_media('abc', 'x/y');
-- (the address of a Python object in two of the messages is masked)
SELECT q, regexp_replace(pg_temp.error_of(q), ' at 0x[0-9a-f]+>', ' at 0x...>') AS error
  FROM unnest(ARRAY[
    $$SELECT pxt.media_path('media://abc.png')$$,
    $$SELECT pxt.media_path('media://../../etc/passwd')$$,
    $$SELECT pxt.media_path('media://' || repeat('a', 64) || '.png')$$,
    $$SELECT pxt.width('media://' || repeat('b', 64) || '.jpg')$$,
    $$SELECT pxt.image_from_bytes(''::bytea)$$,
    $$SELECT pxt.image_from_bytes('hello'::bytea)$$,
    $$SELECT pxt.image_from_data_uri('hello')$$,
    $$SELECT pxt.image_from_data_uri('data:image/png;base64,***')$$,
    $$SELECT pxt.image_from_data_uri('data:image/png;base64,aGVsbG8=')$$]) q;
-- the first half of a JPEG
SELECT pxt.image_from_bytes(pg_read_binary_file(:'files' || '/half_bytes.jpg'));
\echo :LAST_ERROR_SQLSTATE
SELECT q, pg_temp.error_of(format(q, :'quad')) AS error
  FROM unnest(ARRAY['SELECT pxt.to_bytes(%L, ''NOPE'')', 'SELECT pxt.image_url(%L, 0)', 'SELECT pxt.image_url(%L, -3)']) q;
-- NULLs stay NULL
SELECT pxt.width(NULL), pxt.resize(NULL, 1, 1), pxt.to_bytes(NULL), pxt.image_url(NULL);

-- a managed table with computed image columns
SELECT pxt.create_table('ml.images', '{"image": "image", "category": "string"}');
SELECT pxt.add_computed_column('ml.images', 'thumbnail', 'pxt.resize(image, 16, 16)');
SELECT pxt.add_computed_column('ml.images', 'w', 'pxt.width(image)');
-- an INSERT's error names the failing row (here the 7th) and its value; nothing is inserted
INSERT INTO ml.images (image, category)
SELECT CASE WHEN g = 7 THEN :'files' || '/gone.png' ELSE :'quad' END, 'x' FROM generate_series(1, 10) g;
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM ml.images;

-- a computed column that fails on the existing rows is not added and changes nothing
INSERT INTO ml.images (image, category) VALUES (:'quad', 'a'), (:'quad', 'b');
SELECT jsonb_agg(to_jsonb(t) ORDER BY _pxt_rowid) AS before FROM pxt_data."ml.images" t \gset
SELECT pxt.add_computed_column('ml.images', 'big_crop', 'pxt.crop(image, 0, 0, 1000, 1000)');
\echo :LAST_ERROR_SQLSTATE
SELECT jsonb_agg(to_jsonb(t) ORDER BY _pxt_rowid) = :'before' AS unchanged FROM pxt_data."ml.images" t;
SELECT name FROM pxt.columns('ml.images');
-- the same column with on_error => 'ignore' records per-row errors instead
SELECT pxt.add_computed_column('ml.images', 'big_crop', 'pxt.crop(image, 0, 0, 1000, 1000)', on_error => 'ignore');
SELECT rowid, "column", error_type, message, sqlstate FROM pxt.errors('ml.images') ORDER BY rowid;
-- and a new good row still gets its thumbnail
INSERT INTO ml.images (image, category) VALUES (:'quad', 'c');
SELECT category, pxt.width(thumbnail), w, big_crop FROM pxt_data."ml.images" ORDER BY _pxt_rowid;
