"""A Lightning logger that writes metrics into an MLflow run seqlab owns, without blocking a step."""

import time
from typing import Any

from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities import rank_zero_only
from mlflow import MlflowClient
from mlflow.entities import Metric


class MlflowMetricLogger(Logger):
    """Metrics only: params, tags, artifacts and the run's status belong to `seqlab.tracking.run`.

    Unlike Lightning's MLFlowLogger it never ends the run (Lightning would mark an interrupted run
    FAILED, where seqlab marks it KILLED), and it logs asynchronously: MLflow queues the batch and a
    background thread writes it, so a training step never waits on the store or the network.
    """

    def __init__(self, client: MlflowClient, run_id: str) -> None:
        super().__init__()
        self.client, self.run_id = client, run_id
        self._pending: list[Any] = []

    @property
    def name(self) -> str:
        return "mlflow"

    @property
    def version(self) -> str:
        return self.run_id

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass  # the resolved config is logged once, flattened, when the run is created

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        now = int(time.time() * 1000)
        batch = [Metric(key, float(value), now, step or 0) for key, value in metrics.items() if key != "epoch"]
        if batch:
            self._pending.append(self.client.log_batch(self.run_id, metrics=batch, synchronous=False))

    def flush(self) -> None:
        """Wait until every queued metric is written."""
        pending, self._pending = self._pending, []
        for operation in pending:
            operation.wait()

    @rank_zero_only
    def finalize(self, status: str) -> None:
        self.flush()
