"""The pictures a run carries: learning curves and predictions against the truth."""

from pathlib import Path
from typing import Final

import matplotlib

matplotlib.use("Agg")  # files only, never a window (sweeps run headless)
import matplotlib.pyplot as plt
import numpy as np

from seqlab import names

# Not matplotlib's "best": its search over every plotted point is slow on long series.
LEGEND_AT: Final = "upper right"


def save(fig: "plt.Figure", path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def learning_curves(history: dict[str, list[tuple[int, float]]], path: Path, title: str) -> Path:
    """Loss per epoch (train and val) and each validation metric, against the training step."""
    losses = [k for k in (names.TRAIN_LOSS, names.VAL_LOSS) if history.get(k)]
    others = sorted(k for k in history if k.startswith(f"{names.VAL}/") and k != names.VAL_LOSS)
    fig, axes = plt.subplots(1, 1 + bool(others), figsize=(5 + 5 * bool(others), 3.6), squeeze=False)
    for key in losses:
        steps, values = zip(*history[key], strict=True)
        axes[0, 0].plot(steps, values, marker="o", ms=3, label=key)
    axes[0, 0].set(xlabel="step", ylabel="loss", title=title)
    if losses and min(v for k in losses for _, v in history[k]) > 0:
        axes[0, 0].set_yscale("log")
    axes[0, 0].legend(loc=LEGEND_AT)
    for key in others:
        steps, values = zip(*history[key], strict=True)
        axes[0, 1].plot(steps, values, marker="o", ms=3, label=key)
    if others:
        axes[0, 1].set(xlabel="step", title="validation metrics")
        axes[0, 1].legend(loc=LEGEND_AT)
    return save(fig, path)


N_SHOWN = 16  # test examples drawn step by step in a per-step classification picture


def predictions_vs_truth(
    x: np.ndarray,
    truth: np.ndarray,
    predicted: np.ndarray,
    kind: str,
    path: Path,
    title: str,
    mask: np.ndarray | None = None,
    threshold: float | None = None,
) -> Path:
    """The picture of test predictions `predictions_figure` draws, saved as `path`."""
    return save(predictions_figure(x, truth, predicted, kind, title, mask, threshold), path)


def predictions_figure(
    x: np.ndarray,
    truth: np.ndarray,
    predicted: np.ndarray,
    kind: str,
    title: str,
    mask: np.ndarray | None = None,
    threshold: float | None = None,
) -> "plt.Figure":
    """Test predictions against the truth, drawn as the task's kind and the tensors' shapes call for.

    similarity: `predicted` holds each pair's distance (B,), `truth` +1 for a same-class pair and -1 for
    another; the two histograms of distances with the decision `threshold`. classification with per-step
    targets (truth (B, T), scores (B, T, C)): accuracy at each step position, and true against predicted
    symbols of a few examples; per sequence: predicted vs true class. multi-label: truth and prediction
    pictures side by side. Regression: predicted-vs-true scatter (and univariate inputs with their
    targets). `mask` (B, T) marks the steps that carry truth (padding does not).
    """
    if kind == "similarity":
        return _pair_distances(truth, predicted, title, threshold)
    if kind == "classification" and truth.ndim == 2 and predicted.ndim == 3:
        return _per_step_classes(truth, predicted, title, mask)
    if kind == "classification":
        fig, ax = plt.subplots(figsize=(7, 3.6))
        shown = slice(0, min(64, len(truth)))
        ax.plot(truth.reshape(len(truth), -1)[shown, 0], "o", label="true class")
        ax.plot(
            predicted[shown].argmax(-1) if predicted.ndim > 1 else predicted[shown], "x", label="predicted"
        )
        ax.set(xlabel="test example", ylabel="class", title=title)
        ax.legend(loc=LEGEND_AT)
        return fig
    if kind == "multi-label" and truth.ndim == 3:
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
        for ax, image, label in ((axes[0], truth[0], "truth"), (axes[1], predicted[0], "prediction")):
            ax.imshow(np.asarray(image, dtype=float).T, aspect="auto", origin="lower", cmap="magma")
            ax.set(xlabel="time step", ylabel="label", title=f"{title}: {label} (test example 0)")
        return fig
    univariate = x.ndim == 3 and x.shape[-1] == 1 and truth.ndim == 2
    fig, axes = plt.subplots(1, 1 + univariate, figsize=(5 + 6 * univariate, 3.8), squeeze=False)
    t, p = truth.reshape(-1), predicted.reshape(-1)[: truth.size]
    axes[0, 0].scatter(t, p, s=8, alpha=0.6)
    low, high = float(min(t.min(), p.min())), float(max(t.max(), p.max()))
    axes[0, 0].plot([low, high], [low, high], "k--", lw=1, label="perfect")
    axes[0, 0].set(xlabel="truth", ylabel="prediction", title=f"{title}: test set")
    axes[0, 0].legend(loc=LEGEND_AT)
    if univariate:
        ax, window = axes[0, 1], x.shape[1]
        for i in range(min(3, len(x))):
            (line,) = ax.plot(range(window), x[i, :, 0], lw=1)
            after = range(window, window + truth.shape[1])
            ax.plot(after, truth[i], "o", color=line.get_color(), label="truth" if i == 0 else None)
            ax.plot(after, predicted[i], "x", color="k", label="prediction" if i == 0 else None)
        ax.set(xlabel="time step", title="test examples: input, truth and prediction")
        ax.legend(loc=LEGEND_AT)
    return fig


def _per_step_classes(
    truth: np.ndarray, scores: np.ndarray, title: str, mask: np.ndarray | None
) -> "plt.Figure":
    """Accuracy at each step position over the test examples, and true and predicted symbols of a few."""
    predicted = scores.argmax(-1)  # (B, T)
    carries = np.ones(truth.shape, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    right = (predicted == truth) & carries
    with np.errstate(invalid="ignore"):
        accuracy = right.sum(0) / carries.sum(0)  # (T,): nan where no example has that step
    fig, axes = plt.subplots(1, 3, figsize=(16, 3.8), gridspec_kw={"width_ratios": [1.2, 1, 1]})
    axes[0].plot(np.arange(truth.shape[1]), accuracy, marker="o", ms=3)
    axes[0].set(xlabel="time step", ylabel="accuracy", ylim=(-0.02, 1.02), title=f"{title}: accuracy by step")
    shown = slice(0, min(N_SHOWN, len(truth)))
    n_classes = scores.shape[-1]
    for ax, symbols, label in ((axes[1], truth, "true symbols"), (axes[2], predicted, "predicted symbols")):
        image = np.ma.masked_array(symbols[shown], mask=~carries[shown])
        drawn = ax.imshow(
            image, aspect="auto", cmap="tab20", vmin=0, vmax=max(n_classes - 1, 1), interpolation="nearest"
        )
        ax.set(xlabel="time step", ylabel="test example", title=label)
    fig.colorbar(drawn, ax=axes[1:], label="symbol")
    return fig


def _pair_distances(
    truth: np.ndarray, distance: np.ndarray, title: str, threshold: float | None
) -> "plt.Figure":
    """How far apart the encoder puts same-class and different-class pairs, and where it draws the line."""
    if distance.ndim != 1:
        raise ValueError(
            f"a similarity picture needs one distance per pair (shape (B,)), got shape {distance.shape}"
        )
    fig, ax = plt.subplots(figsize=(7, 3.8))
    bins = np.histogram_bin_edges(distance, bins=30)
    # hist takes an array of bin edges; matplotlib's stubs list only sequences
    ax.hist(distance[truth > 0], bins=bins, alpha=0.6, label="same class")  # type: ignore[arg-type]
    ax.hist(distance[truth <= 0], bins=bins, alpha=0.6, label="different classes")  # type: ignore[arg-type]
    if threshold is not None:
        ax.axvline(threshold, color="k", ls="--", label=f"threshold {threshold:g}")
    ax.set(
        xlabel="distance between the pair's encodings", ylabel="test pairs", title=f"{title}: pair distances"
    )
    ax.legend(loc=LEGEND_AT)
    return fig


def gradient_flow(norms: np.ndarray, fraction: float, horizon: float, path: Path, title: str) -> Path:
    """The gradient norm at each distance back from the last step (log scale), the fraction of the last
    step's norm the horizon counts down to, and the horizon."""
    fig, ax = plt.subplots(figsize=(6, 3.8))
    back = np.arange(len(norms))
    shown = norms > 0  # a log axis has no place for a zero
    ax.plot(back[shown], norms[shown], marker="o", ms=2, lw=1, label="mean gradient norm")
    if len(norms) and norms[0] > 0:
        ax.axhline(fraction * norms[0], color="tab:red", ls="--", lw=1, label=f"{fraction:g} x last step")
    if np.isfinite(horizon):
        ax.axvline(horizon, color="k", ls=":", lw=1, label=f"horizon {horizon:g} steps")
    if shown.any():
        ax.set_yscale("log")
    ax.set(
        xlabel="steps back from the last step",
        ylabel="|d loss(last) / d input(t)|",
        title=f"{title}: gradient flow",
    )
    ax.legend(loc=LEGEND_AT, fontsize=8)
    return save(fig, path)
