"""Hydra callbacks: a sweep as a parent run; say where the runs went once a run or a sweep ends."""

import atexit
import contextlib
import signal
import threading
import time
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from seqlab import names

STOP_JOBS_WAIT_S = 20.0


class WhereRunsAre(Callback):
    """Print the runs this command logged, with their status and losses, and how to open them."""

    def __init__(self) -> None:
        self.started_ms = int(time.time() * 1000)

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.started_ms = int(time.time() * 1000)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.started_ms = int(time.time() * 1000)

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._report(config)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._report(config)

    def _report(self, config: DictConfig) -> None:
        from seqlab.tracking.store import as_typed, open_experiment, tracking_uri, ui_command

        uri = tracking_uri(config.tracking.uri)
        try:
            client, experiment_id = open_experiment(uri, config.tracking.experiment)
            runs = client.search_runs(
                [experiment_id],
                filter_string=f"attributes.start_time >= {self.started_ms}",
                order_by=["start_time ASC"],
            )
        except Exception as exc:  # reporting must never turn a finished job into a failure
            print(f"seqlab: could not list the runs in {uri}: {exc}")
            return
        lines = [f"\nseqlab: {len(runs)} run(s) in MLflow experiment '{config.tracking.experiment}':"]
        for run in runs:
            m = run.data.metrics
            losses = "  ".join(f"{k}={m[k]:.4g}" for k in (names.VAL_LOSS, names.TEST_LOSS) if k in m)
            lines.append(
                f"  {run.info.run_name:<24} {run.info.status:<9} {losses}  (run id {run.info.run_id})"
            )
        lines.append(f"Open them side by side with:\n  {ui_command(uri)}")
        sweeps = [r.info.run_id for r in runs if names.SWEEP_JOBS_TAG in r.data.tags]
        if sweeps:
            compare = f"{as_typed('seqlab-compare')} {sweeps[-1]}"
            lines.append(f"Compare the sweep's configurations over seeds with:\n  {compare}")
        print("\n".join(lines))


class SweepParentRun(Callback):
    """One MLflow parent run per multirun, created before the first job and ended after the last.

    Hydra's sweepers raise at the end of a batch in which a job failed, so on_multirun_end never
    comes: the parent is then ended at interpreter exit, FAILED and naming the jobs that failed.

    SIGTERM to the launching process (a scheduler stopping the sweep) is passed on to the job
    processes (joblib's workers), which end their runs KILLED, and then stops the sweep like Ctrl-C;
    Python's default would end the process without ending the parent run.
    """

    def __init__(self) -> None:
        self.parent_run_id: str | None = None
        self.config: DictConfig | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from seqlab.tracking.sweep import start_sweep  # MLflow: heavy

        self.config = config
        self.parent_run_id = start_sweep(config)
        atexit.register(self._end)
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, _stop_sweep)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._end()

    def _end(self) -> None:
        parent, self.parent_run_id = self.parent_run_id, None
        if parent is None or self.config is None:
            return
        from seqlab.tracking.sweep import end_sweep

        try:
            end_sweep(self.config, parent)
        except Exception as exc:  # never hide the sweep's own outcome behind this one
            print(f"seqlab: could not end the sweep's parent run {parent}: {exc}")


def _stop_sweep(signum: int, frame: Any) -> None:
    """SIGTERM in the launching process: pass it on to the job processes, then stop like Ctrl-C."""
    import psutil  # an MLflow dependency (its system metrics)

    children = psutil.Process().children(recursive=True)
    for child in children:
        with contextlib.suppress(psutil.Error):
            child.send_signal(signal.SIGTERM)
    # Time for each job to stop at its next batch and end its run KILLED (seqlab waits <= 10 s for the
    # store then); a job's run still RUNNING after this is ended by the parent (end_sweep).
    psutil.wait_procs(children, timeout=STOP_JOBS_WAIT_S)
    raise KeyboardInterrupt
