"""Randomness as a function of (seed, epoch), so a resumed epoch replays exactly.

The batch order already is (tasks/batching.py); this reseeds the global generators that dropout and
anything else random draw from at every epoch start, so epoch k sees the same random numbers whether
the run got there in one go or was resumed from epoch k-1's checkpoint.
"""

import random

import lightning as L
import numpy as np
import torch


def epoch_seed(seed: int, epoch: int) -> int:
    """A well-mixed 32-bit seed for (seed, epoch): nearby pairs give unrelated streams."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


class EpochReseed(L.Callback):
    def __init__(self, seed: int) -> None:
        self.seed = seed

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        value = epoch_seed(self.seed, trainer.current_epoch)
        random.seed(value)
        np.random.seed(value)
        torch.manual_seed(value)
