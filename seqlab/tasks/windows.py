"""Sliding windows over one long series, cut by index arithmetic: no window is ever copied out.

A forecasting split is a range of rows [start, stop) of the series; its examples are every window of
`window` input rows followed by `horizon` target rows that fits inside the range, so a split of R rows
holds R - window - horizon + 1 examples. A batch gathers its windows from the series in one indexing.
"""

import torch

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
