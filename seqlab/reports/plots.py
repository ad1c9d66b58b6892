"""The pictures a run carries: learning curves and predictions against the truth."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window (sweeps run headless)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from seqlab import names  # noqa: E402

LEGEND_AT = "upper right"  # not matplotlib's "best": its search over every plotted point is slow on long series


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
        steps, values = zip(*history[key])
        axes[0, 0].plot(steps, values, marker="o", ms=3, label=key)
    axes[0, 0].set(xlabel="step", ylabel="loss", title=title)
    if losses and min(v for k in losses for _, v in history[k]) > 0:
        axes[0, 0].set_yscale("log")
    axes[0, 0].legend(loc=LEGEND_AT)
    for key in others:
        steps, values = zip(*history[key])
        axes[0, 1].plot(steps, values, marker="o", ms=3, label=key)
    if others:
        axes[0, 1].set(xlabel="step", title="validation metrics")
        axes[0, 1].legend(loc=LEGEND_AT)
    return save(fig, path)


def predictions_vs_truth(x: np.ndarray, truth: np.ndarray, predicted: np.ndarray, kind: str, path: Path, title: str) -> Path:
    """Test examples: regression as predicted-vs-true scatter (and univariate inputs with their targets),
    classification as predicted vs true class, multi-label as truth and prediction pictures side by side."""
    if kind == "classification":
        fig, ax = plt.subplots(figsize=(7, 3.6))
        shown = slice(0, min(64, len(truth)))
        ax.plot(truth.reshape(len(truth), -1)[shown, 0], "o", label="true class")
        ax.plot(predicted.reshape(len(predicted), -1)[shown].argmax(-1) if predicted.ndim > 1 else predicted[shown], "x", label="predicted")
        ax.set(xlabel="test example", ylabel="class", title=title)
        ax.legend(loc=LEGEND_AT)
        return save(fig, path)
    if kind == "multi-label" and truth.ndim == 3:
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
        for ax, image, label in ((axes[0], truth[0], "truth"), (axes[1], predicted[0], "prediction")):
            ax.imshow(np.asarray(image, dtype=float).T, aspect="auto", origin="lower", cmap="magma")
            ax.set(xlabel="time step", ylabel="label", title=f"{title}: {label} (test example 0)")
        return save(fig, path)
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
    return save(fig, path)
