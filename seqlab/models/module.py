"""The one LightningModule: any SequenceNet, any loss, any optimizer and schedule from the config."""

from collections.abc import Callable

import lightning as L
import torch
from torchmetrics import MetricCollection

from seqlab import names
from seqlab.models.losses import Loss


class SequenceModule(L.LightningModule):
    def __init__(
        self,
        net: torch.nn.Module,
        loss: Loss,
        optimizer: Callable[..., torch.optim.Optimizer],
        metrics: MetricCollection,
        scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | None = None,
    ) -> None:
        super().__init__()
        self.net, self.loss = net, loss
        self.make_optimizer, self.make_scheduler = optimizer, scheduler
        self.val_metrics = metrics.clone(prefix=f"{names.VAL}/")
        self.test_metrics = metrics.clone(prefix=f"{names.TEST}/")
        # Each stage's loss so far this epoch: (sum of loss x batch size, examples), logged once as the mean.
        # Not torchmetrics' MeanMetric: its default drops a NaN batch (a diverged model would look fine)
        # and checks every batch (a GPU sync); its "disable" also drops the weights (torchmetrics 1.9).
        self._loss_totals: dict[str, tuple[torch.Tensor | float, int]] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def pair_distance(self, x: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        """Siamese use of the one network: encode both sequences (one pass), their Euclidean distance (B,)."""
        first, second = self.net(torch.cat([x, x2])).chunk(2)
        return torch.pairwise_distance(first, second)

    def _outputs(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        mask = batch.get("mask")  # (B, T) in padded batches: batch norm and the loss use the real steps only
        out = self.pair_distance(batch["x"], batch["x2"]) if "x2" in batch else self.net(batch["x"], mask)
        return self.loss.align(out, batch["y"], mask)

    def _add_loss(self, stage: str, loss: torch.Tensor, n: int) -> None:
        total, count = self._loss_totals.get(stage, (0.0, 0))
        self._loss_totals[stage] = (total + loss.detach() * n, count + n)  # out of place: any device

    def _log_mean_loss(self, stage: str) -> None:
        total, count = self._loss_totals.pop(stage, (0.0, 0))
        if count:
            self.log(names.metric_key(stage, "loss"), total / count, on_step=False, on_epoch=True)

    def _step(self, stage: str, batch: dict[str, torch.Tensor], metrics: MetricCollection) -> None:
        # Updated here, logged once at the epoch end (torchmetrics' update/compute pattern): each self.log
        # call runs Lightning's result bookkeeping, a per-batch cost worth avoiding.
        out, y = self._outputs(batch)
        self._add_loss(stage, self.loss(out, y), batch["y"].shape[0])
        metrics.update(self.loss.logits(out.detach()), y)

    def _log_epoch(self, stage: str, metrics: MetricCollection) -> None:
        self._log_mean_loss(stage)
        self.log_dict(metrics.compute())
        metrics.reset()

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        # No self.log per step: each call runs Lightning's bookkeeping, a noticeable share of a small step.
        # The epoch mean is summed here and logged once; the step loss only on the steps the logger
        # writes (every trainer.log_every_n_steps, Lightning's own rule).
        out, y = self._outputs(batch)
        loss = self.loss(out, y)
        n = batch["y"].shape[0]
        self._add_loss(names.TRAIN, loss, n)
        # Lightning's logger connector sets this on the Trainer from outside the class, so its stubs miss it
        every = self.trainer.log_every_n_steps  # type: ignore[attr-defined]
        if every and (self.global_step + 1) % every == 0:
            self.log(names.TRAIN_STEP_LOSS, loss, on_step=True, on_epoch=False, batch_size=n)
        if batch_idx + 1 == self.trainer.num_training_batches:  # here, so callbacks see it at the epoch end
            self._log_mean_loss(names.TRAIN)
        return loss

    def on_train_epoch_end(self) -> None:
        self._log_mean_loss(names.TRAIN)  # an epoch cut short (max_steps, a stop request) still gets its mean

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._step(names.VAL, batch, self.val_metrics)

    def on_validation_epoch_end(self) -> None:
        self._log_epoch(names.VAL, self.val_metrics)

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._step(names.TEST, batch, self.test_metrics)

    def on_test_epoch_end(self) -> None:
        self._log_epoch(names.TEST, self.test_metrics)

    def configure_optimizers(self):
        optimizer = self.make_optimizer(self.parameters())
        if self.make_scheduler is None:
            return optimizer
        scheduler = self.make_scheduler(optimizer)
        # ReduceLROnPlateau needs a metric to watch; the others ignore `monitor`.
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": names.VAL_LOSS}}
