-- The plpgsql bodies of an iterator view's maintenance functions (server/iterators/views.py
-- explains iterator views; sqlgen/iterators.py generates the statements that create them).
--
-- Read by sqlgen.compose.template("iterator_view"): each section runs from its
-- "-- pxt-template: <section>" line to the next. Its {name} placeholders are filled by
-- sqlgen/iterators.py through SQL.format, with Identifier, Literal and SQL parts only (never
-- text); {{ and }} would be braces. The body is then passed to CREATE FUNCTION as one string
-- literal. This file lives inside the Python package because the server reads only its
-- installed package directory (make install copies python/pixelgres/ whole).
--
-- Placeholders:
--   {storage}    the view's storage table (Identifier)
--   {base}       its base table (Identifier)
--   {iter_view}  the iterator over the base, pxt_internal."iter_<storage oid>" (Identifier)
--   {expand}     the expand function, pxt_internal."view_expand_<storage oid>" (Identifier)
--   {writing}    the storage's oid as text: the value of pxt_iter.writing while the functions
--                write the storage, which the guard lets through (Literal)
--   {trusted}    the same, or '' when the iterator is not pixelgres's own: the value of
--                pxt_iter.trusted while rows are written (media need no validation) (Literal)
--   {columns}    ", <column>" for each iterator column the storage holds, or nothing (SQL)
--   {values}     ", v.<column>" for the same columns (SQL)
--   {row_text}   an expression describing base row b: its _pxt_rowid and the columns the
--                iterator reads, for the error message (SQL)
--   {what}       "view <view>: <call>", for the error message (Literal)
--   {base_name}  the base's name, for messages (Literal)
--   {changed}    true when an updated base row's iterated columns changed: o is its old
--                version, b the new one (SQL; false when the iterator reads no column)
--   {store_name} the storage's name, for messages (Literal)
--   {message}    why the storage cannot be written directly (Literal)
--   {moved}      true when an update changes a column the iterator wrote (SQL)
--
-- Sections: expand is view_expand_<storage>(pxt_ids bigint[]), which (re)expands base rows
-- into the storage; trigger is view_<storage>(), the base's statement triggers; guard is
-- view_guard_<storage>(), the storage's triggers refusing writes from anywhere else. A
-- section holds the body only, comments included, so plpgsql's line numbers in error
-- contexts count from its first line (sqlgen/iterators.py puts an empty line 1 before it).

-- pxt-template: expand
DECLARE
  pxt_n bigint;
  pxt_id bigint;
  pxt_row text;
  pxt_prev text := current_setting('pxt_iter.writing', true);
BEGIN
  IF pxt_ids IS NULL OR cardinality(pxt_ids) = 0 THEN RETURN 0; END IF;
  PERFORM set_config('pxt_iter.writing', {writing}, true);
  PERFORM set_config('pxt_iter.trusted', {trusted}, true);
  DELETE FROM ONLY {storage} WHERE _pxt_base_rowid = ANY(pxt_ids);
  BEGIN
    INSERT INTO {storage} (_pxt_base_rowid{columns})
      SELECT v._pxt_base_rowid{values} FROM {iter_view} v WHERE v._pxt_base_rowid = ANY(pxt_ids);
    GET DIAGNOSTICS pxt_n = ROW_COUNT;
    PERFORM set_config('pxt_iter.writing', coalesce(pxt_prev, ''), true);
    PERFORM set_config('pxt_iter.trusted', '', true);
    RETURN pxt_n;
  EXCEPTION WHEN OTHERS THEN
    PERFORM set_config('pxt_iter.writing', coalesce(pxt_prev, ''), true);
    PERFORM set_config('pxt_iter.trusted', '', true);
    -- name the base row whose expansion failed: with one row it is that one, with several
    -- find it by running the iterator alone over each (errors of the view's own computed
    -- columns already name their row and are re-raised as they are)
    IF cardinality(pxt_ids) = 1 THEN
      pxt_id := pxt_ids[1];
    ELSIF SQLERRM NOT LIKE 'computed column %' THEN
      FOREACH pxt_id IN ARRAY pxt_ids LOOP
        BEGIN
          PERFORM count(*) FROM {iter_view} v WHERE v._pxt_base_rowid = pxt_id;
          pxt_id := NULL;
        EXCEPTION WHEN OTHERS THEN
          EXIT;
        END;
      END LOOP;
    END IF;
    IF pxt_id IS NULL OR SQLERRM LIKE 'computed column %' THEN RAISE; END IF;
    SELECT {row_text} INTO pxt_row FROM ONLY {base} b WHERE b._pxt_rowid = pxt_id;
    RAISE EXCEPTION USING ERRCODE = SQLSTATE,
      MESSAGE = format('%s failed for row (%s) of %s: %s', {what}, pxt_row, {base_name}, pxt._clean_error(SQLERRM)),
      HINT = 'fix or delete that row of the base table; the whole statement was rolled back';
  END;
END

-- pxt-template: trigger
DECLARE
  pxt_ids bigint[];
  pxt_prev text;
BEGIN
  IF current_setting('pixelgres.replaying', true) = 'on' THEN RETURN NULL; END IF;
  IF TG_OP = 'INSERT' THEN
    SELECT array_agg(n._pxt_rowid ORDER BY n._pxt_rowid) INTO pxt_ids FROM pxt_new n;
  ELSIF TG_OP = 'UPDATE' THEN
    SELECT array_agg(o._pxt_rowid ORDER BY o._pxt_rowid) INTO pxt_ids
      FROM pxt_old o JOIN ONLY {base} b ON b._pxt_rowid = o._pxt_rowid WHERE {changed};
  ELSE
    pxt_prev := current_setting('pxt_iter.writing', true);
    PERFORM set_config('pxt_iter.writing', {writing}, true);
    IF TG_OP = 'DELETE' THEN
      DELETE FROM ONLY {storage} s USING pxt_old o WHERE s._pxt_base_rowid = o._pxt_rowid;
    ELSE
      DELETE FROM ONLY {storage};
    END IF;
    PERFORM set_config('pxt_iter.writing', coalesce(pxt_prev, ''), true);
    RETURN NULL;
  END IF;
  PERFORM {expand}(pxt_ids);
  RETURN NULL;
END

-- pxt-template: guard
BEGIN
  IF current_setting('pxt_iter.writing', true) = {writing}
     OR current_setting('pixelgres.replaying', true) = 'on' THEN
    RETURN CASE WHEN TG_LEVEL = 'ROW' THEN NEW END;
  END IF;
  IF TG_LEVEL = 'STATEMENT' THEN
    RAISE EXCEPTION USING ERRCODE = '42809', MESSAGE = format('cannot %s %s: %s', lower(TG_OP), {store_name}, {message});
  END IF;
  IF {moved} THEN
    RAISE EXCEPTION USING ERRCODE = '42809', MESSAGE = format('cannot update the iterator columns of %s: %s', {store_name}, {message}),
      HINT = 'computed columns and columns you added can be updated';
  END IF;
  RETURN NEW;
END
