"""The user's own series: any CSV file, forecast one column from the last `window` rows."""

from pathlib import Path

from seqlab.checks import at_least
from seqlab.errors import ConfigError, DataError
from seqlab.spec import TaskKind, TaskSpec
from seqlab.tasks.base import Task, check_split_fractions
from seqlab.tasks.table import read_table
from seqlab.tasks.windows import forecast_splits, zscore


class CsvTask(Task):
    """Rows in file order are time steps; the split is chronological (train, then val, then test).

    Inputs are `columns` (default: every numeric column but the time column), the target is `target`;
    every column is z-scored with the training rows' statistics. Validation and test windows may start
    in the previous split's rows, so that their first target is their split's first row.
    """

    name = "csv"
    kind = TaskKind.REGRESSION

    def __init__(
        self,
        path: str | None = None,
        target: str | None = None,
        columns: list[str] | None = None,
        time_column: str | None = None,
        window: int = 24,
        horizon: int = 1,
        val_fraction: float = 0.1,
        test_fraction: float = 0.2,
        batch_size: int = 64,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size=batch_size, seed=seed)
        self.path = Path(path) if path else None
        self.target, self.columns, self.time_column = target, list(columns) if columns else None, time_column
        self.window, self.horizon = window, horizon
        self.val_fraction, self.test_fraction = val_fraction, test_fraction

    @classmethod
    def check(cls, options) -> None:
        for key in ("path", "target"):
            if not options.get(key):
                raise ConfigError(
                    f"task=csv needs task.{key}: e.g. task.path=my_series.csv task.target=load."
                )
        for key in ("window", "horizon"):
            at_least(f"task.{key}", options.get(key), 1)
        check_split_fractions(options.get("val_fraction"), options.get("test_fraction"))

    def build(self):
        if self.path is None or self.target is None:
            raise ConfigError("task=csv needs task.path and task.target.")
        table = read_table(self.path, key="task.path")
        table.column_index(self.target, "task.target")
        if self.time_column is not None:
            table.column_index(self.time_column, "task.time_column")
        if self.columns is not None:
            for column in self.columns:
                table.column_index(column, "task.columns entry")
            inputs = list(self.columns)
        else:
            inputs = [c for c in table.columns if c != self.time_column and table.looks_numeric(c)]
            if self.target not in inputs:
                inputs.append(self.target)  # its non-numeric value is reported below, by row and column
        used = list(dict.fromkeys([*inputs, self.target]))
        series = table.numeric(used)

        rows = len(table)
        n_test, n_val = int(rows * self.test_fraction), int(rows * self.val_fraction)
        train_end, val_end = rows - n_test - n_val, rows - n_test
        need = self.window + self.horizon
        if train_end < need or min(n_val, n_test) < self.horizon:
            raise DataError(
                f"{self.path} has {rows} rows: too short for task.window={self.window} + task.horizon="
                f"{self.horizon}. The training split ({train_end} rows) needs at least {need} rows and the "
                f"val/test splits ({n_val}/{n_test} rows) at least {self.horizon} each; use a longer file, a "
                "smaller window or horizon, or other split fractions."
            )
        scaled, _, _ = zscore(series, slice(0, train_end))
        x = scaled[:, [used.index(c) for c in inputs]]
        y = scaled[:, [used.index(self.target)]]
        self.n_inputs = len(inputs)
        return forecast_splits(x, y, train_end, val_end, rows, self.window, self.horizon)

    def spec(self) -> TaskSpec:
        self.prepare()
        return TaskSpec(kind=self.kind, input_size=self.n_inputs, output_size=self.horizon)

    def data_files(self) -> list[Path]:
        return [self.path] if self.path else []
