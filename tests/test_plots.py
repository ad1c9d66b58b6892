"""The predictions picture a run carries says something about its task: checked on the figure's own data."""

import matplotlib.patches
import numpy as np

from seqlab.reports.plots import N_SHOWN, plt, predictions_figure, predictions_vs_truth

B, T, C = 40, 9, 5  # copy-like: examples, steps, symbols


def _copy_like() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-step symbols (B, T) and scores (B, T, C) right on every step but the last two."""
    rng = np.random.default_rng(0)
    truth = rng.integers(0, C, size=(B, T))
    guess = truth.copy()
    guess[:, -2:] = (truth[:, -2:] + 1) % C
    scores = np.eye(C)[guess] + 0.01 * rng.random((B, T, C))
    return rng.random((B, T, 1)), truth, scores


def test_per_step_classes_show_accuracy_by_step_and_each_steps_symbols():
    x, truth, scores = _copy_like()
    fig = predictions_figure(x, truth, scores, "classification", "copy")
    by_step, truth_ax, predicted_ax = fig.axes[:3]
    [line] = by_step.lines
    assert list(line.get_xdata()) == list(range(T))
    assert list(line.get_ydata()) == [1.0] * (T - 2) + [0.0, 0.0]
    assert np.array_equal(truth_ax.images[0].get_array(), truth[:N_SHOWN])
    assert np.array_equal(predicted_ax.images[0].get_array(), scores[:N_SHOWN].argmax(-1))
    plt.close(fig)


def test_per_step_accuracy_counts_only_the_steps_the_mask_keeps():
    x, truth, scores = _copy_like()
    mask = np.ones((B, T), dtype=bool)
    mask[: B // 2, -1] = False  # the last step is padding in half the examples
    scores[: B // 2, -1] = np.eye(C)[truth[: B // 2, -1]]  # ... and right there, which must not count
    fig = predictions_figure(x, truth, scores, "classification", "copy", mask=mask)
    assert fig.axes[0].lines[0].get_ydata()[-1] == 0.0
    assert fig.axes[1].images[0].get_array().mask[: B // 2, -1].all()
    plt.close(fig)


def test_pairs_show_the_distances_of_same_and_different_pairs_with_the_threshold(tmp_path):
    truth = np.array([1.0] * 30 + [-1.0] * 20)
    distance = np.concatenate([np.linspace(0.0, 0.4, 30), np.linspace(0.6, 2.0, 20)])
    fig = predictions_figure(np.zeros((50, 8, 1)), truth, distance, "similarity", "similarity", threshold=0.5)
    [ax] = fig.axes
    bars = [p for p in ax.patches if isinstance(p, matplotlib.patches.Rectangle)]
    same, different = ax.containers
    assert sum(bar.get_height() for bar in same) == 30 and sum(bar.get_height() for bar in different) == 20
    assert max(bar.get_x() + bar.get_width() for bar in same if bar.get_height()) <= 0.5
    assert min(bar.get_x() for bar in different if bar.get_height()) >= 0.5
    assert len(bars) == len(same) + len(different)
    assert [line for line in ax.lines if set(line.get_xdata()) == {0.5}]  # the threshold, a vertical line
    assert sorted(t.get_text() for t in ax.get_legend().get_texts()) == [
        "different classes",
        "same class",
        "threshold 0.5",
    ]
    plt.close(fig)
    path = predictions_vs_truth(
        np.zeros((50, 8, 1)), truth, distance, "similarity", tmp_path / "p.png", "s", threshold=0.5
    )
    assert path.stat().st_size > 0
