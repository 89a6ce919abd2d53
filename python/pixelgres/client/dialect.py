"""A sqlglot Postgres dialect that knows pgvector's distance operators.

Stock sqlglot 30 reads ``<=>`` as MySQL's null-safe equality (and writes it back as
``IS NOT DISTINCT FROM``) and splits ``<#>`` into ``<`` and ``#>``. pgvector gives them other
meanings: ``<=>`` cosine distance, ``<#>`` negative inner product, ``<->`` L2 distance
(sqlglot's ``Distance``). This dialect tokenizes all three, parses them at the precedence
sqlglot already gives ``<->`` and generates them back unchanged, so every SQL text the client
sends is produced from an AST by this dialect.

``TokenType`` is a closed enum, so ``<#>`` borrows a token type Postgres never produces
(``NCOLON_GT``, SingleStore's ``!:>``).
"""
from __future__ import annotations

import sqlglot
from sqlglot import exp
from sqlglot.dialects.postgres import Postgres
from sqlglot.generators.postgres import PostgresGenerator
from sqlglot.parsers.postgres import PostgresParser
from sqlglot.tokens import TokenType

_NEG_IP_TOKEN = TokenType.NCOLON_GT


class CosineDistance(exp.Expression, exp.Binary):
    """pgvector ``a <=> b``: cosine distance (0 = same direction)."""


class NegInnerProduct(exp.Expression, exp.Binary):
    """pgvector ``a <#> b``: negative inner product (smaller = more similar)."""


L2Distance = exp.Distance  # pgvector ``a <-> b``; sqlglot already has it

OPERATORS = {"cosine": CosineDistance, "ip": NegInnerProduct, "l2": L2Distance}


class PixelgresParser(PostgresParser):
    EQUALITY = {k: v for k, v in PostgresParser.EQUALITY.items() if k != TokenType.NULLSAFE_EQ}
    FACTOR = {
        **PostgresParser.FACTOR,
        TokenType.NULLSAFE_EQ: CosineDistance,
        _NEG_IP_TOKEN: NegInnerProduct,
    }


class PixelgresGenerator(PostgresGenerator):
    TRANSFORMS = {
        **PostgresGenerator.TRANSFORMS,
        CosineDistance: lambda self, e: self.binary(e, "<=>"),
        NegInnerProduct: lambda self, e: self.binary(e, "<#>"),
    }


class Pixelgres(Postgres):
    class Tokenizer(Postgres.Tokenizer):
        KEYWORDS = {**Postgres.Tokenizer.KEYWORDS, "<=>": TokenType.NULLSAFE_EQ, "<#>": _NEG_IP_TOKEN}

    Parser = PixelgresParser
    Generator = PixelgresGenerator


DIALECT = Pixelgres()


def to_sql(node: exp.Expr) -> str:
    """Generate SQL text for ``node``: every identifier quoted, pgvector operators intact,
    function names as given (sqlglot's default upper-cases them, even quoted ones in FROM)."""
    return DIALECT.generate(node, identify=True, normalize_functions=False)


def parse(sql: str) -> exp.Expr:
    return sqlglot.parse_one(sql, read=DIALECT)
