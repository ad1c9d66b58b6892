"""What a finished run carries besides metrics: its best checkpoint, pictures and the served model."""

import logging
import resource
import sys
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from seqlab import names
from seqlab.tracking.run import TrackedRun

log = logging.getLogger(__name__)
N_EXAMPLES = 256  # test examples drawn in the predictions plot
N_SERVED_EXAMPLE = 2  # rows of the served model's input example
DATA_ARTIFACTS = "data"  # the task's scaling (scaling.json): how to read its z-score metrics in data units


class SystemFigures(L.Callback):
    """Wall time and throughput of fit and test, and the process's peak memory, as run metrics."""

    def __init__(self) -> None:
        self.figures: dict[str, float] = {}
        self._samples, self._started = 0, 0.0

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._samples, self._started = 0, time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._samples += int(batch["y"].shape[0])

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        seconds = time.perf_counter() - self._started
        self.figures[names.TIME_FIT] = seconds
        self.figures[names.TRAIN_THROUGHPUT] = self._samples / seconds if seconds > 0 else 0.0

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._started = time.perf_counter()

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.figures[names.TIME_TEST] = time.perf_counter() - self._started
        self.figures[names.MEM_PEAK_RSS] = peak_rss_mb()


def peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux


def network_sections(cfg: Any) -> dict[str, Any]:
    """The config sections that rebuild the run's network (seqlab.assemble.network), resolved to plain
    values."""
    from omegaconf import OmegaConf

    sections: dict[str, Any] = {
        key: OmegaConf.to_container(cfg[key], resolve=True) for key in ("model", "cell", "norm", "loss")
    }
    sections["model"]["param_budget"] = None  # it already chose hidden_size (train writes it into cfg.model)
    return sections


def add_run_artifacts(
    run: TrackedRun, trainer: L.Trainer, module: Any, task: Any, cfg: Any, title: str
) -> None:
    """Best checkpoint, learning curves, predictions on test examples, and the pyfunc model.

    Called after trainer.test, so `module` holds the best checkpoint's weights. Where the task
    standardized its data (task.scaling), the plot and the served model are in the data's units.
    """
    output_dir = Path(cfg.paths.output_dir)
    from seqlab.reports.plots import learning_curves, predictions_vs_truth
    from seqlab.tracking.served_model import save_served_model

    checkpoint = trainer.checkpoint_callback
    if isinstance(checkpoint, ModelCheckpoint) and checkpoint.best_model_path:
        run.log_artifact(checkpoint.best_model_path, names.CHECKPOINT_ARTIFACTS)

    plots = output_dir / "plots"
    for callback in trainer.callbacks:  # type: ignore[attr-defined]
        # files a callback wrote for the run (GradientFlow's), logged like the rest: through the spool
        for path, folder in getattr(callback, "run_artifacts", ()):
            run.log_artifact(path, folder)
    run.log_artifact(
        learning_curves(run.logger.history, plots / "learning_curves.png", title), names.PLOT_ARTIFACTS
    )
    test = task.splits["test"]
    batch = test[torch.arange(min(N_EXAMPLES, len(test)))]
    module.eval()
    with torch.no_grad():  # a siamese task's prediction is the distance between its pair's encodings
        out = module.pair_distance(batch["x"], batch["x2"]) if "x2" in batch else module.net(batch["x"])
    mask = batch.get("mask")
    x, truth, predicted = batch["x"], batch["y"], out
    scaling = getattr(task, "scaling", None)
    if scaling is not None:
        x, truth, predicted = (
            scaling.unscale_inputs(x),
            scaling.unscale_targets(truth),
            scaling.unscale_targets(predicted),
        )
    if mask is not None and predicted.dim() == 3:  # padded steps carry no truth
        predicted = predicted * mask.unsqueeze(-1)
    path = predictions_vs_truth(
        x.numpy(),
        truth.numpy(),
        predicted.numpy(),
        str(task.kind),
        plots / "predictions.png",
        title,
        mask=None if mask is None else mask.numpy(),
        threshold=getattr(task, "threshold", None),
    )
    run.log_artifact(path, names.PLOT_ARTIFACTS)

    example = x[:N_SERVED_EXAMPLE].numpy()
    served_dir = output_dir / "served"
    served = save_served_model(module.net, task.spec(), network_sections(cfg), example, served_dir, scaling)
    run.log_artifact(served, names.MODEL_ARTIFACT)
    if scaling is not None:
        run.log_artifact(served_dir / "scaling.json", DATA_ARTIFACTS)
