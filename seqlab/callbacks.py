"""Lightning callbacks seqlab adds to every run (listed in conf/callbacks/default.yaml)."""

import logging
import math
from collections.abc import Callable
from typing import Any

import lightning as L
import torch

from seqlab import names
from seqlab.errors import ConfigError, DivergedError

log = logging.getLogger(__name__)
# The gradient flow's lines under the diagnostics' name: this module's own logger says one line per epoch.
diagnostics_log = logging.getLogger("seqlab.diagnostics")


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


class GradientFlow(L.Callback):
    """After training, how far back in time the loss at the last step still reaches (seqlab.diagnostics.
    gradient_flow): `plots/gradient_flow.png` and `.csv` and the metric names.GRADIENT_HORIZON.

    Measured once, at the fit's end, on the first `n_sequences` validation examples with the weights
    training ended with: one forward and one backward pass, and no hook on any training step. A network
    it does not apply to (a bidirectional cell, a pooled read-out) gets the tag names.GRADIENT_FLOW_TAG
    saying why, and a log line.
    """

    def __init__(self, dirpath: str = "plots", fraction: float = 0.01, n_sequences: int = 64) -> None:
        self.dirpath, self.fraction, self.n_sequences = dirpath, fraction, n_sequences
        # (file, artifact folder) of the last measurement: tracking.artifacts logs every callback's
        self.run_artifacts: list[tuple[Any, str]] = []

    @classmethod
    def check(cls, options) -> None:
        """Called by config.validate: a bad value fails at start-up, not after training."""
        fraction, n = options.get("fraction", 0.01), options.get("n_sequences", 64)
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
            raise ConfigError(
                f"Invalid callbacks.gradient_flow.fraction={fraction!r}: it must be a number in (0, 1), the "
                "share of the last step's gradient norm the gradient horizon counts down to (default 0.01)."
            )
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(
                f"Invalid callbacks.gradient_flow.n_sequences={n!r}: it must be a whole number >= 1, the "
                "validation examples the gradient flow is measured on (default 64)."
            )

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        from pathlib import Path

        from seqlab.diagnostics import gradient_flow

        model: Any = pl_module  # seqlab's SequenceModule: its net, its loss, its pair distance
        reason = gradient_flow.why_not_measured(model.net)
        # set by trainer.fit(datamodule=...); Lightning's stubs do not declare it
        task = getattr(trainer, "datamodule", None)
        split = task.prepare()["val"] if task is not None and hasattr(task, "prepare") else None
        if reason is None and not split:
            reason = "no validation split to measure it on"
        if reason is not None or split is None:
            diagnostics_log.info("gradient flow not measured: %s", reason)
            self._tag(trainer, f"skipped: {reason}")
            return
        rows = torch.arange(min(self.n_sequences, len(split)))
        batch = {k: v.to(pl_module.device) for k, v in split[rows].items()}
        flow = gradient_flow.measure(model, batch, self.fraction)
        folder = Path(self.dirpath)
        folder.mkdir(parents=True, exist_ok=True)
        csv_path = folder / names.GRADIENT_FLOW_CSV
        csv_path.write_text(flow.to_csv())
        from seqlab.reports.plots import gradient_flow as plot

        title = getattr(task, "label", "")
        png_path = plot(
            flow.norms.numpy(), self.fraction, flow.horizon, folder / names.GRADIENT_FLOW_PLOT, title
        )
        note = (
            f"measured on {len(rows)} validation sequences: the gradient horizon is {flow.horizon:g} steps "
            f"(the norm stays >= {self.fraction:g} of the last step's)"
        )
        diagnostics_log.info("gradient flow %s", note)
        if trainer.logger is not None and math.isfinite(flow.horizon):
            trainer.logger.log_metrics({names.GRADIENT_HORIZON: flow.horizon}, step=trainer.global_step)
        self._tag(trainer, note)
        # logged with the run's other artifacts (tracking.artifacts), through the spool when the store is down
        self.run_artifacts = [(csv_path, names.PLOT_ARTIFACTS), (png_path, names.PLOT_ARTIFACTS)]

    @staticmethod
    def _tag(trainer: L.Trainer, note: str) -> None:
        client, run_id = getattr(trainer.logger, "client", None), getattr(trainer.logger, "run_id", None)
        if client is not None and run_id:
            try:
                client.set_tag(run_id, names.GRADIENT_FLOW_TAG, note)
            except Exception as exc:  # a store that does not answer: the log line above says it
                diagnostics_log.warning("seqlab: could not tag the run's gradient flow (%s)", exc)
