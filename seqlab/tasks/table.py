"""CSV files as numeric tensors, with errors that name the file, row, column and value at fault."""

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from seqlab.errors import DataError


@dataclass
class Table:
    """A CSV file's header and its cells as strings; row numbers below count the header as row 1."""

    path: Path
    columns: list[str]
    cells: np.ndarray  # (rows, columns) of str

    def __len__(self) -> int:
        return self.cells.shape[0]

    def column_index(self, name: str, key: str) -> int:
        if name not in self.columns:
            raise DataError(
                f"{key}={name!r} is not a column of {self.path}. Its columns are: {', '.join(self.columns)}."
            )
        return self.columns.index(name)

    def looks_numeric(self, name: str) -> bool:
        """Whether the column's first value is a number (a later bad value is an error, not a skip)."""
        try:
            float(self.cells[0, self.columns.index(name)])
            return True
        except ValueError:
            return False

    def numeric(self, names: list[str]) -> torch.Tensor:
        """The named columns as a float32 (rows, len(names)) tensor; the first non-number is an error."""
        picked = self.cells[:, [self.columns.index(n) for n in names]]
        try:
            values = picked.astype(np.float64)
        except ValueError:
            raise self._first_non_numeric(picked, names) from None
        bad = ~np.isfinite(values)
        if bad.any():
            raise self._first_non_numeric(picked, names, np.argwhere(bad)[0])
        return torch.from_numpy(values.astype(np.float32))

    def _first_non_numeric(
        self, picked: np.ndarray, names: list[str], at: np.ndarray | None = None
    ) -> DataError:
        if at is None:
            for j in range(len(names)):  # per column, then per cell only in the failing column
                try:
                    picked[:, j].astype(np.float64)
                except ValueError:
                    for i, cell in enumerate(picked[:, j]):
                        try:
                            float(cell)
                        except ValueError:
                            at = np.array([i, j])
                            break
                    break
        assert at is not None  # called only after a conversion failed, so some cell is not a number
        i, j = int(at[0]), int(at[1])
        return DataError(
            f"Non-numeric value {str(picked[i, j])!r} in {self.path} at row {i + 2} (counting the header as "
            f"row 1), column {names[j]!r}. Every value of the columns used must be a finite number; fix the "
            "file or leave that column out."
        )


def read_table(path: Path, key: str = "path") -> Table:
    """Read a CSV with a header row; a missing, empty or ragged file is refused naming the path."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{key}={str(path)!r}: no such file. Give the path of an existing CSV file.")
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = [row for row in csv.reader(f) if row]
    if not rows:
        raise DataError(f"{key}={str(path)!r} is empty: a CSV with a header row and data rows is needed.")
    header, body = [c.strip() for c in rows[0]], rows[1:]
    if not body:
        raise DataError(f"{key}={str(path)!r} has a header ({', '.join(header)}) but no data rows.")
    for i, row in enumerate(body):
        if len(row) != len(header):
            raise DataError(
                f"{path} row {i + 2} has {len(row)} fields but the header has {len(header)} "
                f"({', '.join(header)}); every row must have one value per column."
            )
    return Table(path, header, np.array(body, dtype=str))
