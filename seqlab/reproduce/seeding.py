"""Randomness as a function of (seed, epoch, batch), so a resumed epoch replays exactly.

The batch order already is (tasks/batching.py); this reseeds the global generators that dropout and
anything else random draw from before every training batch. Reseeding at the epoch start is not
enough: Lightning creates the DataLoader iterator (which draws a base seed from the global generator)
at different moments in a fresh and in a resumed run; right before the batch nothing else intervenes.
"""

import math
import random

import lightning as L
import numpy as np
import torch


def batch_seed(seed: int, epoch: int, batch_idx: int) -> int:
    """A well-mixed 32-bit seed: nearby (seed, epoch, batch) give unrelated streams."""
    return int(np.random.SeedSequence([seed, epoch, batch_idx]).generate_state(1)[0])


class BatchReseed(L.Callback):
    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._epoch_seeds: tuple[int, list[int]] = (-1, [])  # (epoch, the seed of each of its batches)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # The epoch's seeds in one go: SeedSequence is several times slower called between two training
        # steps (caches cold after the step) than called in a row.
        epoch, batches = trainer.current_epoch, trainer.num_training_batches
        self._epoch_seeds = (
            epoch,
            [batch_seed(self.seed, epoch, b) for b in range(int(batches))] if math.isfinite(batches) else [],
        )

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int
    ) -> None:
        epoch, seeds = self._epoch_seeds
        if epoch == trainer.current_epoch and batch_idx < len(seeds):
            value = seeds[batch_idx]
        else:  # a loader of unknown length
            value = batch_seed(self.seed, trainer.current_epoch, batch_idx)
        random.seed(value)
        np.random.seed(value)
        # The CPU generator directly: torch.manual_seed would also queue lazy CUDA/XPU/MTIA seeding,
        # recording a stack trace each call, a cost paid on every batch.
        torch.default_generator.manual_seed(value)
        if torch.cuda.is_initialized():
            torch.cuda.manual_seed_all(value)
