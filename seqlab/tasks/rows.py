"""The rows of a table as time steps: read a time column, put the rows in time order, fill or drop gaps.

Row numbers in messages are the file's, counting the header as row 1, whatever order the rows end up in.
"""

from datetime import datetime
from pathlib import Path

import numpy as np

from seqlab.errors import DataError
from seqlab.tasks.table import describe_missing

MISSING_POLICIES = {
    "refuse": "stop and say where values are missing",
    "drop": "leave out every row with a missing value in a column used",
    "ffill": "repeat the last value before each gap",
    "interpolate": "draw a straight line across each gap (in time, or in rows without a time column)",
}
TIME_FORMATS = "ISO 8601 dates or date-times (2024-01-31, 2024-01-31 13:00, 2024-01-31T13:00:00+01:00)"


def looks_like_time(value: str) -> bool:
    """A date or date-time, not a plain number: a hint that a column orders the rows."""
    try:
        float(value)
        return False
    except ValueError:
        pass
    try:
        datetime.fromisoformat(value.strip())
        return True
    except ValueError:
        return False


def parse_times(cells: np.ndarray, column: str, path: Path) -> np.ndarray:
    """The column as float64 sort keys: its numbers, or its ISO dates as seconds; a value that is neither
    is an error naming its row and value."""
    key = f"task.time_column={column!r}"
    try:
        return np.array([float(c) for c in cells], dtype=np.float64)
    except ValueError:
        pass
    epoch = datetime(1970, 1, 1)
    keys, offsets = np.empty(len(cells)), np.zeros(len(cells), dtype=bool)
    for i, cell in enumerate(cells):
        try:
            moment = datetime.fromisoformat(str(cell).strip())
        except ValueError:
            what = "is blank" if not str(cell).strip() else f"{str(cell)!r} is not a time"
            raise DataError(
                f"{key}: row {i + 2} of {path} {what}. Every row needs a time: {TIME_FORMATS}, or numbers "
                "(a step or a Unix time) in every row; fix the file, or set task.time_column=null to take "
                "the rows in file order."
            ) from None
        offsets[i] = moment.tzinfo is not None
        keys[i] = moment.timestamp() if offsets[i] else (moment - epoch).total_seconds()
    if offsets.any() and not offsets.all():
        aware, naive = int(np.argmax(offsets)), int(np.argmin(offsets))
        raise DataError(
            f"{key} in {path} mixes times with a UTC offset (row {aware + 2}: {str(cells[aware])!r}) and "
            f"without one (row {naive + 2}: {str(cells[naive])!r}), which cannot be put in order; give every "
            "time with an offset, or none."
        )
    return keys


def time_order(
    keys: np.ndarray, cells: np.ndarray, column: str, path: Path, sort: bool
) -> tuple[np.ndarray, str]:
    """The row order that puts `keys` in increasing time, and a sentence for the log.

    Duplicate times are refused: two rows at one time step make a window see the same step twice. Rows
    out of order are sorted, or refused with task.sort_by_time=false.
    """
    key = f"task.time_column={column!r}"
    order = np.argsort(keys, kind="stable")
    same = np.flatnonzero(np.diff(keys[order]) == 0)
    if len(same):
        a, b = sorted((int(order[same[0]]), int(order[same[0] + 1])))
        raise DataError(
            f"{key}: rows {a + 2} and {b + 2} of {path} have the same time {str(cells[a])!r} "
            f"({len(same)} row{'s' if len(same) > 1 else ''} repeat an earlier time). Each row must be one "
            "time step: aggregate or remove the duplicates."
        )
    back = np.flatnonzero(np.diff(keys) < 0)
    if not len(back):
        return order, f"rows in time order ({column})"
    i = int(back[0])
    step = f"row {i + 3} ({str(cells[i + 1])!r}) comes after row {i + 2} ({str(cells[i])!r}) but is earlier"
    if not sort:
        raise DataError(
            f"{key}: the rows of {path} are not in time order: {step}. In file order, windows and splits "
            "would mix past and future; sort the file, or set task.sort_by_time=true."
        )
    how = "newest first" if len(back) == len(keys) - 1 else f"not in time order: {step}"
    return order, f"rows sorted by {column} (the file lists them {how})"


def handle_missing(
    values: np.ndarray, names: list[str], rows: np.ndarray, positions: np.ndarray, how: str, path: Path
) -> tuple[np.ndarray, np.ndarray, str]:
    """Apply task.missing to the NaNs of `values` (rows, columns); returns the values, their file row
    numbers (dropping removes some) and a sentence for the log. `positions` place the rows in time for
    interpolation."""
    gaps = np.isnan(values)
    if not gaps.any():
        return values, rows, "no missing values"
    found = describe_missing(gaps, names, rows)
    if how == "refuse":
        choices = "; ".join(f"{k} ({v})" for k, v in MISSING_POLICIES.items() if k != "refuse")
        raise DataError(
            f"{path} has {found}. task.missing=refuse (the default) stops here; choose task.missing=drop, "
            f"ffill or interpolate: {choices}."
        )
    if how == "drop":
        keep = ~gaps.any(axis=1)
        return values[keep], rows[keep], f"dropped {int((~keep).sum())} rows with {found}"
    filled = values.copy()
    for j, name in enumerate(names):
        known = np.flatnonzero(~gaps[:, j])
        if not len(known):
            raise DataError(
                f"task.missing={how} cannot fill column {name!r} of {path}: every value is missing."
            )
        first, last = int(known[0]), int(known[-1])
        unfillable = first > 0 if how == "ffill" else (first > 0 or last < len(values) - 1)
        if unfillable:
            edge = "start" if first > 0 else "end"
            at = rows[0] if first > 0 else rows[-1]
            raise DataError(
                f"task.missing={how} cannot fill the missing values at the {edge} of column {name!r} (from "
                f"row {at} of {path}): there is no value {'before' if edge == 'start' else 'after'} them to "
                "fill from. Use task.missing=drop, or fix the file."
            )
        if how == "ffill":  # each row takes the last known row at or before it
            last_known = np.maximum.accumulate(np.where(gaps[:, j], 0, np.arange(len(values))))
            filled[:, j] = values[last_known, j]
        else:
            missing = np.flatnonzero(gaps[:, j])
            filled[missing, j] = np.interp(positions[missing], positions[known], values[known, j])
    return filled, rows, f"filled ({how}) {found}"
