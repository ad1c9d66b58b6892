"""Checkpoints and their MLflow run know each other, so a resume continues the run it belongs to; and
checkpoints are written off the training thread."""

import io
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import fsspec
import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO
from mlflow import MlflowClient

from seqlab import names


def last_checkpoint_folder(trainer: L.Trainer) -> str | None:
    """The folder of callbacks.last_checkpoint (the ModelCheckpoint named last), wherever the user points it.

    Not trainer.checkpoint_callback's (the best one, first in the config): the two folders may differ.
    Nor a save_last callback's: since Lightning 2.6 its last.ckpt is the last *best* epoch, and a resume
    from there would log the epochs after it twice. None when no callback writes last.ckpt every epoch.
    """
    stem = Path(names.LAST_CHECKPOINT).stem
    folders = [c.dirpath for c in trainer.checkpoint_callbacks
               if isinstance(c, ModelCheckpoint) and c.filename == stem and c.dirpath]
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


class BackgroundCheckpointIO(TorchCheckpointIO):
    """Checkpoints serialized on the training thread and written to disk by one background thread, so an
    epoch does not wait on the disk.

    The training thread pickles the checkpoint into memory, as Lightning's own TorchCheckpointIO does
    before it writes: those bytes are the state at save time (the next optimizer step cannot change
    them), and the writer thread only writes bytes, which does not hold the GIL. Lightning's
    AsyncCheckpointIO clones the tensors instead and pickles in its thread, where the pickling and the
    training thread take the GIL from each other: saving best and last and waiting for both took longer
    that way than this (`seqlab-bench overhead`, "until written"). On a GPU the tensors come to the host
    here, on the training thread: a few ms for seqlab's models.

    Removals are queued behind the writes: ModelCheckpoint saves a new best and then removes the old one,
    and removing at once (as AsyncCheckpointIO does) could delete a file whose write had not run yet and
    so leave it behind. Writes finish before fit returns, on success and on error alike (Lightning's
    teardown), so testing the best checkpoint, a resume and the run's artifacts always see whole files.
    A failed write is raised on the training thread at the next save or at teardown.
    """

    def __init__(self) -> None:
        self._writer: ThreadPoolExecutor | None = None
        self._error: BaseException | None = None

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options (it writes with fsspec's defaults).")
        self._raise_failed_write()
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        self._queue(self.write, buffer, path)

    def write(self, buffer: io.BytesIO, path: str | Path) -> None:
        """Put a serialized checkpoint in its file, whole or not at all (a transaction: a temporary file
        moved into place, as Lightning's own writes)."""
        fs, urlpath = fsspec.core.url_to_fs(str(path))
        fs.makedirs(os.path.dirname(urlpath), exist_ok=True)
        with fs.transaction, fs.open(urlpath, "wb") as file:
            file.write(buffer.getbuffer())

    def remove_checkpoint(self, path: str | Path) -> None:
        self._queue(super().remove_checkpoint, path)

    def wait(self) -> None:
        """Block until every write and removal queued so far is done (the one writer takes them in order).

        For the overhead benchmark, which charges seqlab's background writes to seqlab's own epoch.
        """
        if self._writer is not None:
            self._writer.submit(lambda: None).result()

    def teardown(self) -> None:
        """Called by Lightning when fit, validate or test ends: every queued write is done after it."""
        if self._writer is not None:
            self._writer.shutdown(wait=True)
            self._writer = None
        self._raise_failed_write()

    def _queue(self, work: Callable[..., None], *args: Any) -> None:
        def run() -> None:
            try:
                work(*args)
            except BaseException as ex:  # raised on the training thread: at the next save or at teardown
                self._error = ex

        if self._writer is None:  # made here, not in __init__: teardown ends it after every fit and test
            self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="seqlab-checkpoints")
        self._writer.submit(run)

    def _raise_failed_write(self) -> None:
        error, self._error = self._error, None
        if error is not None:
            raise error
