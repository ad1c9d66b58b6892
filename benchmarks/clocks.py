"""Clocks that time a real seqlab run from the inside.

FirstStepClock is added to a run through the config (`+callbacks.first_step._target_=...`), so the run
being timed is the ordinary `seqlab` path, not a copy of it; it writes what it saw to a JSON file.
"""

import json
import time
from pathlib import Path

import lightning as L
import torch


def synchronize(device: torch.device) -> None:
    """Wait for the GPU's queued work, so that a clock read after it times the work, not its queueing."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class FirstStepClock(L.Callback):
    """The wall-clock time (time.time()) at which the first training step starts."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int
    ) -> None:
        if trainer.global_step == 0 and batch_idx == 0:
            self.path.write_text(json.dumps({"first_step_at": time.time()}))
