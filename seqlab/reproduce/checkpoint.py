"""Checkpoints and their MLflow run know each other, so a resume continues the run it belongs to; and
checkpoints are written off the training thread."""

from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import AsyncCheckpointIO
from mlflow import MlflowClient

from seqlab import names


def last_checkpoint_folder(trainer: L.Trainer) -> str | None:
    """The folder of callbacks.last_checkpoint (the ModelCheckpoint named last), wherever the user points it.

    Not trainer.checkpoint_callback's (the best one, first in the config): the two folders may differ.
    Nor a save_last callback's: since Lightning 2.6 its last.ckpt is the last *best* epoch, and a resume
    from there would log the epochs after it twice. None when no callback writes last.ckpt every epoch.
    """
    stem = Path(names.LAST_CHECKPOINT).stem
    folders = [
        c.dirpath
        for c in trainer.checkpoint_callbacks
        if isinstance(c, ModelCheckpoint) and c.filename == stem and c.dirpath
    ]
    return str(folders[0]) if folders else None


class RunCheckpointLink(L.Callback):
    """Store the run id in every checkpoint and the folder of last.ckpt in a tag of the run."""

    def __init__(self, client: MlflowClient, run_id: str) -> None:
        self.client, self.run_id = client, run_id

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        folder = last_checkpoint_folder(trainer)
        if folder is not None:
            self.client.set_tag(self.run_id, names.CHECKPOINT_DIR, folder)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        checkpoint[names.CHECKPOINT_RUN_ID] = self.run_id


class BackgroundCheckpointIO(AsyncCheckpointIO):
    """Checkpoints written by one background thread, so an epoch does not wait on the disk.

    Lightning's AsyncCheckpointIO copies the tensors on the training thread before queueing the write
    (the file holds the state at save time). Checkpoint removal is queued behind the writes too:
    upstream removes at once, so when writes lag (fast epochs, a slow disk) ModelCheckpoint could delete
    an old best file before its write ran, and the write would then leave it behind. Writes finish
    before fit returns, on success and on error alike (Lightning's teardown), so testing the best
    checkpoint, a resume and the run's artifacts always see whole files.

    It uses AsyncCheckpointIO's executor and error slot (`_ensure_setup`, `_executor`, `_error`, Lightning
    2.6, pinned in constraints.txt); tests/test_reproducibility.py fails if an upgrade changes them.
    """

    def remove_checkpoint(self, path: str | Path) -> None:
        self._ensure_setup()
        assert self._executor is not None

        def remove() -> None:
            try:
                super(BackgroundCheckpointIO, self).remove_checkpoint(path)
            except BaseException as ex:  # raised on the next save or at teardown, as a failed write is
                self._error = ex

        self._executor.submit(remove)
