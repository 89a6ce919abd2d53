-- Run once (0.2.0). add_computed_column gained destination => (0025): the old signatures go, so
-- a call with fewer arguments cannot be ambiguous; the function files create the new ones.
DROP FUNCTION IF EXISTS pxt.add_computed_column(text, text, text, text, text, text);
DROP FUNCTION IF EXISTS pxt._add_computed_column(text, text, text, text, text, text);
