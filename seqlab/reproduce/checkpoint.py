"""Checkpoints and their MLflow run know each other, so a resume continues the run it belongs to."""

import lightning as L
from mlflow import MlflowClient

from seqlab import names


class RunCheckpointLink(L.Callback):
    """Store the run id in every checkpoint and the checkpoint folder in a tag of the run."""

    def __init__(self, client: MlflowClient, run_id: str) -> None:
        self.client, self.run_id = client, run_id

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        checkpoint = trainer.checkpoint_callback
        if checkpoint is not None and getattr(checkpoint, "dirpath", None):
            self.client.set_tag(self.run_id, names.CHECKPOINT_DIR, str(checkpoint.dirpath))

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        checkpoint[names.CHECKPOINT_RUN_ID] = self.run_id
