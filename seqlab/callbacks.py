"""Lightning callbacks seqlab adds to every run (listed in conf/callbacks/default.yaml)."""

import logging
import math
from collections.abc import Callable

import lightning as L
import torch

from seqlab import names
from seqlab.errors import ConfigError, DivergedError

log = logging.getLogger(__name__)


class DivergenceGuard(L.Callback):
    """Fail the run with a clear message as soon as the training loss stops being finite.

    A step's loss is read when the next step ends, or before validation and at the epoch's end, whichever
    comes first: never at its own step. Reading a GPU tensor waits for the GPU to finish everything
    queued, and reading the previous step's loss instead lets the host queue the next step while the GPU
    works (on a CPU both are free). So a diverged step fails the run one step later at most, and always
    before its epoch is validated or checkpointed.
    """

    def __init__(self) -> None:
        self._unread: tuple[torch.Tensor, int, int] | None = (
            None  # (loss, epoch, global step) not yet checked
        )

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx
    ) -> None:
        self._check()
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is not None:
            self._unread = (loss.detach(), trainer.current_epoch, trainer.global_step)

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._check()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # without validation: still before the epoch's checkpoints (monitoring callbacks run last)
        self._check()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._check()  # a fit that stopped mid-epoch (max_steps, a stop request): its last step too

    def _check(self) -> None:
        if self._unread is None:
            return
        loss, epoch, step = self._unread
        self._unread = None
        value = loss.item()  # one Python float: cheaper than torch.isfinite and its bool
        if not math.isfinite(value):
            raise DivergedError(
                f"The run diverged: {names.TRAIN_LOSS} became {value} at epoch {epoch}, step {step}. Lower "
                "optimizer.lr, set trainer.gradient_clip_val (e.g. 1.0), or add a norm (norm=layer); the run "
                "is marked FAILED."
            )


class StopOnInterrupt(L.Callback):
    """Take a recorded Ctrl-C at the next batch boundary, should the interrupt itself have been lost
    (seqlab.tracking.run: one raised inside a finalizer is dropped by Python)."""

    def __init__(self, check: Callable[[], None]) -> None:
        self.check = check

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx
    ) -> None:
        self.check()

    def on_validation_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx, dataloader_idx=0
    ) -> None:
        self.check()


class EpochSummary(L.Callback):
    """One log line per epoch with the epoch's metrics (the progress bar is off in sweeps).

    At the training epoch's end, after validation: both the epoch's training loss and its validation
    metrics are known then.
    """

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        shown = {  # the epoch's figures: not test metrics, not the last logged step's loss
            k: float(v)
            for k, v in trainer.callback_metrics.items()
            if not k.startswith(names.TEST) and k != names.TRAIN_STEP_LOSS
        }
        text = "  ".join(f"{k}={v:.4g}" for k, v in sorted(shown.items()))
        log.info("epoch %d/%d  %s", trainer.current_epoch + 1, trainer.max_epochs, text)


class WeightNoise(L.Callback):
    """Gaussian noise on every trainable parameter for each training step (fixed weight noise, Graves 2011).

    A regularizer of the recurrent-network papers of that time: Chung et al. 2014 train with std 0.075.
    The gradient is taken at the noisy weights and applied to the clean ones: noise goes on before the
    forward pass, the clean weights come back before the optimizer steps. Validation, test and every
    checkpoint see clean weights. std 0 (the default) leaves training untouched.
    """

    def __init__(self, std: float = 0.0) -> None:
        self.std = std
        self._clean: list[tuple[torch.nn.Parameter, torch.Tensor]] = []

    @property
    def active(self) -> bool:
        """False at std 0: the run leaves the callback out (train.configured_callbacks)."""
        return self.std > 0

    @classmethod
    def check(cls, options) -> None:
        """Called by config.validate: a bad std fails at start-up, not inside instantiate."""
        std = options.get("std", 0.0)
        if isinstance(std, bool) or not isinstance(std, (int, float)) or not math.isfinite(std) or std < 0:
            raise ConfigError(
                f"Invalid callbacks.weight_noise.std={std!r}: it must be a finite number >= 0, the standard "
                "deviation of the noise added to every weight per training step (0 turns it off; Chung et "
                "al. 2014 used 0.075)."
            )

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int
    ) -> None:
        # After BatchReseed (train.py puts it first): the noise, like dropout, is fixed by (seed, epoch,
        # batch), so a resumed run draws the same noise as one that never stopped.
        if not self.std:
            return
        with torch.no_grad():
            for p in pl_module.parameters():
                if p.requires_grad:
                    self._clean.append((p, p.detach().clone()))
                    p.add_(torch.randn_like(p), alpha=self.std)

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer) -> None:
        self._restore()  # the gradients stay: they were taken at the noisy weights

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx
    ) -> None:
        self._restore()  # with gradient accumulation, most batches end without an optimizer step

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        self._restore()  # a fit that failed mid-step leaves the module holding its clean weights

    def _restore(self) -> None:
        if self._clean:
            with torch.no_grad():
                for p, clean in self._clean:
                    p.copy_(clean)
            self._clean.clear()
