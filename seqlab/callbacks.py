"""Lightning callbacks seqlab adds to every run (listed in conf/callbacks/default.yaml)."""

import logging
import lightning as L
import torch

from seqlab import names
from seqlab.errors import DivergedError

log = logging.getLogger(__name__)


class DivergenceGuard(L.Callback):
    """Fail the run with a clear message the moment the training loss stops being finite."""

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is not None and not torch.isfinite(loss):
            raise DivergedError(
                f"The run diverged: {names.TRAIN_LOSS} became {loss.item()} at epoch {trainer.current_epoch}, "
                f"step {trainer.global_step}. Lower optimizer.lr, set trainer.gradient_clip_val (e.g. 1.0), "
                "or add a norm (norm=layer); the run is marked FAILED."
            )


class EpochSummary(L.Callback):
    """One log line per epoch with the epoch's metrics (the progress bar is off in sweeps).

    At the training epoch's end, after validation: both the epoch's training loss and its validation
    metrics are known then.
    """

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        shown = {  # the epoch's figures: not test metrics, not the last logged step's loss
            k: float(v) for k, v in trainer.callback_metrics.items()
            if not k.startswith(names.TEST) and k != names.TRAIN_STEP_LOSS
        }
        text = "  ".join(f"{k}={v:.4g}" for k, v in sorted(shown.items()))
        log.info("epoch %d/%d  %s", trainer.current_epoch + 1, trainer.max_epochs, text)
