"""What a comparison reads from each run beyond its final metrics: the validation curve per epoch, the time
an epoch took, and the gradient flow curve the run logged (plots/gradient_flow.csv)."""

import contextlib
import csv
import io
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from mlflow import MlflowClient

from seqlab import names

PROGRESS_BAR = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"  # MLflow's switch for its download progress bars


def validation_key(metric: str) -> str:
    """The validation counterpart of a test metric: test/mse -> val/mse."""
    return names.metric_key(names.VAL, metric.split("/", 1)[-1])


def per_epoch(client: MlflowClient, run_id: str, key: str) -> list[float]:
    """A metric logged once an epoch, in the order of its steps."""
    return [m.value for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)]


@contextlib.contextmanager
def quiet_downloads() -> Iterator[None]:
    """No progress bar per downloaded file: a comparison reads one small CSV from each of many runs."""
    before = os.environ.get(PROGRESS_BAR)
    os.environ[PROGRESS_BAR] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(PROGRESS_BAR, None)
        else:
            os.environ[PROGRESS_BAR] = before


def gradient_flow(client: MlflowClient, run_id: str) -> list[float] | None:
    """The run's `relative` gradient-norm curve (index: steps back), or None where it logged none."""
    logged = {f.path for f in client.list_artifacts(run_id, names.PLOT_ARTIFACTS)}
    path = f"{names.PLOT_ARTIFACTS}/{names.GRADIENT_FLOW_CSV}"
    if path not in logged:
        return None
    with tempfile.TemporaryDirectory() as tmp, quiet_downloads():
        text = Path(client.download_artifacts(run_id, path, tmp)).read_text()
    return [float(row["relative"]) for row in csv.DictReader(io.StringIO(text))]


def read_into(rows: list[Any], client: MlflowClient, metric: str) -> None:
    """Fill each comparison row's `curves` (the validation metric per epoch, one list per run), `epoch_s`
    (mean over runs of fit time / epochs trained) and `flows` (each run's gradient flow curve)."""
    key = validation_key(metric)
    for row in rows:
        seconds = []
        for run in row.runs:
            run_id = run.info.run_id
            curve = per_epoch(client, run_id, key) or per_epoch(client, run_id, names.VAL_LOSS)
            if curve:
                row.curves.append(curve)
            epochs = len(per_epoch(client, run_id, names.TRAIN_LOSS))
            if epochs and names.TIME_FIT in run.data.metrics:
                seconds.append(run.data.metrics[names.TIME_FIT] / epochs)
            flow = gradient_flow(client, run_id)
            if flow:
                row.flows.append(flow)
        row.epoch_s = float(np.mean(seconds)) if seconds else math.nan


def mean_by_index(curves: list[list[float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Curves of unequal length (early stopping, other lengths) -> (index, mean, std) at each index, over
    the curves that reach it (std nan where one does)."""
    longest = max((len(c) for c in curves), default=0)
    padded = np.full((len(curves), longest), np.nan)
    for i, curve in enumerate(curves):
        padded[i, : len(curve)] = curve
    counts = np.sum(~np.isnan(padded), axis=0)
    mean = np.nanmean(padded, axis=0) if longest else np.array([])
    std = np.array([np.nanstd(padded[:, i], ddof=1) if counts[i] > 1 else np.nan for i in range(longest)])
    return np.arange(longest), mean, std
