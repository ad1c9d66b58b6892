"""Hydra callbacks: a sweep as a parent run; say where the runs went once a run or a sweep ends."""

import atexit
import time
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from seqlab import names


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
        from seqlab.tracking.run import open_experiment, resolve_tracking_uri, ui_command  # MLflow: heavy

        uri = resolve_tracking_uri(config.tracking.uri)
        try:
            client, experiment_id = open_experiment(uri, config.tracking.experiment)
            runs = client.search_runs(
                [experiment_id], filter_string=f"attributes.start_time >= {self.started_ms}", order_by=["start_time ASC"]
            )
        except Exception as exc:  # reporting must never turn a finished job into a failure
            print(f"seqlab: could not list the runs in {uri}: {exc}")
            return
        lines = [f"\nseqlab: {len(runs)} run(s) in MLflow experiment '{config.tracking.experiment}':"]
        for run in runs:
            m = run.data.metrics
            losses = "  ".join(f"{k}={m[k]:.4g}" for k in (names.VAL_LOSS, names.TEST_LOSS) if k in m)
            lines.append(f"  {run.info.run_name:<24} {run.info.status:<9} {losses}  (run id {run.info.run_id})")
        lines.append(f"Open them side by side with:\n  {ui_command(uri)}")
        sweeps = [r.info.run_id for r in runs if names.SWEEP_JOBS_TAG in r.data.tags]
        if sweeps:
            lines.append(f"Compare the sweep's configurations over seeds with:\n  seqlab-compare {sweeps[-1]}")
        print("\n".join(lines))


class SweepParentRun(Callback):
    """One MLflow parent run per multirun, created before the first job and ended after the last.

    Hydra's sweepers raise at the end of a batch in which a job failed, so on_multirun_end never
    comes: the parent is then ended at interpreter exit, FAILED and naming the jobs that failed.
    """

    def __init__(self) -> None:
        self.parent_run_id: str | None = None
        self.config: DictConfig | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from seqlab.tracking.sweep import start_sweep  # MLflow: heavy

        self.config = config
        self.parent_run_id = start_sweep(config)
        atexit.register(self._end)

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
