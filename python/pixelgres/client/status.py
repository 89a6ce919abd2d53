"""What a write did: Pixeltable's ``UpdateStatus``, returned by insert, update, delete and DDL."""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class UpdateStatus:
    """What an insert/update/delete/add_computed_column did (Pixeltable's ``UpdateStatus``)."""

    num_rows: int = 0
    num_excs: int = 0
    updated_cols: list = dataclasses.field(default_factory=list)
    cols_with_excs: list = dataclasses.field(default_factory=list)
    errors_by_column: dict = dataclasses.field(default_factory=dict)
    uploaded_files: int = 0
    verb: str = "Updated"

    def __str__(self) -> str:
        s = f"{self.verb} {self.num_rows} row{'s' if self.num_rows != 1 else ''} with {self.num_excs} error" \
            f"{'s' if self.num_excs != 1 else ''}"
        if self.cols_with_excs:
            s += " (" + ", ".join(f"{c}: {self.errors_by_column.get(c, '?')}" for c in self.cols_with_excs) + ")"
        if self.uploaded_files:
            s += f"; uploaded {self.uploaded_files} file{'s' if self.uploaded_files != 1 else ''}"
        return s + "."


