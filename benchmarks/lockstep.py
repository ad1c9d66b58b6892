"""A Lightning run and the bare loop taking turns epoch by epoch in one process: how the overhead
benchmark pairs them.

On the 2-core VM seqlab is developed on, the machine's speed drifts by 10-30% over seconds (the bare
loop's epochs alone move that much), several times the 5% the benchmark is to resolve. Whole runs
taking turns put the two sides tens of seconds apart, and one trial's ratio moved by 0.13-0.62. Here
epoch k of the run and epoch k of the bare loop run back to back, so that each pair of epochs sees
one speed of the machine, and the benchmark reports the median of the pairs' ratios with a 95%
interval (`median_interval`), from which it can say whether 5% is met, missed or not resolved.
"""

import math
import statistics
import time

import lightning as L

from benchmarks.bare_loop import BareLoop
from benchmarks.clocks import synchronize
from benchmarks.harness import DrainableCheckpointIO
from seqlab.reproduce.checkpoint import BackgroundCheckpointIO
from seqlab.tracking.logger import MlflowMetricLogger

TARGET = 0.05  # seqlab within 5% of its baseline (the overhead and logging benchmarks)


class HeldMetricLogger(MlflowMetricLogger):
    """The run's metric logger while it takes turns with the bare loop: its sender writes when the
    hand-over between epochs flushes it, and that flush, on the run's clock, looks often."""

    send_every_s = 3600.0
    poll_s = 0.0005


class Lockstep(L.Callback):
    """Times each training epoch of the run it is added to and runs one epoch of `bare` beside it: after
    it, or before it with `bare_first`, so that trials can take both orders.

    An epoch runs from its start to the next epoch's start (the last one: to on_train_end), so it
    includes its validation and all that Lightning and the callbacks do after it, such as ModelCheckpoint's
    saves, which run after every other callback's on_train_epoch_end: a clock stopped there would leave out
    the checkpoints.

    seqlab's background work is charged to seqlab's epoch: before the clock stops, the checkpoint
    writer's queued writes are waited for (the run's config names DrainableCheckpointIO in its place,
    as `bench_config` composes it), and the metric sender, held otherwise, writes what is queued once
    a second of the run's own time has gone by since it last wrote, as it does in a normal run (the
    run's logger is a HeldMetricLogger while the run takes turns: the same object and queue, its class
    swapped for that subclass, and back once the run ends). Left alone, either would run during the
    bare loop's epoch, take the CPU from it and be charged to it. Done on the clock, they no longer
    overlap seqlab's next epoch, so the ratio errs against seqlab if anything.

    It also times each epoch's validation, from on_validation_start to its own on_validation_end (so
    what callbacks before it do there, such as a ModelCheckpoint's save, counts too): the benchmark
    splits Lightning alone's cost (no other callbacks) into validation and the training steps with it.
    """

    def __init__(self, bare: BareLoop, bare_first: bool = False) -> None:
        self.bare, self.bare_first = bare, bare_first
        self.seconds: list[float] = []  # the run's epochs
        self.validating: list[float] = []  # of each, the seconds spent validating
        self._validation_started = 0.0
        self._started: float | None = None
        self._since_write = 0.0  # seconds of the run's own time since the metric sender last wrote
        self._send_every_s: float | None = None  # the run's own pace, while its logger is held
        self._logger_class: type[MlflowMetricLogger] = MlflowMetricLogger

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        io = trainer.strategy.checkpoint_io
        if isinstance(io, BackgroundCheckpointIO) and not isinstance(io, DrainableCheckpointIO):
            raise RuntimeError(
                "Lockstep cannot wait for seqlab's background checkpoint writes, whose time would "
                "fall in the bare loop's epoch: compose the config with benchmarks.harness.bench_config "
                "(or pass it through benchmarks.harness.drainable_checkpoints)."
            )
        logger = trainer.logger
        if isinstance(logger, MlflowMetricLogger):
            self._send_every_s, self._logger_class = logger.send_every_s, type(logger)
            logger.__class__ = HeldMetricLogger

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._lap(trainer, pl_module)
        if self.bare_first:
            self.bare.epoch()
        self._started = time.perf_counter()

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._validation_started = time.perf_counter()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            synchronize(pl_module.device)
            self.validating.append(time.perf_counter() - self._validation_started)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._lap(trainer, pl_module)
        self._release(trainer)

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        self._release(trainer)

    def _lap(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """End the run's epoch (its background work included), then, unless it went first, the bare one."""
        if self._started is None:
            return
        io = trainer.strategy.checkpoint_io
        if isinstance(io, DrainableCheckpointIO):
            io.wait()
        logger = trainer.logger
        if self._send_every_s is not None and isinstance(logger, MlflowMetricLogger):
            self._since_write += time.perf_counter() - self._started
            if self._since_write >= self._send_every_s:
                logger.flush()
                self._since_write = 0.0
        synchronize(pl_module.device)
        self.seconds.append(time.perf_counter() - self._started)
        self._started = None
        if not self.bare_first:
            self.bare.epoch()

    def _release(self, trainer: L.Trainer) -> None:
        logger = trainer.logger
        if self._send_every_s is not None and isinstance(logger, MlflowMetricLogger):
            logger.__class__ = self._logger_class
            logger.flush(
                wait_s=0
            )  # wakes the held sender if anything is queued; the run's owner flushes the rest
        self._send_every_s = None


def median_interval(
    values: list[float], confidence: float = 0.95
) -> tuple[float, tuple[float, float] | None]:
    """The median of `values` and a distribution-free interval for it (the sign test's, from order
    statistics): no assumption about how the machine's noise is shaped, only that pairs are independent.
    None in place of the interval when there are too few values for one (fewer than 6 for 95%)."""
    ordered, n = sorted(values), len(values)
    # the largest k with P(Binomial(n, 1/2) < k) <= (1 - confidence) / 2: [x_k, x_(n+1-k)], 1-based
    k, below = 0, 0.0
    while k < n and below + math.comb(n, k) / 2**n <= (1 - confidence) / 2:
        below += math.comb(n, k) / 2**n
        k += 1
    return statistics.median(ordered), ((ordered[k - 1], ordered[n - k]) if k else None)


def verdict(interval: tuple[float, float] | None) -> str:
    """The 95% interval of a ratio, and what it says about the target."""
    if interval is None:
        return "too few pairs for a 95% interval (6 at least)"
    low, high = interval
    if high <= 1 + TARGET:
        says = f"within {TARGET:.0%}"
    elif low > 1 + TARGET:
        says = f"over {TARGET:.0%}"
    else:
        says = (
            f"not resolved: the interval holds {1 + TARGET:.2f} "
            "(this machine's noise is larger than what is measured)"
        )
    return f"95% interval {low:.3f}-{high:.3f}: {says}"
