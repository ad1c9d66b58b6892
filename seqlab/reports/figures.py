"""The comparison's figures beyond the bar chart: learning curves, gradient flow and difficulty curves.

Each takes comparison rows (seqlab.reports.compare.Row: a `name`, its `curves`, `flows` and `metrics`) and
draws one line per configuration, over seeds.
"""

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.ticker import MaxNLocator

from seqlab.reports.histories import mean_by_index
from seqlab.reports.plots import LEGEND_AT, plt, save


def learning_curves(rows: list[Any], key: str, path: Path) -> Path:
    """The validation metric per epoch: the mean over seeds and a band of one standard deviation."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for row in rows:
        if not row.curves:
            continue
        epochs, mean, std = mean_by_index(row.curves)
        (line,) = ax.plot(epochs + 1, mean, marker="o", ms=2, lw=1.2, label=row.name)
        ax.fill_between(epochs + 1, mean - std, mean + std, color=line.get_color(), alpha=0.2, lw=0)
    ax.set(xlabel="epoch", ylabel=f"{key} (mean over seeds, band: +-1 std)", title="learning curves")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if ax.lines:
        ax.legend(fontsize=8, loc=LEGEND_AT)
    return save(fig, path)


def gradient_flows(rows: list[Any], path: Path, fraction: float | None = None) -> Path:
    """Each configuration's gradient norm k steps back relative to the last step's, mean over seeds."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for row in rows:
        if not row.flows:
            continue
        back, mean, _ = mean_by_index(row.flows)
        shown = mean > 0  # a log axis has no place for a zero
        ax.plot(back[shown], mean[shown], lw=1.2, label=row.name)
    if fraction is not None:
        ax.axhline(fraction, color="k", ls="--", lw=1, label=f"horizon threshold {fraction:g}")
    if ax.lines:
        ax.set_yscale("log")
        ax.legend(fontsize=8, loc=LEGEND_AT)
    ax.set(
        xlabel="steps back from the last step",
        ylabel="gradient norm / last step's (mean over seeds)",
        title="gradient flow",
    )
    return save(fig, path)


def difficulty_curves(
    key: str,
    metric: str,
    lines: dict[str, list[tuple[float, Any]]],
    chance: list[tuple[float, float]],
    path: Path,
) -> Path:
    """`metric` against the swept `key`, one line per configuration with 95% CI bars; `lines` maps each
    configuration to (key value, Summary) pairs, `chance` the best trivial baseline at each value."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for name, points in lines.items():
        xs = np.array([x for x, _ in points])
        means = np.array([s.mean for _, s in points])
        half = np.nan_to_num(np.array([s.mean - s.ci_low for _, s in points]))
        ax.errorbar(xs, means, yerr=half, marker="o", ms=4, capsize=4, lw=1.2, label=name)
    if chance:
        ax.plot(*zip(*chance, strict=True), "k--", lw=1, label="best trivial baseline")
    ax.set(xlabel=key, ylabel=f"{metric} (mean, 95% CI)", title=f"{metric} against {key}")
    if ax.lines:
        ax.legend(fontsize=8, loc=LEGEND_AT)
    return save(fig, path)
