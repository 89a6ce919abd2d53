-- Iterators (set-returning functions usable on their own) and iterator views kept in step
-- with their base tables (logic in pixelgres.server.media: video, documents, audio; pixelgres.server.iterators.views).

-- video ---------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION pxt.frame_iterator(video pxt.video, fps double precision DEFAULT NULL,
    num_frames integer DEFAULT NULL, keyframes_only boolean DEFAULT false, virtual boolean DEFAULT false,
    format text DEFAULT 'jpeg', quality integer DEFAULT 90)
RETURNS TABLE (pos integer, frame_idx integer, pos_msec double precision, pts bigint, key_frame boolean, frame pxt.image)
LANGUAGE plpython3u AS $py$
#@pxt
from pixelgres.server.iterators import views as _it
from pixelgres.server.media import video as _video
try:  # the arguments first: a view over an empty table must refuse them at creation too
    _video.check_args(fps, num_frames, keyframes_only or False)
except ValueError as e:
    plpy.error(str(e), sqlstate="22023")
if video is None:
    return []
return _it.rows(_video.frames, video, fps, num_frames, keyframes_only or False, virtual or False, format, quality)
$py$;
COMMENT ON FUNCTION pxt.frame_iterator(pxt.video, double precision, integer, boolean, boolean, text, integer) IS
  'Frames of a video: all, or fps => frames per second, num_frames => n evenly spaced, keyframes_only => true (at most one). '
  'Frames go to the media store as JPEG (format => ''png'' for lossless) or, with virtual => true, stay references decoded on read';

CREATE OR REPLACE FUNCTION pxt.extract_frame(video pxt.video, frame_idx integer, format text DEFAULT 'jpeg',
    quality integer DEFAULT 90) RETURNS pxt.image
LANGUAGE plpython3u STRICT AS $py$
#@pxt
from pixelgres.server.media import video as _video
try:
    return srv.guard(_video.extract, video, frame_idx, format, quality)
except ValueError as e:
    plpy.error(str(e), sqlstate="22023")
$py$;
COMMENT ON FUNCTION pxt.extract_frame(pxt.video, integer, text, integer) IS
  'Frame frame_idx (0-based, presentation order) of a video, decoded from the keyframe before it, as an image in the media store';

CREATE OR REPLACE FUNCTION pxt.materialize_frame(frame pxt.image, format text DEFAULT 'png', quality integer DEFAULT 90)
RETURNS pxt.image LANGUAGE plpython3u AS $py$
#@pxt
from pixelgres.server.media import video as _video
if frame is None:
    return None
try:
    return srv.guard(_video.materialize, frame, format, quality)
except ValueError as e:
    plpy.error(str(e), sqlstate="22023")
$py$;
COMMENT ON FUNCTION pxt.materialize_frame(pxt.image, text, integer) IS
  'A virtual frame (pxt-frame:...) decoded into an image in the media store; other images are returned as they are';

CREATE OR REPLACE FUNCTION pxt.video_info(video pxt.video) RETURNS jsonb
LANGUAGE plpython3u STRICT AS $py$
#@pxt
import json
from pixelgres.server.media import video as _video
return json.dumps(srv.guard(_video.info, video))
$py$;
COMMENT ON FUNCTION pxt.video_info(pxt.video) IS 'Width, height, fps, frame count, duration and codec of a video''s first video stream';

-- documents and strings ----------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION pxt.document_splitter(document pxt.document, separators text DEFAULT 'paragraph',
    "limit" integer DEFAULT NULL, overlap integer DEFAULT 0, metadata text DEFAULT 'title,heading,page')
RETURNS TABLE (pos integer, text text, title text, heading jsonb, page integer)
LANGUAGE plpython3u AS $py$
#@pxt
from pixelgres.server.iterators import views as _it
from pixelgres.server.media import documents as _doc
if document is None:
    return []
return _it.rows(_doc.document_splitter, document, separators, limit, overlap, metadata)
$py$;
COMMENT ON FUNCTION pxt.document_splitter(pxt.document, text, integer, integer, text) IS
  'Chunks of a PDF, HTML, Markdown or text document. separators: any of heading, paragraph, sentence, page, '
  'token_limit, char_limit (the last two with "limit" => n and overlap => m); metadata: any of title, heading, page';

CREATE OR REPLACE FUNCTION pxt.string_splitter(string text, separators text DEFAULT 'sentence')
RETURNS TABLE (pos integer, text text)
LANGUAGE plpython3u AS $py$
#@pxt
from pixelgres.server.iterators import views as _it
from pixelgres.server.media import documents as _doc
if string is None:
    return []
return _it.rows(_doc.string_splitter, string, separators)
$py$;
COMMENT ON FUNCTION pxt.string_splitter(text, text) IS 'A string split into sentences (separators => ''sentence''), paragraphs or lines';

-- audio ------------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION pxt.audio_splitter(audio pxt.audio, duration double precision,
    overlap double precision DEFAULT 0, min_duration double precision DEFAULT 0, format text DEFAULT 'flac')
RETURNS TABLE (pos integer, start_time_sec double precision, end_time_sec double precision, segment pxt.audio)
LANGUAGE plpython3u AS $py$
#@pxt
from pixelgres.server.iterators import views as _it
from pixelgres.server.media import audio as _audio
if audio is None:
    return []
return _it.rows(_audio.segments, audio, duration, overlap, min_duration, format)
$py$;
COMMENT ON FUNCTION pxt.audio_splitter(pxt.audio, double precision, double precision, double precision, text) IS
  'Segments of duration seconds (overlapping by overlap seconds) of an audio file, stored as FLAC (or wav, mp3)';

-- views ------------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION pxt.create_view(name text, base text, iterator text, if_exists text DEFAULT 'error',
    comment text DEFAULT NULL) RETURNS regclass
LANGUAGE plpython3u AS $py$
#@pxt
from pixelgres.server.iterators import views as _it
return _it.create_view(name, base, iterator, if_exists, comment)
$py$;
COMMENT ON FUNCTION pxt.create_view(text, text, text, text, text) IS
  'Create an iterator view: iterator is the call of a set-returning function over the base''s columns, as text, '
  'e.g. ''pxt.frame_iterator(video, fps => 1)''. Rows are stored in <name>_rows; <name> joins them to the base row';

CREATE OR REPLACE FUNCTION pxt.drop_view(name text) RETURNS void
LANGUAGE plpython3u AS $py$
#@pxt
from pixelgres.server.iterators import views as _it
_it.drop_view(name)
$py$;

CREATE OR REPLACE FUNCTION pxt.refresh_view(name text) RETURNS void
LANGUAGE plpython3u AS $py$
#@pxt
from pixelgres.server.iterators import views as _it
s = srv.catalog.iterator_storage(name)
if s is None:
    plpy.error(f"{name!r} is not an iterator view")
_it.sync(s)
$py$;
COMMENT ON FUNCTION pxt.refresh_view(text) IS 'Rebuild an iterator view''s joined relation and maintenance triggers (they follow DDL by themselves)';

CREATE OR REPLACE FUNCTION pxt.views()
RETURNS TABLE (name text, storage regclass, base regclass, iterator text, rows bigint)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE r record;
BEGIN
    FOR r IN SELECT v.* FROM pxt.iterator_views v ORDER BY v.view_schema, v.view_name LOOP
        name := format('%I.%I', r.view_schema, r.view_name);
        storage := r.storage; base := r.base; iterator := r.call;
        EXECUTE format('SELECT count(*) FROM ONLY %s', r.storage) INTO rows;
        RETURN NEXT;
    END LOOP;
END $$;
COMMENT ON FUNCTION pxt.views() IS 'Iterator views: their storage table, base table, iterator and row count';

-- keeping views in step with DDL ---------------------------------------------------------------------
CREATE OR REPLACE FUNCTION pxt._iter_sync(ids oid[]) RETURNS void LANGUAGE plpython3u AS $py$
#@pxt
from pixelgres.server.iterators import views as _it
_it.on_ddl(list(ids or []))
$py$;

CREATE OR REPLACE FUNCTION pxt._iter_dropped(ids oid[], tag text) RETURNS void LANGUAGE plpython3u AS $py$
#@pxt
from pixelgres.server.iterators import views as _it
_it.on_drop(list(ids or []), tag)
$py$;

-- Both return at once when no iterator view is concerned; a role that may not read the
-- catalog owns no iterator view, so its DDL is none of their business either.
CREATE OR REPLACE FUNCTION pxt._iter_on_ddl() RETURNS event_trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE ids oid[];
BEGIN
    SELECT array_agg(DISTINCT objid) INTO ids FROM pg_event_trigger_ddl_commands() WHERE objid IS NOT NULL;
    BEGIN
        IF ids IS NULL OR NOT EXISTS (SELECT 1 FROM pxt.iterator_views v WHERE v.storage::oid = ANY(ids)
                                      OR v.base::oid = ANY(ids) OR v.view_rel::oid = ANY(ids)) THEN
            RETURN;
        END IF;
    EXCEPTION WHEN insufficient_privilege THEN RETURN;
    END;
    PERFORM pxt._iter_sync(ids);
END $$;

CREATE OR REPLACE FUNCTION pxt._iter_on_drop() RETURNS event_trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE ids oid[];
BEGIN
    SELECT array_agg(objid) INTO ids FROM pg_event_trigger_dropped_objects() WHERE object_type IN ('table', 'view');
    BEGIN
        IF ids IS NULL OR NOT EXISTS (SELECT 1 FROM pxt.iterator_views v WHERE v.storage::oid = ANY(ids)
                OR v.base::oid = ANY(ids) OR v.view_rel::oid = ANY(ids) OR v.iter_view::oid = ANY(ids)) THEN
            RETURN;
        END IF;
    EXCEPTION WHEN insufficient_privilege THEN RETURN;
    END;
    PERFORM pxt._iter_dropped(ids, TG_TAG);
END $$;

-- privileges (roles come from a later migration; granted when they exist)
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pxt_reader') THEN
        GRANT SELECT ON pxt.iterator_views TO pxt_reader;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pxt_user') THEN
        GRANT INSERT, UPDATE, DELETE ON pxt.iterator_views TO pxt_user;
    END IF;
END $$;
