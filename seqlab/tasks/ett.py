"""ETT (Electricity Transformer Temperature) under the protocol of Informer (AAAI 2021) and later papers."""

from pathlib import Path
from typing import ClassVar

from seqlab.checks import at_least, season_length
from seqlab.errors import ConfigError
from seqlab.spec import TaskKind, TaskSpec
from seqlab.tasks.base import Task
from seqlab.tasks.download import fetch
from seqlab.tasks.table import read_table
from seqlab.tasks.windows import Scaler, Scaling, forecast_splits, zscore

# Informer's borders in rows: 12 / 4 / 4 months of 30 days; hourly sets, the 15-minute ones are x4.
HOURLY_BORDERS = (8640, 11520, 14400)
ROWS_PER_HOUR = {"ETTh1": 1, "ETTh2": 1, "ETTm1": 4, "ETTm2": 4}
FEATURES = {
    "S": "univariate: the target alone forecasts itself",
    "M": "multivariate: all 7 columns forecast all 7",
    "MS": "all 7 columns forecast the target",
}


class ETTTask(Task):
    """Forecast `horizon` rows from `window` rows; z-scored with the training rows' statistics.

    MSE and MAE are on the scaled values, as in the papers (mse_original and mae_original in the data's
    units beside them). Validation and test windows start `window` rows before their border so that
    their first target is the border's row.
    """

    name = "ett"
    kind = TaskKind.REGRESSION
    DATASETS: ClassVar[tuple[str, ...]] = tuple(ROWS_PER_HOUR)

    def __init__(
        self,
        dataset: str = "ETTh1",
        features: str = "S",
        target: str = "OT",
        window: int = 96,
        horizon: int = 24,
        season: int | None = None,
        batch_size: int = 32,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size=batch_size, seed=seed)
        self.check({"dataset": dataset, "features": features, "window": window, "horizon": horizon})
        self.dataset, self.features, self.target = dataset, features, target
        self.window, self.horizon, self.season = window, horizon, season
        self.path: Path | None = None
        self.target_inputs: tuple[int, ...] = ()

    @classmethod
    def check(cls, options) -> None:
        if options.get("dataset") not in cls.DATASETS:
            raise ConfigError(
                f"Unknown task.dataset={options.get('dataset')!r} for task=ett. Allowed: "
                f"{', '.join(cls.DATASETS)}."
            )
        if options.get("features") not in FEATURES:
            allowed = "; ".join(f"{k} ({v})" for k, v in FEATURES.items())
            raise ConfigError(f"Invalid task.features={options.get('features')!r}. Allowed: {allowed}.")
        for key in ("window", "horizon"):
            at_least(f"task.{key}", options.get(key), 1)
        season_length(options.get("season"), options.get("window"))
        scale = ROWS_PER_HOUR[options["dataset"]]
        train_rows, eval_rows = HOURLY_BORDERS[0] * scale, (HOURLY_BORDERS[1] - HOURLY_BORDERS[0]) * scale
        window, horizon = options["window"], options["horizon"]
        if window + horizon > train_rows or horizon > eval_rows:
            raise ConfigError(
                f"task.window={window} + task.horizon={horizon} do not fit {options['dataset']}: its "
                f"training split has {train_rows} rows (window + horizon must not exceed them) and its "
                f"val/test splits {eval_rows} target rows each (horizon must not exceed them)."
            )

    def borders(self) -> tuple[int, int, int]:
        scale = ROWS_PER_HOUR[self.dataset]
        train, val, test = HOURLY_BORDERS
        return train * scale, val * scale, test * scale

    def build(self):
        self.path = fetch(f"{self.dataset}.csv")
        table = read_table(self.path, key=f"task.dataset={self.dataset}: the file")
        columns = [c for c in table.columns if c != "date"]
        table.column_index(self.target, "task.target")
        inputs = [self.target] if self.features == "S" else columns
        targets = columns if self.features == "M" else [self.target]
        series = table.numeric(columns)
        train_end, val_end, test_end = self.borders()
        scaled, mean, std = zscore(series, slice(0, train_end))
        pick_in, pick_out = [columns.index(c) for c in inputs], [columns.index(c) for c in targets]
        x, y = scaled[:, pick_in], scaled[:, pick_out]
        self.scaling = Scaling(
            inputs=Scaler.of(inputs, mean[pick_in], std[pick_in]),
            targets=Scaler.of(targets, mean[pick_out], std[pick_out]),
            horizon=self.horizon,
        )
        self.n_inputs, self.n_targets = len(inputs), len(targets)
        self.target_inputs = tuple(inputs.index(c) for c in targets)  # every target is also an input
        return forecast_splits(x, y, train_end, val_end, test_end, self.window, self.horizon)

    def spec(self) -> TaskSpec:
        self.prepare()
        return TaskSpec(
            kind=self.kind,
            input_size=self.n_inputs,
            output_size=self.horizon * self.n_targets,
            target_inputs=self.target_inputs,
        )

    def data_files(self) -> list[Path]:
        self.prepare()
        assert self.path is not None  # build() sets it
        return [self.path]
