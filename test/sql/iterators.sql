-- Iterators and iterator views through SQL: the string and document splitters, views over
-- tables, and the errors of creating views. (Video frames and audio segments, which need
-- generated videos and sounds, stay in tests/test_iterators.py.)
-- Inputs (tests/test_regress.py): guide.html, manual.md, notes.txt; square.mp4 a PNG image.
\getenv files PXT_REGRESS_FILES
\set SHOW_CONTEXT never

-- string_splitter: sentences, or lines
SELECT * FROM pxt.string_splitter('Hello there. How are you? Fine, e.g. well!  Bye.');
SELECT text FROM pxt.string_splitter(E'a\nb\n\nc', separators => 'line');
SELECT count(*) FROM pxt.string_splitter(NULL);

-- document_splitter on HTML: by heading (with the heading path), by paragraph
\set html :files/guide.html
SELECT pos, text, title, heading, page FROM pxt.document_splitter(:'html', 'heading');
SELECT pos, text FROM pxt.document_splitter(:'html', 'paragraph');
-- on Markdown: by heading and paragraph, by sentence
\set md :files/manual.md
SELECT pos, text, title, heading, page FROM pxt.document_splitter(:'md', 'heading,paragraph');
SELECT pos, text FROM pxt.document_splitter(:'md', 'sentence');
-- on plain text: paragraphs
SELECT pos, text, title, heading, page FROM pxt.document_splitter(:'files' || '/notes.txt', 'paragraph');

-- a batched computed column of a view is computed when the rows are expanded: one batch
SELECT pxt.create_table('notes', '{"body": "string"}');
SELECT pxt.create_view('sentences', 'notes', 'pxt.string_splitter(body)');
SELECT pxt.add_computed_column('sentences_rows', 'probe', 'pxt_test.batch_probe(text)');
INSERT INTO notes VALUES ('One. Two. Three.');
SELECT text, probe FROM sentences ORDER BY pos;

-- an image is not a video, whatever its name
SELECT count(*) FROM pxt.frame_iterator(:'files' || '/square.mp4');

-- creating a view checks its iterator call
SELECT pxt.create_table('ml.videos', '{"video": "video", "title": "string"}');
SELECT pxt.create_view('ml.frames', 'ml.videos', 'pxt.frame_iterator(nope)');
SELECT pxt.create_view('ml.frames', 'ml.videos', 'video');
SELECT pxt.create_view('ml.frames', 'ml.videos', 'pxt.frame_iterator(video); DROP TABLE ml.videos');
SELECT pxt.create_view('ml.frames', 'ml.videos', 'pxt.frame_iterator((SELECT video FROM ml.videos LIMIT 1))');
SELECT pxt.create_view('ml.frames', 'ml.nothing', 'pxt.frame_iterator(video)');
-- bad iterator arguments are refused when the view is created, even over an empty table
SELECT pxt.create_view('ml.f0', 'ml.videos', 'pxt.frame_iterator(video, fps => 0)');
SELECT pxt.create_view('ml.f0', 'ml.videos', 'pxt.frame_iterator(video, fps => 1, num_frames => 2)');
SELECT pxt.create_view('ml.f0', 'ml.videos', 'pxt.frame_iterator(video, num_frames => -1)');
SELECT to_regclass('ml.f0');
-- the base stays usable
INSERT INTO ml.videos (video) VALUES (NULL);
-- if_exists: error (the default), ignore, replace
SELECT pxt.create_view('ml.frames', 'ml.videos', 'pxt.frame_iterator(video)');
SELECT pxt.create_view('ml.frames', 'ml.videos', 'pxt.frame_iterator(video)');
SELECT pxt.create_view('ml.frames', 'ml.videos', 'pxt.frame_iterator(video)', if_exists => 'ignore');
SELECT pxt.create_view('ml.frames', 'ml.videos', 'pxt.frame_iterator(video, fps => 1)', if_exists => 'replace');
SELECT view_schema, view_name, call FROM pxt.iterator_views ORDER BY view_schema, view_name;
