"""The baseline seqlab's machinery is measured against: a hand-written PyTorch loop, no Lightning, no MLflow.

It trains the very same network, data, batch order, loss and optimizer as the seqlab run of `cfg`
(both come from `seqlab.train.build`, which also sets torch's deterministic mode for both), on the same
device (trainer.accelerator), so the time difference is what Lightning, Hydra and MLflow cost.
tests/test_bare_loop.py checks the two end with equal weights.
"""

import itertools
import math
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import torch
from omegaconf import DictConfig

from benchmarks.clocks import synchronize
from seqlab.config import CUDA_ACCELERATORS
from seqlab.errors import ConfigError
from seqlab.tasks.batching import EpochBatchSampler
from seqlab.train import build


def limited(batches: Iterable, limit: int | float) -> Iterator:
    """The first `limit` batches when it is an int, as Lightning's limit_*_batches; all of them otherwise."""
    return itertools.islice(batches, limit if isinstance(limit, int) else None)


def training_device(cfg: DictConfig) -> torch.device:
    """The device Lightning trains `cfg` on (a seqlab run uses one), which the bare loop must use too."""
    accelerator = cfg.trainer.accelerator
    if accelerator in CUDA_ACCELERATORS or (accelerator == "auto" and torch.cuda.is_available()):
        return torch.device("cuda", 0)
    if accelerator == "cpu" or (accelerator == "auto" and not torch.backends.mps.is_available()):
        return torch.device("cpu")
    raise ConfigError(
        f"the bare loop trains on the CPU or a CUDA GPU, as Lightning does for trainer.accelerator="
        f"cpu, gpu, cuda or auto; trainer.accelerator={accelerator} would train elsewhere "
        f"(on this machine: {'mps' if accelerator == 'auto' else accelerator}), so the two would not compare."
    )


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """A batch moved as Lightning's batch_to_device moves it (non-blocking to a GPU); on the CPU as it is."""
    if device.type == "cpu":
        return batch
    return {key: value.to(device, non_blocking=True) for key, value in batch.items()}


def train_step(
    net: torch.nn.Module,
    loss: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: dict[str, torch.Tensor],
    clip: float | None,
) -> torch.Tensor:
    """One hand-written training step, as Lightning's automatic optimization takes it for seqlab."""
    mask = batch.get("mask")
    value = loss(*loss.align(net(batch["x"], mask), batch["y"], mask))
    optimizer.zero_grad(set_to_none=True)
    value.backward()
    if clip:
        torch.nn.utils.clip_grad_norm_(net.parameters(), clip)
    optimizer.step()
    return value


class BareLoop:
    """The hand-written loop, one epoch (the training batches, then validation) per call of `epoch`.

    An object rather than one function so that the overhead benchmark can run its epochs in turn with a
    seqlab run's (`benchmarks.lockstep`); `train_bare` runs them back to back.

    With `checkpoint_dir`, each epoch also ends as a hand-written loop that can resume would: the model
    and optimizer state saved to last.pt, and to best.pt when the validation loss improved, with
    torch.save on the training thread. seqlab saves the same two each epoch (callbacks.last_checkpoint
    and model_checkpoint), so this is its like-for-like baseline. The save time is kept apart, so one
    run times the loop both with and without its saves: two runs would differ by more than the saves
    take on a noisy machine.
    """

    def __init__(self, cfg: DictConfig, checkpoint_dir: Path | None = None) -> None:
        task, module = build(cfg)
        self.device = training_device(cfg)
        module.to(self.device)  # the loss too: a loss with weights holds them as buffers
        self.net, self.loss = module.net, module.loss
        self.optimizer = module.make_optimizer(self.net.parameters())
        self.train_split, self.val_split = task.splits["train"], task.splits["val"]
        # the index batches of seqlab's own loaders (same order, same length bucketing), indexed by hand
        self.train_batches: EpochBatchSampler = task.train_dataloader().sampler
        self.val_batches: EpochBatchSampler = task.val_dataloader().sampler
        self.train_limit, self.val_limit = cfg.trainer.limit_train_batches, cfg.trainer.limit_val_batches
        self.clip = cfg.trainer.gradient_clip_val
        self.checkpoint_dir = checkpoint_dir
        if checkpoint_dir is not None:
            checkpoint_dir.mkdir(parents=True, exist_ok=True)
        self.seconds: list[float] = []  # each epoch's, checkpoint saves included
        self.saving: list[
            float
        ] = []  # of each epoch's seconds, those spent saving (0 without checkpoint_dir)
        self.validating: list[float] = []  # of each epoch's seconds, those spent validating
        self.steps = 0  # training steps an epoch
        self.best = math.inf

    def epoch(self) -> None:
        """Train and validate one epoch (then save, with a checkpoint_dir), timing it into `seconds`."""
        net, loss, device = self.net, self.loss, self.device
        started = time.perf_counter()
        self.train_batches.set_epoch(len(self.seconds))
        net.train()
        steps = 0
        for index in limited(self.train_batches, self.train_limit):
            train_step(net, loss, self.optimizer, to_device(self.train_split[index], device), self.clip)
            steps += 1
        self.steps = steps
        validation_started = time.perf_counter()
        net.eval()
        total, count = (
            0.0,
            0,
        )  # the validation loss, summed as seqlab's val/loss (a tensor: no sync per batch)
        with torch.inference_mode():
            for index in limited(self.val_batches, self.val_limit):
                batch = to_device(self.val_split[index], device)
                mask = batch.get("mask")
                n = batch["y"].shape[0]
                total = total + loss(*loss.align(net(batch["x"], mask), batch["y"], mask)) * n
                count += n
        synchronize(device)
        save_started = time.perf_counter()
        if self.checkpoint_dir is not None:
            state = {
                "epoch": len(self.seconds),
                "model": net.state_dict(),
                "optimizer": self.optimizer.state_dict(),
            }
            torch.save(state, self.checkpoint_dir / "last.pt")
            if (val_loss := float(total) / max(count, 1)) < self.best:
                self.best = val_loss
                torch.save(state, self.checkpoint_dir / "best.pt")
        synchronize(device)
        ended = time.perf_counter()
        self.seconds.append(ended - started)
        self.validating.append(save_started - validation_started)
        self.saving.append(ended - save_started if self.checkpoint_dir is not None else 0.0)


def train_bare(cfg: DictConfig, checkpoint_dir: Path | None = None) -> BareLoop:
    """Train for cfg.trainer.max_epochs epochs, back to back (see BareLoop); the loop holds the timings."""
    loop = BareLoop(cfg, checkpoint_dir)
    for _ in range(cfg.trainer.max_epochs):
        loop.epoch()
    return loop
