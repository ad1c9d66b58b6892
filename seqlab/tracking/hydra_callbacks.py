"""Hydra callbacks: a sweep as a parent run; say where the runs went once a run or a sweep ends."""

import atexit
import contextlib
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from seqlab import names
from seqlab.tracking.params import redact

# A stopped sweep exits well within the 10 s a container runtime gives between SIGTERM and SIGKILL.
STOP_JOBS_WAIT_S = 5.0
STOP_POLL_S = 0.25


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
        from seqlab.tracking.sweep import say

        uri = tracking_uri(config.tracking.uri)
        try:
            client, experiment_id = open_experiment(uri, config.tracking.experiment)
            # Started by this command, or ended by it: a resumed run (and a resumed sweep's parent) started
            # long before; MLflow's search has no OR, so the two sets are merged here.
            runs = {
                run.info.run_id: run
                for since in ("start_time", "end_time")
                for run in client.search_runs(
                    [experiment_id], filter_string=f"attributes.{since} >= {self.started_ms}"
                )
            }
        except Exception as exc:  # reporting must never turn a finished job into a failure
            say(redact(f"seqlab: could not list the runs in {uri}: {exc}"))
            return
        ordered = sorted(runs.values(), key=lambda run: run.info.start_time or 0)
        lines = [f"\nseqlab: {len(ordered)} run(s) in MLflow experiment '{config.tracking.experiment}':"]
        for run in ordered:
            m = run.data.metrics
            losses = "  ".join(f"{k}={m[k]:.4g}" for k in (names.VAL_LOSS, names.TEST_LOSS) if k in m)
            lines.append(
                f"  {run.info.run_name:<24} {run.info.status:<9} {losses}  (run id {run.info.run_id})"
            )
        lines.append(f"Open them side by side with:\n  {ui_command(uri, experiment_id)}")
        sweeps = [r.info.run_id for r in ordered if names.SWEEP_JOBS_TAG in r.data.tags]
        if sweeps:
            compare = f"{as_typed('seqlab-compare')} {sweeps[-1]}"
            lines.append(f"Compare the sweep's configurations over seeds with:\n  {compare}")
        say(redact("\n".join(lines)))


# The final status of each sweep this process ended: the entry point's exit status follows it
ENDED_SWEEPS: list[str] = []


class SweepParentRun(Callback):
    """One MLflow parent run per multirun, created before the first job and ended after the last.

    Hydra's sweepers raise at the end of a batch in which a job failed, so on_multirun_end never
    comes: the parent is then ended at interpreter exit, FAILED and naming the jobs that failed.

    A job stopped on its own (SIGTERM or SIGUSR2 to a submitit job: SLURM's scancel or preemption) ends its
    run KILLED and its job as failed; the launcher collects the other jobs and the parent ends KILLED,
    naming it.

    SIGTERM or SIGINT to the launching process (a scheduler, Ctrl-C) stops the sweep: no job starts after
    it (a stop file in the sweep folder, which every job checks as it starts), SIGTERM is passed on to the
    job processes (joblib's workers), which end their runs KILLED at their next batch, and the process
    exits in seconds with the parent KILLED and one paragraph saying how to finish the sweep.
    """

    def __init__(self) -> None:
        self.parent_run_id: str | None = None
        self.config: DictConfig | None = None
        self.stopping = False
        # Set before the launcher sends the jobs out: Hydra pickles this callback with each job that runs in
        # a process of its own, so every job learns the sweep from it, whatever environment it starts in.
        self.job_context: Any = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from seqlab.errors import USAGE_ERROR, SeqlabError
        from seqlab.tracking.sweep import TORCH_THREADS_ENV, job_context, say, start_sweep  # MLflow: heavy

        self.config = config
        user_threads = os.environ.get(TORCH_THREADS_ENV)
        try:
            self.parent_run_id = start_sweep(config)
        except SeqlabError as err:  # no store, no sweep: not one job started to fail the same way
            say(f"seqlab: {redact(str(err))}", sys.stderr)
            ENDED_SWEEPS.append("FAILED")
            raise SystemExit(USAGE_ERROR) from None
        self.job_context = job_context(config, self.parent_run_id, user_threads)
        atexit.register(self._end)
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._stop)
            signal.signal(signal.SIGINT, self._stop)

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        from seqlab.tracking.sweep import join_sweep, stop_file

        if self.job_context is None:
            return
        join_sweep(self.job_context)
        stop = stop_file(str(config.hydra.sweep.dir))
        if stop.exists():  # a job the launcher handed out before the sweep was stopped
            raise SystemExit(128 + _signum(stop))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._end()

    def _end(self) -> None:
        parent, self.parent_run_id = self.parent_run_id, None
        if parent is None or self.config is None:
            return
        from seqlab.tracking.sweep import say

        try:
            ENDED_SWEEPS.append(self.end_parent(self.config, parent))
        except Exception as exc:  # never hide the sweep's own outcome behind this one
            ENDED_SWEEPS.append("FAILED")
            say(redact(f"seqlab: could not end the {self.kind}'s parent run {parent}: {exc}"), sys.stderr)

    kind = "sweep"  # what the messages call it

    def end_parent(self, config: DictConfig, parent_run_id: str) -> str:
        """End the parent run with its final status, which it returns."""
        from seqlab.tracking.sweep import end_sweep

        return end_sweep(config, parent_run_id)

    def _stop(self, signum: int, frame: Any) -> None:
        """Stop the sweep: no new job, the running ones told to stop and given a few seconds to end their
        runs, then out (SystemExit, not KeyboardInterrupt: the stop is expected, no traceback)."""
        if self.stopping or self.config is None:
            return  # a second signal while stopping: the first one's stop goes on
        self.stopping = True
        import psutil  # an MLflow dependency (its system metrics)

        from seqlab.tracking.sweep import stop_file, stop_jobs_elsewhere

        with contextlib.suppress(OSError):
            stop = stop_file(str(self.config.hydra.sweep.dir))
            stop.parent.mkdir(parents=True, exist_ok=True)
            stop.write_text(str(signum))
        # Ray's tasks are cancelled through Ray (its own processes, children here too, are Ray's to stop)
        elsewhere = stop_jobs_elsewhere(signum)
        jobs = [] if elsewhere else psutil.Process().children(recursive=True)
        if signum == signal.SIGTERM:  # Ctrl-C reaches the job processes from the terminal itself
            for job in jobs:
                with contextlib.suppress(psutil.Error):
                    job.send_signal(signal.SIGTERM)
        if (jobs or elsewhere) and self.parent_run_id is not None:
            self._wait_for_job_runs(self.parent_run_id)
        raise SystemExit(128 + signum)

    def _wait_for_job_runs(self, parent_run_id: str) -> None:
        """Until no job run of the sweep is RUNNING, at most STOP_JOBS_WAIT_S: each job stops at its next
        batch and ends its run KILLED; one still RUNNING after this is ended by the parent (end_sweep)."""
        from seqlab.tracking.store import open_experiment, tracking_uri

        assert self.config is not None
        deadline = time.monotonic() + STOP_JOBS_WAIT_S
        with contextlib.suppress(Exception):  # a store that does not answer: the deadline stands
            client, experiment_id = open_experiment(
                tracking_uri(self.config.tracking.uri), self.config.tracking.experiment
            )
            running = f"tags.`{names.PARENT_RUN_TAG}` = '{parent_run_id}' AND attributes.status = 'RUNNING'"
            while time.monotonic() < deadline and client.search_runs([experiment_id], running):
                time.sleep(STOP_POLL_S)


def _signum(stop: Path) -> int:
    """The signal that stopped the sweep, as its stop file says."""
    with contextlib.suppress(OSError, ValueError):
        return int(stop.read_text())
    return int(signal.SIGTERM)
