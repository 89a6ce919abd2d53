-- Run once (0.2.0). Object storage: a computed media column may put what it produces in a
-- bucket (destination, a normalised URI prefix ending in '/'), and a media input column may
-- leave its check to the first read (media_validation 'on_read', for very large remote files).
ALTER TABLE pxt.column_defs ADD COLUMN destination text,
    ADD COLUMN media_validation text NOT NULL DEFAULT 'on_write'
        CHECK (media_validation IN ('on_write', 'on_read'));
