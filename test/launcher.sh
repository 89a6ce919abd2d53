#!/bin/sh
# pg_regress --launcher for pixelgres's regression tests (tests/test_regress.py): runs psql ("$@")
# and writes the run's generated input directories ($PXT_REGRESS_FILES, $PXT_REGRESS_OUTSIDE)
# and the server's pixelgres.allowed_roots ($PXT_REGRESS_ROOTS) as @files@, @outside@ and
# @roots@ in its output, so that messages naming them compare equal wherever they are.
# (Result tables showing such values use \pset format unaligned: aligned columns would be
# padded to the real lengths.)
quote() { printf '%s' "$1" | sed 's/[]\[|.*^$]/\\&/g'; }
"$@" 2>&1 | sed -e "s|$(quote "${PXT_REGRESS_FILES:?}")|@files@|g" \
                -e "s|$(quote "${PXT_REGRESS_OUTSIDE:?}")|@outside@|g" \
                -e "s|$(quote "${PXT_REGRESS_ROOTS:?}")|@roots@|g"
