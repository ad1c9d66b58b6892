"""A Lightning logger that writes metrics into an MLflow run seqlab owns, without blocking a step."""

import logging
import queue
import threading
import time
from collections import defaultdict
from typing import Any, ClassVar

from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities import rank_zero_only
from mlflow import MlflowClient
from mlflow.entities import Metric

from seqlab.tracking.spool import Spool
from seqlab.tracking.store import MAX_METRICS_PER_BATCH

log = logging.getLogger(__name__)
RETRY_EVERY_S = 2.0  # while the store does not answer, how often the sender tries the oldest batch again


class MlflowMetricLogger(Logger):
    """Metrics only: params, tags, artifacts and the run's status belong to `seqlab.tracking.run`.

    Unlike Lightning's MLFlowLogger it never ends the run (Lightning would mark an interrupted run
    FAILED, where seqlab marks it KILLED). A step only puts its metrics on a queue; a sender thread
    writes them in order. When the store fails (a tracking server down, a locked SQLite file), the
    batches it could not take stay queued and are kept in the spool on disk, and the sender tries
    again every few seconds, so an outage loses nothing and never stops training.

    The sender writes at most once every `send_every_s`: with log_every_n_steps=1 a write per step
    would have the store (a server sharing the machine, or SQLite) and the sender's own Python compete
    with training for the CPU and the GIL. `flush` cuts the wait short. A subclass may set other values
    of `send_every_s` and `poll_s`.
    """

    send_every_s: ClassVar[float] = 1.0  # what arrives meanwhile goes in the same request
    poll_s: ClassVar[float] = 0.02  # how often `flush` looks whether the sender is done

    def __init__(self, client: MlflowClient, run_id: str, spool: Spool | None = None) -> None:
        super().__init__()
        self.client, self.run_id, self.spool = client, run_id, spool
        self.history: dict[str, list[tuple[int, float]]] = defaultdict(
            list
        )  # (step, value) of every metric logged
        self.store_error: str | None = None  # the last failure while the store is not answering
        self._queue: queue.Queue[list[Metric]] = queue.Queue()
        self._unsent: list[list[Metric]] = []  # owned by the sender thread, oldest first
        self._spooled = False
        self._hurry = threading.Event()  # set by flush: send what is queued now, without the pause
        self._sender = threading.Thread(target=self._send_forever, name="seqlab-metrics", daemon=True)
        self._sender.start()

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
        batch = [
            Metric(key, float(value), now, step or 0) for key, value in metrics.items() if key != "epoch"
        ]
        for metric in batch:
            self.history[metric.key].append((metric.step, metric.value))
        if batch:
            self._queue.put(batch)

    def _send_forever(self) -> None:
        while True:
            try:
                self._take(self._queue.get(timeout=RETRY_EVERY_S if self._unsent else None))
            except queue.Empty:
                pass  # nothing new: try the unsent again
            else:
                while True:  # whatever else is queued goes in the same request: fewer writes, less GIL
                    try:
                        self._take(self._queue.get_nowait())
                    except queue.Empty:
                        break
            sent_at = time.monotonic()
            self._send_unsent()
            if self._hurry.wait(max(0.0, self.send_every_s - (time.monotonic() - sent_at))):
                self._hurry.clear()

    def _take(self, batch: list[Metric]) -> None:
        self._unsent.append(batch)
        self._queue.task_done()

    def _send_unsent(self) -> None:
        while self._unsent:
            n, size = 0, 0  # the oldest batches that fit in one request (at least one)
            while n < len(self._unsent) and (n == 0 or size + len(self._unsent[n]) <= MAX_METRICS_PER_BATCH):
                size += len(self._unsent[n])
                n += 1
            try:
                self.client.log_batch(self.run_id, metrics=[m for batch in self._unsent[:n] for m in batch])
            except Exception as exc:  # any store failure: keep the batch, try again later
                if self.store_error is None:
                    log.warning(
                        "seqlab: the tracking store did not take metrics (%s); keeping them and retrying", exc
                    )
                self.store_error = f"{type(exc).__name__}: {exc}"
                if self.spool is not None:
                    self.spool.save_metrics(self._unsent)
                    self._spooled = True
                return
            del self._unsent[:n]
            if self.store_error is not None:
                log.warning("seqlab: the tracking store answers again; sending the metrics kept meanwhile")
                self.store_error = None
        if self._spooled and self.spool is not None:
            self.spool.save_metrics([])
            self._spooled = False

    def pending(self) -> int:
        """Metric batches logged but not yet written."""
        return self._queue.unfinished_tasks + len(self._unsent)

    def flush(self, wait_s: float | None = None) -> bool:
        """Wait until every metric is written (True), or until wait_s passed with some unsent (False)."""
        deadline = None if wait_s is None else time.monotonic() + wait_s
        while self.pending():
            self._hurry.set()
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(self.poll_s)
        return True

    @rank_zero_only
    def finalize(self, status: str) -> None:
        pass  # the run's owner flushes, with a deadline, once training and testing are over

    def keep_unsent_on_disk(self) -> int:
        """Give up waiting: write every unsent batch to the spool; returns how many there were.

        A batch the sender manages to write meanwhile may be kept too; uploading it again is harmless
        (MLflow stores a metric value once per key, step and timestamp).
        """
        while True:
            try:
                self._take(self._queue.get_nowait())
            except queue.Empty:
                break
        unsent = list(self._unsent)
        if self.spool is not None:
            self.spool.save_metrics(unsent)
        return len(unsent)
