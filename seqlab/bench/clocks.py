"""Lightning callbacks that time a real seqlab run from the inside and write what they saw to a JSON file.

They are added to a run through the config (`+callbacks.epoch_clock._target_=...`), so the run being
timed is the ordinary `seqlab` path, not a copy of it.
"""

import json
import time
from pathlib import Path

import lightning as L


class EpochClock(L.Callback):
    """Seconds per training epoch, validation included (Lightning validates before on_train_epoch_end)."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.seconds: list[float] = []
        self._started = 0.0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._started = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.seconds.append(time.perf_counter() - self._started)
        self.path.write_text(json.dumps({"epoch_seconds": self.seconds}))


class FirstStepClock(L.Callback):
    """The wall-clock time (time.time()) at which the first training step starts."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        if trainer.global_step == 0 and batch_idx == 0:
            self.path.write_text(json.dumps({"first_step_at": time.time()}))
