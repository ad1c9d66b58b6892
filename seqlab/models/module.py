"""The one LightningModule: any SequenceNet, any loss, any optimizer and schedule from the config."""

from collections.abc import Callable

import lightning as L
import torch
from torchmetrics import MetricCollection

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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def pair_distance(self, x: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        """Siamese use of the one network: encode both sequences (one pass), their Euclidean distance (B,)."""
        first, second = self.net(torch.cat([x, x2])).chunk(2)
        return torch.pairwise_distance(first, second)

    def _step(self, batch: dict[str, torch.Tensor], stage: str, metrics: MetricCollection | None):
        out = self.pair_distance(batch["x"], batch["x2"]) if "x2" in batch else self.net(batch["x"])
        out, y = self.loss.align(out, batch["y"], batch.get("mask"))
        loss = self.loss(out, y)
        n = batch["y"].shape[0]
        self.log(names.metric_key(stage, "loss"), loss, on_step=False, on_epoch=True, batch_size=n)
        if metrics is not None:
            metrics.update(out.detach(), y)
            self.log_dict(metrics, on_step=False, on_epoch=True, batch_size=n)
        return loss

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self._step(batch, names.TRAIN, None)
        self.log(names.TRAIN_STEP_LOSS, loss, on_step=True, on_epoch=False, batch_size=batch["y"].shape[0])
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._step(batch, names.VAL, self.val_metrics)

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._step(batch, names.TEST, self.test_metrics)

    def configure_optimizers(self):
        optimizer = self.make_optimizer(self.parameters())
        if self.make_scheduler is None:
            return optimizer
        scheduler = self.make_scheduler(optimizer)
        # ReduceLROnPlateau needs a metric to watch; the others ignore `monitor`.
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": names.VAL_LOSS}}
