"""Trivial forecasts and guesses every model must beat, computed on the same windows, masks and units as the
model's own metrics (Zeng et al. 2023 found repeating the last value beats many published forecasters).

Each function takes a split's tensors whole (one gather, no per-sample Python) and returns
{"<baseline>_<metric>": value}; `names.baseline_key` turns that into the logged metric key.
"""

from collections.abc import Callable, Iterable

import torch

from seqlab import names

Scores = dict[str, float]
Unscale = Callable[[torch.Tensor], torch.Tensor]  # targets (B, horizon * n) from z-scores to the data's units


def _regression(
    predictions: dict[str, torch.Tensor], y: torch.Tensor, unscale: Unscale | None = None
) -> Scores:
    """MSE and MAE of each baseline's predictions; with `unscale`, in the data's units too (`_original`)."""
    scores: Scores = {}
    for name, predicted in predictions.items():
        error = predicted - y
        scores |= {f"{name}_mse": float(error.pow(2).mean()), f"{name}_mae": float(error.abs().mean())}
        if unscale is not None:
            error = unscale(predicted) - unscale(y)
            scores |= {
                f"{name}_mse{names.DATA_UNITS_SUFFIX}": float(error.pow(2).mean()),
                f"{name}_mae{names.DATA_UNITS_SUFFIX}": float(error.abs().mean()),
            }
    return scores


def forecast(
    x: torch.Tensor,
    y: torch.Tensor,
    train_y: torch.Tensor,
    targets: tuple[int, ...],
    season: int | None = None,
    unscale: Unscale | None = None,
) -> Scores:
    """Forecasting windows: x (B, T, F) inputs, y (B, horizon * n) time-major targets that continue the input
    features `targets`. Persistence repeats each target's last observed value; seasonal naive repeats the
    value one season before each forecast step; mean predicts the training targets' mean."""
    n = len(targets)
    horizon = y.shape[1] // n
    predictions = {"persistence": x[:, -1, list(targets)].repeat(1, horizon)}  # (B, horizon * n)
    if season is not None:
        steps = [x.shape[1] - season + h % season for h in range(horizon)]  # the step one season back
        predictions["seasonal_naive"] = x[:, steps][:, :, list(targets)].flatten(1)
    predictions["mean"] = train_y.float().mean(dim=0).expand_as(y)
    return _regression(predictions, y, unscale)


def mean(y: torch.Tensor, train_y: torch.Tensor, unscale: Unscale | None = None) -> Scores:
    """Every example predicted as the training targets' mean (per output)."""
    return _regression({"mean": train_y.float().mean(dim=0).expand_as(y)}, y, unscale)


def classes(y: torch.Tensor, train_y: torch.Tensor, n_classes: int, ignore: int | None = None) -> Scores:
    """Labels (any shape): accuracy of always answering the training set's most frequent class, and chance
    (1 / n_classes). Targets equal to `ignore` (copy's blanks) count neither in training nor in scoring."""
    seen, scored = train_y.flatten(), y.flatten()
    if ignore is not None:
        seen, scored = seen[seen != ignore], scored[scored != ignore]
        n_classes -= 1
    majority = torch.bincount(seen, minlength=n_classes + (ignore is not None)).argmax()
    return {
        "majority_accuracy": float((scored == majority).float().mean()),
        "chance_accuracy": 1.0 / n_classes,
    }


def pairs(y: torch.Tensor, train_y: torch.Tensor) -> Scores:
    """Same (+1) or different (-1) pairs: always the training set's more frequent answer, and chance."""
    majority = 1.0 if float((train_y > 0).float().mean()) >= 0.5 else -1.0
    return {"majority_accuracy": float((y == majority).float().mean()), "chance_accuracy": 0.5}


def note_frequencies(frequencies: torch.Tensor, batches: Iterable[dict[str, torch.Tensor]]) -> Scores:
    """Multi-label steps: the NLL per step of independent labels, each on at its training `frequencies`
    (labels,), over the real steps of padded batches (x, y (B, T, labels), mask (B, T)), averaged over every
    real step as the task's nll is."""
    p = frequencies.double().clamp(1e-7, 1 - 1e-7)
    total, steps = 0.0, 0
    for batch in batches:
        real = batch["y"][batch["mask"]].double()  # (steps, labels)
        total += float(-(real * p.log() + (1 - real) * (1 - p).log()).sum())
        steps += real.shape[0]
    return {"note_frequencies_nll": total / steps}
