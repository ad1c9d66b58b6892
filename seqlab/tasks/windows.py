"""Sliding windows over one long series, cut by index arithmetic: no window is ever copied out.

A forecasting split is a range of rows [start, stop) of the series; its examples are every window of
`window` input rows followed by `horizon` target rows that fits inside the range, so a split of R rows
holds R - window - horizon + 1 examples. A batch gathers its windows from the series in one indexing.
"""

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torchmetrics import Metric
from torchmetrics.wrappers.transformations import MetricInputTransformer

from seqlab.tasks.batching import gather_rows


class WindowSplit:
    """Windows over rows [start, stop) of `inputs` (N, F) with targets from `targets` (N, F_target).

    Indexed with a tensor of example indices, it returns {"x": (B, window, F), "y": (B, horizon * F_target)}
    with y time-major (the horizon's first step's targets first).
    """

    def __init__(
        self, inputs: torch.Tensor, targets: torch.Tensor, start: int, stop: int, window: int, horizon: int
    ) -> None:
        if inputs.shape[0] != targets.shape[0]:
            raise ValueError(
                f"inputs and targets must share their rows, got {inputs.shape[0]} and {targets.shape[0]}"
            )
        self.inputs, self.targets = inputs, targets
        self.start, self.window, self.horizon = start, window, horizon
        self.n = max(0, (stop - start) - window - horizon + 1)
        self.input_steps = torch.arange(window)
        self.target_steps = torch.arange(window, window + horizon)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: torch.Tensor) -> dict[str, torch.Tensor]:
        first = self.start + index.unsqueeze(-1)  # (B, 1): the first row of each window
        x = gather_rows(self.inputs, first + self.input_steps)  # (B, window, F)
        y = gather_rows(self.targets, first + self.target_steps)  # (B, horizon, F_target)
        return {"x": x, "y": y.flatten(1)}  # y time-major


def forecast_splits(
    inputs: torch.Tensor,
    targets: torch.Tensor,
    train_end: int,
    val_end: int,
    test_end: int,
    window: int,
    horizon: int,
) -> dict[str, WindowSplit]:
    """Chronological train/val/test windows; val and test start `window` rows before their border, so their
    first target is the border's row (the protocol of Informer and the papers after it)."""
    return {
        "train": WindowSplit(inputs, targets, 0, train_end, window, horizon),
        "val": WindowSplit(inputs, targets, train_end - window, val_end, window, horizon),
        "test": WindowSplit(inputs, targets, val_end - window, test_end, window, horizon),
    }


def zscore(series: torch.Tensor, fit_rows: slice) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Standardize every column with the mean and std of `fit_rows` only (the training rows: no leak)."""
    fit = series[fit_rows]
    mean, std = fit.mean(dim=0), fit.std(dim=0, correction=0)  # as sklearn StandardScaler
    std = torch.where(std > 0, std, torch.ones_like(std))  # a constant column stays constant, not NaN
    return (series - mean) / std, mean, std


@dataclass(frozen=True)
class Scaler:
    """The z-score of named columns: scaled = (value - mean) / std, with the training rows' mean and std."""

    columns: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def of(cls, columns: list[str], mean: torch.Tensor, std: torch.Tensor) -> "Scaler":
        return cls(tuple(columns), tuple(float(m) for m in mean), tuple(float(s) for s in std))


@dataclass(frozen=True)
class Scaling:
    """How a forecasting task standardized its inputs (B, T, F) and targets (B, horizon * F_target), so that
    metrics and the served model can speak in the data's own units."""

    inputs: Scaler
    targets: Scaler
    horizon: int

    def scale_inputs(self, x: torch.Tensor) -> torch.Tensor:  # (..., F) in data units -> z-scores
        mean, std = (torch.tensor(v, dtype=x.dtype) for v in (self.inputs.mean, self.inputs.std))
        return (x - mean) / std

    def unscale_inputs(self, x: torch.Tensor) -> torch.Tensor:
        mean, std = (torch.tensor(v, dtype=x.dtype) for v in (self.inputs.mean, self.inputs.std))
        return x * std + mean

    def target_mean_std(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per output: the targets' mean and std repeated over the horizon, as y is time-major."""
        mean, std = torch.tensor(self.targets.mean), torch.tensor(self.targets.std)
        return mean.repeat(self.horizon), std.repeat(self.horizon)

    def unscale_targets(self, y: torch.Tensor) -> torch.Tensor:  # (B, horizon * F_target)
        mean, std = self.target_mean_std()
        return y * std.to(y.dtype) + mean.to(y.dtype)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, saved: dict[str, Any]) -> "Scaling":
        return cls(
            inputs=Scaler(**{k: tuple(v) for k, v in saved["inputs"].items()}),
            targets=Scaler(**{k: tuple(v) for k, v in saved["targets"].items()}),
            horizon=int(saved["horizon"]),
        )


class InDataUnits(MetricInputTransformer):
    """A regression metric in the data's own units: predictions and targets are unscaled before each update.

    The z-score metrics are what papers report; these are what the user's numbers mean (an MAE in kW).
    """

    def __init__(self, metric: Metric, scaling: Scaling) -> None:
        super().__init__(metric)
        mean, std = scaling.target_mean_std()
        # buffers, so they follow the metric to the accelerator
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)
        self.mean: torch.Tensor
        self.std: torch.Tensor

    @property  # the wrapped metric's: an error stays lower-is-better in any unit
    def higher_is_better(self) -> bool | None:  # type: ignore[override]
        better = getattr(self.wrapped_metric, "higher_is_better", None)
        return None if better is None else bool(better)

    def transform_pred(self, pred: torch.Tensor) -> torch.Tensor:
        return pred * self.std + self.mean

    def transform_target(self, target: torch.Tensor) -> torch.Tensor:
        return target * self.std + self.mean
