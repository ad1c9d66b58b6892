"""Lightning callbacks that time a real seqlab run from the inside and write what they saw to a JSON file.

They are added to a run through the config (`+callbacks.epoch_clock._target_=...`), so the run being
timed is the ordinary `seqlab` path, not a copy of it.
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


class EpochClock(L.Callback):
    """Seconds per training epoch, from its start to the next epoch's start (the last one: to on_train_end).

    So an epoch includes its validation and everything Lightning and the callbacks do after it, such as
    ModelCheckpoint's saves, which run after every other callback's on_train_epoch_end: a clock stopped
    there would leave out the checkpoints (7 ms an epoch on the bai2018_jsb preset). On a GPU it waits
    for the queued kernels first, as the bare loop does before reading its clock.
    """

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.seconds: list[float] = []
        self._started: float | None = None

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._lap(pl_module.device)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._lap(pl_module.device)

    def _lap(self, device: torch.device) -> None:
        synchronize(device)
        now = time.perf_counter()
        if self._started is not None:
            self.seconds.append(now - self._started)
            self.path.write_text(json.dumps({"epoch_seconds": self.seconds}))
        self._started = now


class FirstStepClock(L.Callback):
    """The wall-clock time (time.time()) at which the first training step starts."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        if trainer.global_step == 0 and batch_idx == 0:
            self.path.write_text(json.dumps({"first_step_at": time.time()}))
