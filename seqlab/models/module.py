"""The one LightningModule: any SequenceNet, any loss, any optimizer and schedule from the config."""

from collections.abc import Callable

import lightning as L
import torch
from torchmetrics import MeanMetric, MetricCollection

from seqlab import names
from seqlab.models.losses import BernoulliNLL, Loss


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
        for metric in metrics.values():  # a likelihood metric must know what the network emits
            if isinstance(metric, BernoulliNLL):
                metric.from_logits = loss.output == "identity"
        self.val_metrics = metrics.clone(prefix=f"{names.VAL}/")
        self.test_metrics = metrics.clone(prefix=f"{names.TEST}/")
        # the epoch's mean loss, weighted by batch size (states are not persistent: checkpoints unchanged)
        self.val_loss, self.test_loss = MeanMetric(), MeanMetric()
        self._train_loss_sum, self._train_count = torch.zeros(()), 0  # this epoch's training loss so far

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def pair_distance(self, x: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        """Siamese use of the one network: encode both sequences (one pass), their Euclidean distance (B,)."""
        first, second = self.net(torch.cat([x, x2])).chunk(2)
        return torch.pairwise_distance(first, second)

    def _outputs(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.pair_distance(batch["x"], batch["x2"]) if "x2" in batch else self.net(batch["x"])
        return self.loss.align(out, batch["y"], batch.get("mask"))

    def _step(self, batch: dict[str, torch.Tensor], loss: MeanMetric, metrics: MetricCollection) -> None:
        # Updated here, logged once at the epoch end (torchmetrics' update/compute pattern): each self.log
        # call runs Lightning's result bookkeeping, which per batch is a cost the bare loop does not pay
        # (`seqlab-bench overhead`, "Lightning alone").
        out, y = self._outputs(batch)
        loss.update(self.loss(out, y), weight=batch["y"].shape[0])
        metrics.update(out.detach(), y)

    def _log_epoch(self, stage: str, loss: MeanMetric, metrics: MetricCollection) -> None:
        self.log_dict({names.metric_key(stage, "loss"): loss.compute(), **metrics.compute()})
        loss.reset()
        metrics.reset()

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        # No self.log per step: each call costs Lightning ~0.1 ms of bookkeeping, a few % of a small step
        # (`seqlab-bench overhead`). The epoch mean is summed here and logged once; the step loss only on
        # the steps the logger writes (every trainer.log_every_n_steps, Lightning's own rule).
        out, y = self._outputs(batch)
        loss = self.loss(out, y)
        n = batch["y"].shape[0]
        self._train_loss_sum = self._train_loss_sum + loss.detach() * n  # out of place: any device
        self._train_count += n
        every = self.trainer.log_every_n_steps
        if every and (self.global_step + 1) % every == 0:
            self.log(names.TRAIN_STEP_LOSS, loss, on_step=True, on_epoch=False, batch_size=n)
        if batch_idx + 1 == self.trainer.num_training_batches:  # here, so callbacks see it at the epoch end
            self._log_train_loss()
        return loss

    def on_train_epoch_end(self) -> None:
        self._log_train_loss()  # an epoch cut short (max_steps, a stop request) still gets its mean

    def _log_train_loss(self) -> None:
        if self._train_count:
            self.log(names.TRAIN_LOSS, self._train_loss_sum / self._train_count, on_step=False, on_epoch=True)
        self._train_loss_sum, self._train_count = torch.zeros(()), 0

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._step(batch, self.val_loss, self.val_metrics)

    def on_validation_epoch_end(self) -> None:
        self._log_epoch(names.VAL, self.val_loss, self.val_metrics)

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._step(batch, self.test_loss, self.test_metrics)

    def on_test_epoch_end(self) -> None:
        self._log_epoch(names.TEST, self.test_loss, self.test_metrics)

    def configure_optimizers(self):
        optimizer = self.make_optimizer(self.parameters())
        if self.make_scheduler is None:
            return optimizer
        scheduler = self.make_scheduler(optimizer)
        # ReduceLROnPlateau needs a metric to watch; the others ignore `monitor`.
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": names.VAL_LOSS}}
