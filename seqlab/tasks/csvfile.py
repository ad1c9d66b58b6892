"""The user's series: any CSV file, forecast one column from the last `window` rows."""

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seqlab.checks import at_least, season_length
from seqlab.errors import ConfigError, DataError
from seqlab.spec import TaskKind, TaskSpec
from seqlab.tasks.base import Task, check_split_fractions
from seqlab.tasks.rows import MISSING_POLICIES, handle_missing, looks_like_time, parse_times, time_order
from seqlab.tasks.table import Table, read_table
from seqlab.tasks.windows import Scaler, Scaling, forecast_splits, zscore

log = logging.getLogger(__name__)

# Params the run logs beside the config: what the model saw of the file, and what it did not.
INPUT_COLUMNS, LEFT_OUT, N_MISSING = "data.input_columns", "data.left_out", "data.n_missing"
PARAM_LIMIT = 6000  # MLflow's longest param value


class CsvTask(Task):
    """Rows are time steps: in the order of `time_column` where one is given (sorted unless
    `sort_by_time` is false; duplicate times are refused), else in file order. The split is chronological
    (train, then val, then test).

    Inputs are `columns` (default: every numeric column but the time column), the target is `target`;
    every column is z-scored with the training rows' statistics, and the scaler is kept (`scaling`) so that
    metrics and the served model are in the data's units too. Every column not used is named in the log
    and the run's params with the reason. Missing values are refused, dropped or filled (`missing`).
    Validation and test windows may start in the previous split's rows, so that their first target is
    their split's first row.
    """

    name = "csv"
    kind = TaskKind.REGRESSION

    def __init__(
        self,
        path: str | None = None,
        target: str | None = None,
        columns: list[str] | None = None,
        time_column: str | None = None,
        sort_by_time: bool = True,
        missing: str = "refuse",
        window: int = 24,
        horizon: int = 1,
        season: int | None = None,
        val_fraction: float = 0.1,
        test_fraction: float = 0.2,
        batch_size: int = 64,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size=batch_size, seed=seed)
        # Absolute from the start: the run logs it, and a rerun from another folder must find the same file
        self.path = Path(os.path.abspath(Path(path).expanduser())) if path else None
        self.target, self.columns, self.time_column = target, list(columns) if columns else None, time_column
        self.sort_by_time, self.missing = sort_by_time, missing
        self.window, self.horizon, self.season = window, horizon, season
        self.target_inputs: tuple[int, ...] | None = None
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self._params: dict[str, str] = {}

    @classmethod
    def check(cls, options) -> None:
        for key in ("path", "target"):
            if not options.get(key):
                raise ConfigError(
                    f"task=csv needs task.{key}: e.g. task.path=my_series.csv task.target=load."
                )
        for key in ("window", "horizon"):
            at_least(f"task.{key}", options.get(key), 1)
        season_length(options.get("season"), options.get("window"))
        check_split_fractions(options.get("val_fraction"), options.get("test_fraction"))
        time_column = options.get("time_column")
        if time_column is not None and (
            time_column == options.get("target") or time_column in (options.get("columns") or [])
        ):
            raise ConfigError(
                f"task.time_column={time_column!r} is also task.target or in task.columns: the time column "
                "orders the rows and is no input or target; choose another column for one of them."
            )
        missing = options.get("missing", "refuse")
        if missing not in MISSING_POLICIES:
            allowed = "; ".join(f"{k} ({v})" for k, v in MISSING_POLICIES.items())
            raise ConfigError(f"Invalid task.missing={missing!r}. Allowed: {allowed}.")
        sort = options.get("sort_by_time", True)
        if not isinstance(sort, bool):
            raise ConfigError(
                f"Invalid task.sort_by_time={sort!r}: true (sort the rows by task.time_column) or false "
                "(refuse a file whose rows are not in time order)."
            )

    @property
    def label(self) -> str:
        """csv-<file stem>-<target>: run names tell apart csv runs on different files and columns."""
        return f"{self.name}-{self.path.stem}-{self.target}" if self.path and self.target else self.name

    def resolved_config(self) -> dict[str, Any]:
        return {"path": str(self.path)} if self.path else {}

    def extra_params(self) -> dict[str, str]:
        self.prepare()
        return dict(self._params)

    def build(self):
        if self.path is None or self.target is None:
            raise ConfigError("task=csv needs task.path and task.target.")
        table = read_table(self.path, key="task.path")
        table.column_index(self.target, "task.target")
        if self.time_column is not None:
            table.column_index(self.time_column, "task.time_column")
        inputs, left_out = self._choose_columns(table, self.target)
        used = list(dict.fromkeys([*inputs, self.target]))
        values = table.values(used)  # (rows, used) float64, NaN where missing

        rows = np.arange(len(table)) + 2  # each row's number in the file (the header is row 1)
        positions = rows.astype(np.float64)
        order_note = "rows in file order (no task.time_column)"
        if self.time_column is not None:
            cells = table.cells_of(self.time_column)
            keys = parse_times(cells, self.time_column, self.path)
            order, order_note = time_order(keys, cells, self.time_column, self.path, self.sort_by_time)
            values, rows, positions = values[order], rows[order], keys[order]
        n_missing = int(np.isnan(values).sum())
        values, rows, missing_note = handle_missing(values, used, rows, positions, self.missing, self.path)
        series = torch.from_numpy(values.astype(np.float32))

        n_rows = len(values)
        n_test, n_val = int(n_rows * self.test_fraction), int(n_rows * self.val_fraction)
        train_end, val_end = n_rows - n_test - n_val, n_rows - n_test
        need = self.window + self.horizon
        if train_end < need or min(n_val, n_test) < self.horizon:
            raise DataError(
                f"{self.path} has {n_rows} rows{' left' if n_rows < len(table) else ''}: too short for "
                f"task.window={self.window} + task.horizon={self.horizon}. The training split ({train_end} "
                f"rows) needs at least {need} rows and the val/test splits ({n_val}/{n_test} rows) at least "
                f"{self.horizon} each; use a longer file, a smaller window or horizon, or other split "
                "fractions."
            )
        scaled, mean, std = zscore(series, slice(0, train_end))
        pick_in, pick_out = [used.index(c) for c in inputs], [used.index(self.target)]
        self.scaling = Scaling(
            inputs=Scaler.of(inputs, mean[pick_in], std[pick_in]),
            targets=Scaler.of([self.target], mean[pick_out], std[pick_out]),
            horizon=self.horizon,
        )
        self.n_inputs = len(inputs)
        # the target among the inputs: forecasts continue it (window_norm, the persistence baseline)
        self.target_inputs = (inputs.index(self.target),) if self.target in inputs else None
        left = ", ".join(f"{c} ({why})" for c, why in left_out) or "none"
        log.info(
            "%s: inputs %s, target %s; left out: %s; %s; %s",
            self.path,
            ", ".join(inputs),
            self.target,
            left,
            order_note,
            missing_note,
        )
        self._params = {
            INPUT_COLUMNS: capped(",".join(inputs)),
            LEFT_OUT: capped(left),
            N_MISSING: str(n_missing),
        }
        return forecast_splits(
            scaled[:, pick_in], scaled[:, pick_out], train_end, val_end, n_rows, self.window, self.horizon
        )

    def _choose_columns(self, table: Table, target: str) -> tuple[list[str], list[tuple[str, str]]]:
        """The input columns, and every other column but the target with the reason it is not an input."""
        if self.columns is not None:
            for column in self.columns:
                table.column_index(column, "task.columns entry")
            inputs = list(self.columns)
        else:
            inputs = [c for c in table.columns if c != self.time_column and table.looks_numeric(c)]
            if target not in inputs:
                inputs.append(target)  # a non-numeric value is reported by row and column when read
        left_out = []
        for column in table.columns:
            if column in inputs or column == target:
                continue
            first = table.first_value(column)
            if column == self.time_column:
                why = "the time column"
            elif self.columns is not None:
                why = "not in task.columns"
            elif first is None:
                why = "every value missing"
            elif self.time_column is None and looks_like_time(first[1]):
                why = f"times, e.g. {first[1]!r}: set task.time_column={column} to order the rows by them"
                log.warning(
                    "%s: column %r holds times, but the rows are taken in file order; set "
                    "task.time_column=%s to order them by time",
                    self.path,
                    column,
                    column,
                )
            else:
                why = f"non-numeric, e.g. {first[1]!r} at row {first[0]}"
            left_out.append((column, why))
        return inputs, left_out

    def spec(self) -> TaskSpec:
        self.prepare()
        return TaskSpec(
            kind=self.kind,
            input_size=self.n_inputs,
            output_size=self.horizon,
            target_inputs=self.target_inputs,
        )

    def data_files(self) -> list[Path]:
        return [self.path] if self.path else []


def capped(text: str) -> str:
    """A param value within MLflow's limit; the log line above it has the whole list."""
    return text if len(text) <= PARAM_LIMIT else text[: PARAM_LIMIT - 40] + " ... (the rest in the log)"
