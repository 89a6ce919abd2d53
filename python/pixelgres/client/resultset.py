"""``ResultSet``: the rows of a query, with column names and types.

Iterating yields one dict per row (Pixeltable's shape); ``rs['col']`` is a column as a list,
``rs[i]`` a row. Media values stay references (paths, URLs, ``media://``); the notebook HTML
(display.py) shows them inline: thumbnails, poster frames, players.
"""
from __future__ import annotations


class ResultSet:
    def __init__(self, columns: list[str], types: list, rows: list[tuple], session=None):
        self.columns, self.types, self.rows, self._session = columns, types, rows, session

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self):
        for r in self.rows:
            yield dict(zip(self.columns, r))

    def __getitem__(self, key):
        if isinstance(key, str):
            try:
                i = self.columns.index(key)
            except ValueError:
                raise KeyError(key) from None
            return [r[i] for r in self.rows]
        if isinstance(key, int):
            return dict(zip(self.columns, self.rows[key]))
        if isinstance(key, tuple) and len(key) == 2:
            row, col = key
            return self.rows[row][self.columns.index(col) if isinstance(col, str) else col]
        raise TypeError(f"index a ResultSet with a column name, a row number or (row, column), not {key!r}")

    def __eq__(self, other) -> bool:
        return isinstance(other, ResultSet) and other.columns == self.columns and other.rows == self.rows

    __hash__ = None

    def to_pandas(self):
        import pandas as pd

        return pd.DataFrame.from_records(self.rows, columns=self.columns)

    def __repr__(self) -> str:
        head = " | ".join(self.columns)
        lines = [head, "-" * len(head)]
        for r in self.rows[:20]:
            lines.append(" | ".join(_short(v) for v in r))
        if len(self.rows) > 20:
            lines.append(f"... ({len(self.rows)} rows)")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        from .display import rows_html

        return rows_html(self.columns, self.types, self.rows, self._session)


def _short(v, n: int = 60) -> str:
    s = "NULL" if v is None else str(v)
    return s if len(s) <= n else s[: n - 1] + "…"
