"""CSV files as numeric tensors, with errors that name the file, row, column and value at fault."""

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from seqlab.errors import DataError

# Cells read as a missing value: blank, and the markers spreadsheets, pandas and R write for one.
MISSING = ("", "NA", "N/A", "n/a", "NaN", "nan", "-nan", "null", "NULL", "None", "#N/A", "<NA>")


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

    def cells_of(self, name: str) -> np.ndarray:
        return self.cells[:, self.columns.index(name)]

    def missing(self, name: str) -> np.ndarray:
        """(rows,) bool: which of the column's cells mark a missing value (see MISSING)."""
        return np.isin(np.char.strip(self.cells_of(name)), MISSING)

    def first_value(self, name: str) -> tuple[int, str] | None:
        """The column's first value that is not missing, with its row number; None if every one is."""
        present = np.flatnonzero(~self.missing(name))
        if not len(present):
            return None
        return int(present[0]) + 2, str(self.cells_of(name)[present[0]])

    def looks_numeric(self, name: str) -> bool:
        """Whether the column's first value that is not missing is a number (a later bad value is an error,
        not a skip)."""
        first = self.first_value(name)
        if first is None:
            return False
        try:
            float(first[1])
            return True
        except ValueError:
            return False

    def values(self, names: list[str]) -> np.ndarray:
        """The named columns as float64 (rows, len(names)), NaN where a cell is missing; a cell that is
        neither a number nor missing (text, inf) is an error naming it."""
        picked = self.cells[:, [self.columns.index(n) for n in names]]
        missing = np.isin(np.char.strip(picked), MISSING)
        filled = np.where(missing, "nan", picked)
        try:
            values = filled.astype(np.float64)
        except ValueError:
            raise self._first_non_numeric(filled, names) from None
        bad = np.isinf(values)  # a NaN in any spelling is missing; an infinity is no measurement
        if bad.any():
            raise self._first_non_numeric(picked, names, np.argwhere(bad)[0])
        return values

    def numeric(self, names: list[str]) -> torch.Tensor:
        """The named columns as a float32 (rows, len(names)) tensor; a missing value or non-number is an
        error."""
        values = self.values(names)
        gaps = np.isnan(values)
        if gaps.any():
            raise DataError(
                f"{self.path} has {describe_missing(gaps, names)}. Every value of the columns used must be a "
                "finite number; fix the file or leave those columns out."
            )
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
            f"row 1), column {names[j]!r}. Every value of the columns used must be a finite number or mark a "
            f"missing value (blank, {', '.join(repr(m) for m in MISSING if m)}); fix the file or leave that "
            "column out."
        )


def describe_missing(
    gaps: np.ndarray, names: list[str], rows: np.ndarray | None = None, shown: int = 5
) -> str:
    """E.g. "3 missing values: 2 in 'load' (rows 7, 9), 1 in 'temp' (row 42)" for a (rows, columns) mask;
    `rows` gives each mask row's row number in the file (default: the header is row 1)."""
    rows = np.arange(gaps.shape[0]) + 2 if rows is None else rows
    parts = []
    for j, name in enumerate(names):
        at = rows[np.flatnonzero(gaps[:, j])]
        if len(at):
            listed = ", ".join(str(r) for r in at[:shown]) + (", ..." if len(at) > shown else "")
            parts.append(f"{len(at)} in {name!r} ({'row' if len(at) == 1 else 'rows'} {listed})")
    total = int(gaps.sum())
    return f"{total} missing value{'' if total == 1 else 's'}: {', '.join(parts)}"


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
