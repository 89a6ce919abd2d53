"""Pure SQL generation: inputs in, SQL text out, no database access (issue #15).

``compose`` has the building blocks (psycopg.sql-style ``SQL``, ``Identifier``, ``Literal``,
``Composed``); the other modules generate the statements of one part of the server. Nothing
here imports plpy, so tests/test_sqlgen.py runs without a database. This package imports
nothing: import its modules.
"""
