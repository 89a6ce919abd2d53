-- Bad media values: every image function refuses them with a clear MediaError (SQLSTATE
-- 22023) and the backend stays up; a table INSERT or UPDATE naming one is refused (naming
-- the column and the row) and changes nothing, even when the computed columns ignore errors.
-- (URLs to private addresses, checked without traffic, and bad videos stay in tests/test_bad_inputs.py.)
\getenv files PXT_REGRESS_FILES
\getenv outside PXT_REGRESS_OUTSIDE
\set SHOW_CONTEXT never
-- results name files (written @files@ here, see test/launcher.sh): columns are not padded
\pset format unaligned
\pset fieldsep ' | '
-- error_of(query): 'SQLSTATE: message' of the error the query fails with, or 'no error'
CREATE FUNCTION pg_temp.error_of(query text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE query;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

-- The values, and which functions must refuse them: 'decode' the functions that decode the
-- pixels, 'header' those that read only the header or pass the file through (a truncated
-- file's header is intact), 'path' those that only resolve the file.
-- Inputs (tests/test_regress.py): empty.jpg 0 bytes; notes.jpg text; cut_half.jpg the first
-- half of a 256x192 JPEG; cut.png the first half of a 64x48 PNG; corrupt.png a 64x48 PNG with
-- 20 bytes of its image data garbled; header.png a PNG's signature and header only; bomb.png a
-- real 30000x30000 PNG; innocent.jpg a symlink to @outside@/secret.jpg; passwd.jpg a symlink to
-- /etc/passwd. @outside@ is readable by the server but not under pixelgres.allowed_roots.
CREATE TEMP TABLE bad (n int, kind text, value text, refused_by text[]);
INSERT INTO bad VALUES
    (1, 'missing', :'files' || '/no-such-file.jpg', '{decode,header,path}'),
    (2, 'directory', :'files', '{decode,header,path}'),
    (3, 'zero bytes', :'files' || '/empty.jpg', '{decode,header,path}'),
    (4, 'not an image', :'files' || '/notes.jpg', '{decode,header}'),
    (5, 'truncated JPEG', :'files' || '/cut_half.jpg', '{decode}'),
    (6, 'truncated PNG', :'files' || '/cut.png', '{decode}'),
    (7, 'corrupt PNG', :'files' || '/corrupt.png', '{}'),
    (8, 'PNG header only', :'files' || '/header.png', '{}'),
    (9, '30000x30000 PNG', :'files' || '/bomb.png', '{decode,header}'),
    (10, '/etc/passwd', '/etc/passwd', '{decode,header,path}'),
    (11, 'symlink out of the roots', :'files' || '/innocent.jpg', '{decode,header,path}'),
    (12, 'symlink to /etc/passwd', :'files' || '/passwd.jpg', '{decode,header,path}'),
    (13, '.. to /etc/passwd', :'files' || '/../../../../../../../../etc/passwd', '{decode,header,path}'),
    (14, '.. to an image out of the roots', :'files' || repeat('/..', 20) || :'outside' || '/secret.jpg', '{decode,header,path}'),
    (15, 'file URI of /etc/passwd', 'file:///etc/passwd', '{decode,header,path}'),
    (16, 'file URI with ..', 'file://' || :'files' || '/..%2F..%2F..%2F..%2F..%2Fetc/passwd', '{}'),
    (17, 'file URI of a remote host', 'file://fileserver.example.com/share/cat.jpg', '{decode,header,path}'),
    (18, 'relative path', 'images/cat.jpg', '{decode,header,path}'),
    (19, 'ftp URL', 'ftp://example.com/cat.jpg', '{decode,header,path}'),
    (20, 'loopback URL', 'http://127.0.0.1:9/cat.jpg', '{decode,header,path}'),
    (21, 'frame of a video out of the roots', 'pxt-frame:0:0:/etc/passwd', '{}'),
    (22, 'malformed frame reference', 'pxt-frame:x:y:' || :'files' || '/v.mp4', '{}');
CREATE TEMP TABLE functions (n int, refuses text, call text);
INSERT INTO functions VALUES
    (1, 'decode', 'resize(v, 16, 16)'), (2, 'decode', 'thumbnail(v, 16, 16)'), (3, 'decode', 'crop(v, 0, 0, 4, 4)'),
    (4, 'decode', 'rotate(v, 90)'), (5, 'decode', 'convert(v, ''L'')'), (6, 'decode', 'to_bytes(v, ''PNG'')'),
    (7, 'decode', 'image_url(v, 8)'),
    (8, 'header', 'width(v)'), (9, 'header', 'height(v)'), (10, 'header', 'mode(v)'), (11, 'header', 'format(v)'),
    (12, 'header', 'image_info(v)'), (13, 'header', 'image_url(v)'),
    (14, 'path', 'to_bytes(v)'), (15, 'path', 'media_path(v)');

-- each value with the errors of the functions that must refuse it
SELECT b.kind, e.error, string_agg(f.call, ', ' ORDER BY f.n) AS functions
  FROM bad b JOIN functions f ON f.refuses = ANY (b.refused_by)
 CROSS JOIN LATERAL (SELECT pg_temp.error_of('SELECT pxt.' || replace(f.call, '(v', '(' || quote_literal(b.value))) AS error) e
 GROUP BY b.n, b.kind, e.error
 ORDER BY b.n, min(f.n);

-- a table with computed columns and one committed row (small.png: 32x24)
\set good :files/small.png
\set good_jpeg :files/quad.jpg
SELECT pxt.create_table('ml.images', '{"image": "image", "label": "string"}');
SELECT pxt.add_computed_column('ml.images', 'thumb', 'pxt.resize(image, 8, 8)');
SELECT pxt.add_computed_column('ml.images', 'px', 'pxt.width(image) * pxt.height(image)');
INSERT INTO ml.images (image, label) VALUES (:'good', 'committed');
SELECT _pxt_rowid, label, px FROM pxt_data."ml.images";
SELECT jsonb_agg(to_jsonb(t) ORDER BY _pxt_rowid) AS committed FROM pxt_data."ml.images" t \gset

-- a multi-row INSERT with a bad value among good ones inserts nothing, naming the bad row
SELECT format($$INSERT INTO ml.images (image, label) VALUES (%L, 'a'), (%L, 'b'), (%L, 'c')$$, :'good', value, :'good_jpeg')
  FROM bad ORDER BY n \gexec
SELECT jsonb_agg(to_jsonb(t) ORDER BY _pxt_rowid) = :'committed' AS unchanged FROM pxt_data."ml.images" t;

-- an UPDATE of the committed row to a bad value is refused, leaving the row as it was
SELECT format($$UPDATE ml.images SET image = %L WHERE label = 'committed'$$, value) FROM bad ORDER BY n \gexec
SELECT jsonb_agg(to_jsonb(t) ORDER BY _pxt_rowid) = :'committed' AS unchanged FROM pxt_data."ml.images" t;

-- with on_error => 'ignore' on the computed columns the media check still refuses the row:
-- a bad input is not a computed column's error
SELECT pxt.alter_computed_column('ml.images', 'thumb', 'pxt.resize(image, 8, 8)', on_error => 'ignore');
SELECT format($$INSERT INTO ml.images (image, label) VALUES (%L, 'c')$$, value) FROM bad ORDER BY n \gexec
SELECT jsonb_agg(to_jsonb(t) ORDER BY _pxt_rowid) = :'committed' AS unchanged FROM pxt_data."ml.images" t;

-- the connection and the table work on
INSERT INTO ml.images (image, label) VALUES (:'good', 'after1'), (:'good_jpeg', 'after2');
SELECT label, px FROM pxt_data."ml.images" ORDER BY _pxt_rowid;
