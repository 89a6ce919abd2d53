-- Run once: media domain types. A media value is a reference (absolute path, file:// or
-- http(s):// URI, or media://<sha256>.<ext> in the store); the file itself is validated
-- when a row is written (see the generated row triggers), not by the domain, so that the
-- error can name the table, row and column.
CREATE DOMAIN pxt.image AS text CHECK (VALUE <> '');
CREATE DOMAIN pxt.video AS text CHECK (VALUE <> '');
CREATE DOMAIN pxt.audio AS text CHECK (VALUE <> '');
CREATE DOMAIN pxt.document AS text CHECK (VALUE <> '');
COMMENT ON DOMAIN pxt.image IS 'pixelgres image: a reference to an image file';
COMMENT ON DOMAIN pxt.video IS 'pixelgres video: a reference to a video file';
COMMENT ON DOMAIN pxt.audio IS 'pixelgres audio: a reference to an audio file';
COMMENT ON DOMAIN pxt.document IS 'pixelgres document: a reference to a PDF, HTML, Markdown or text file';
