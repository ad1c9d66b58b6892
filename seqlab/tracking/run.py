"""One MLflow run per training job, owned from creation to its final status.

The run ends FINISHED on success, FAILED on an exception (the error kept as a tag), KILLED on Ctrl-C,
SIGTERM or SIGUSR2; it is never left RUNNING.
"""

import functools
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Param, RunTag
from omegaconf import DictConfig, OmegaConf

from seqlab import names
from seqlab.errors import SeqlabError, TrackingError
from seqlab.tracking.logger import RETRY_EVERY_S, MlflowMetricLogger
from seqlab.tracking.params import leaves, redact, redact_config
from seqlab.tracking.provenance import run_tags
from seqlab.tracking.spool import SPOOL_DIRNAME, Spool
from seqlab.tracking.store import (
    MAX_PARAMS_PER_BATCH,
    MAX_TAG_LENGTH,
    as_typed,
    open_experiment,
    tracking_uri,
)
from seqlab.tracking.sweep import (
    PARENT_RUN_ENV,
    in_job_process,
    paragraph,
    resume_command,
    say,
    settle_after_resume,
    sweep_job_tags,
)

log = logging.getLogger(__name__)

SYSTEM_METRICS_EVERY_S = 5


class JobStoppedError(SeqlabError):
    """A sweep job running in a process of its own was stopped by a signal: its run is KILLED, and the
    launcher, which gets this as the job's failure, goes on collecting the other jobs."""


# SIGUSR2: what SLURM sends a submitit job before its time limit or on preemption (submitit's default).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR2)


class _Interrupts:
    """Records Ctrl-C, SIGTERM and SIGUSR2 so the run can be marked KILLED rather than FAILED.

    Inside trainer.fit Lightning chains its own SIGTERM handler before this one and stops at the next
    batch boundary (so a checkpoint is never cut half-written), SIGUSR2 going the same way; outside fit,
    they interrupt at once. While the run lasts these handlers stand in for submitit's, which would
    requeue a job from its start in a new run: a stopped job's run is resumed from its last checkpoint.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in STOP_SIGNALS:
            self._previous[signum] = signal.getsignal(signum)
            signal.signal(signum, self._handle)

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame: Any) -> None:
        self.signum = self.signum or signum  # the first signal names the stop
        lightning = signal.getsignal(signal.SIGTERM)
        if signum != signal.SIGINT and lightning != self._handle:
            # Lightning's handler is installed on top of ours and stops training gracefully
            if signum != signal.SIGTERM and callable(lightning):
                lightning(signal.SIGTERM, frame)
            return
        raise KeyboardInterrupt

    def raise_if_interrupted(self) -> None:
        """Ctrl-C again, where a safe point of training can take it: a KeyboardInterrupt raised while
        Python runs a finalizer (a database connection being cleaned up) is printed and dropped, and
        training would go on as if nothing happened."""
        if self.signum == signal.SIGINT:
            raise KeyboardInterrupt


@dataclass
class TrackedRun:
    client: MlflowClient
    run_id: str
    logger: MlflowMetricLogger
    artifacts: list[tuple[Path, str | None]] = field(default_factory=list)
    interrupts: _Interrupts = field(default_factory=_Interrupts)

    def log_metrics(self, metrics: dict[str, float]) -> None:
        self.logger.log_metrics(metrics)

    def log_artifact(self, local_path: Path | str, artifact_path: str | None = None) -> None:
        """Add a file (as <artifact_path>/<name>) or a folder (its contents as <artifact_path>/) to the run.

        Sent when the run ends, after its metrics, so a tracking server that is down meanwhile costs
        nothing; if it never comes back the files are kept in the run's spool for `seqlab-upload`.
        """
        self.artifacts.append((Path(local_path), artifact_path))


def run_params(cfg: DictConfig, extra: dict[str, Any]) -> dict[str, str]:
    """The experiment's choices: the resolved config flattened with dotted keys, credentials redacted,
    plus seqlab's own params; without paths (run_path_tags) and without unset (None) values."""
    return _params_and_paths(cfg, extra)[0]


def run_path_tags(cfg: DictConfig) -> dict[str, str]:
    """The config's paths as tags (names.PATH_TAG_PREFIX + key): where the run wrote and read, kept
    beside the run but out of its params."""
    return _params_and_paths(cfg, {})[1]


def _params_and_paths(cfg: DictConfig, extra: dict[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    plain = redact_config(OmegaConf.to_container(cfg, resolve=True))
    plain["tracking"]["uri"] = redact(tracking_uri(cfg.tracking.uri))  # the store actually used
    params: dict[str, str] = {}
    paths: dict[str, str] = {}
    for key, value in leaves(plain).items():
        if value is None:  # unset: "None" in every run would only lengthen the params diff
            continue
        text = str(value)
        if _writes_there(key):  # differs between every two runs, says nothing about the experiment
            paths[f"{names.PATH_TAG_PREFIX}{key}"] = text[:MAX_TAG_LENGTH]
        elif isinstance(value, str) and os.path.isabs(value):
            # an input file or folder: the full path is this machine's, its name still tells runs apart
            paths[f"{names.PATH_TAG_PREFIX}{key}"] = text[:MAX_TAG_LENGTH]
            params[key] = Path(value).name or text
        else:
            params[key] = text
    return params | {k: str(v) for k, v in extra.items() if v is not None}, paths


def _writes_there(key: str) -> bool:
    """A config key naming a folder the run writes: paths.*, trainer.default_root_dir, a callback's
    dirpath, any *_dir."""
    last = key.rpartition(".")[2]
    return key.startswith("paths.") or last == "dirpath" or last.endswith("_dir")


def _say_how_to_resume(run_id: str, run_name: str, signum: int, uri: str) -> None:
    """A lone run was stopped: its id and the command that continues it (a sweep job leaves this to the
    sweep, which says it once for all its jobs)."""
    if os.environ.get(PARENT_RUN_ENV):
        return
    say(
        paragraph(
            f"seqlab: run {run_id} ({run_name}) was stopped by {signal.Signals(signum).name} and is KILLED. "
            "Continue it from its last checkpoint with:",
            resume_command(run_id, uri),
        ),
        sys.stderr,
    )


@contextmanager
def tracked_run(
    cfg: DictConfig,
    run_name: str,
    extra_params: dict[str, Any],
    extra_tags: dict[str, str] | None = None,
    reopen_run_id: str | None = None,
) -> Iterator[TrackedRun]:
    """Create the run, log its params, tags and config, and give it a final status whatever happens.

    extra_tags are set at creation. reopen_run_id continues an existing run instead (a resume): it is
    set RUNNING again, its params and config stay as first logged. Inside a multirun a new run is
    nested under the sweep's parent run (seqlab.tracking.sweep).
    """
    uri = tracking_uri(cfg.tracking.uri)
    client, experiment_id = open_experiment(uri, cfg.tracking.experiment)
    sweep_parent = None  # a resumed sweep job's parent run: settled once the job finishes
    if reopen_run_id is None:
        run = client.create_run(
            experiment_id, run_name=run_name, tags=run_tags() | sweep_job_tags() | (extra_tags or {})
        )
        run_id = run.info.run_id
    else:
        run_id = reopen_run_id
        client.update_run(run_id, status="RUNNING")
        for key, value in (extra_tags or {}).items():
            client.set_tag(run_id, key, value)
        previous_tags = client.get_run(run_id).data.tags
        sweep_parent = previous_tags.get(names.PARENT_RUN_TAG)
        # Why it stopped last time no longer holds (seqlab.resumed keeps the history); left in place, a run
        # that then finishes would still show as stopped by a signal or an error.
        for stale in {names.SIGNAL_TAG, names.ERROR_TAG} & set(previous_tags):
            client.delete_tag(run_id, stale)
    spool = Spool(Path(cfg.paths.output_dir) / SPOOL_DIRNAME, run_id)
    tracked = TrackedRun(client, run_id, MlflowMetricLogger(client, run_id, spool))
    monitor = start_system_metrics(run_id, uri) if cfg.tracking.get("system_metrics") else None
    interrupts = tracked.interrupts
    interrupts.install()
    status, end_tags, failing = "FAILED", {}, True
    try:
        if reopen_run_id is None:
            choices, paths = _params_and_paths(cfg, extra_params)
            params = [Param(k, v) for k, v in choices.items()]
            for i in range(0, len(params), MAX_PARAMS_PER_BATCH):
                client.log_batch(run_id, params=params[i : i + MAX_PARAMS_PER_BATCH])
            client.log_batch(run_id, tags=[RunTag(k, v) for k, v in paths.items()])
            config_yaml = OmegaConf.to_yaml(redact_config(OmegaConf.to_container(cfg, resolve=True)))
            client.log_text(run_id, config_yaml, "config.yaml")
        yield tracked
        status, failing = "FINISHED", False
    except BaseException as exc:
        if interrupts.signum is not None or isinstance(exc, KeyboardInterrupt):
            status = "KILLED"
            signum = interrupts.signum or signal.SIGINT
            end_tags[names.SIGNAL_TAG] = signal.Signals(signum).name
            if in_job_process():
                raise JobStoppedError(
                    f"stopped by {signal.Signals(signum).name}: the run ({run_name}) is KILLED, and the "
                    "sweep's end says how to finish it"
                ) from exc
            raise SystemExit(128 + signum) from exc
        if isinstance(exc, SystemExit) and exc.code in (0, None):
            status, failing = "FINISHED", False
            raise
        end_tags[names.ERROR_TAG] = redact(f"{type(exc).__name__}: {exc}")[:MAX_TAG_LENGTH]
        raise
    finally:
        interrupts.restore()
        if monitor is not None:
            monitor.finish()
        wait_s = float(cfg.tracking.get("outage_wait_s", 120.0))
        finish_run(
            tracked,
            spool,
            uri,
            status,
            end_tags,
            wait_s if status != "KILLED" else min(wait_s, 10.0),
            failing,
        )
        if status == "KILLED":
            _say_how_to_resume(run_id, run_name, interrupts.signum or signal.SIGINT, uri)
        if sweep_parent and status == "FINISHED":  # the last stopped job of a sweep may be done now
            settle_after_resume(client, sweep_parent)


def start_system_metrics(run_id: str, uri: str) -> Any:
    """MLflow's system metrics (system/cpu_utilization_percentage, system/system_memory_usage_megabytes,
    ...)."""
    try:
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        monitor = SystemMetricsMonitor(run_id, sampling_interval=SYSTEM_METRICS_EVERY_S, tracking_uri=uri)
        monitor.start()
        return monitor
    except Exception as exc:  # psutil missing, no /proc: the run goes on without them
        log.warning("seqlab: no system metrics for this run (%s)", exc)
        return None


def _deliver(send: Callable[[], Any], deadline: float) -> None:
    """Call `send` until it succeeds or the deadline passes (then its last error propagates)."""
    while True:
        try:
            send()
            return
        except Exception:
            if time.monotonic() + RETRY_EVERY_S >= deadline:
                raise
            time.sleep(RETRY_EVERY_S)


def _send_artifact(client: MlflowClient, run_id: str, local_path: Path, artifact_path: str | None) -> None:
    if local_path.is_dir():
        client.log_artifacts(run_id, str(local_path), artifact_path)
    else:
        client.log_artifact(run_id, str(local_path), artifact_path)


def finish_run(
    run: TrackedRun, spool: Spool, uri: str, status: str, tags: dict[str, str], wait_s: float, failing: bool
) -> None:
    """Send what is left (metrics, artifacts, tags) and the final status, waiting up to wait_s for a
    store that stopped answering; what it still cannot take is kept in the spool with a message."""
    client, run_id, logger = run.client, run.run_id, run.logger
    deadline = time.monotonic() + wait_s
    if not logger.flush(wait_s=1.0):
        log.warning(
            "seqlab: the tracking store %s is not answering (%s); waiting up to %.0f s "
            "(tracking.outage_wait_s) for it, the metrics meanwhile kept in %s",
            redact(uri),
            logger.store_error,
            wait_s,
            spool.directory,
        )
    artifacts = list(run.artifacts)
    try:
        if not logger.flush(wait_s=max(0.0, deadline - time.monotonic())):
            raise TimeoutError(logger.store_error or "metrics not written in time")
        while artifacts:
            local_path, artifact_path = artifacts[0]
            _deliver(functools.partial(_send_artifact, client, run_id, local_path, artifact_path), deadline)
            artifacts.pop(0)
        _deliver(
            lambda: tags and client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()]), deadline
        )
        _deliver(lambda: client.set_terminated(run_id, status), deadline)
        spool.remove_if_empty()
        return
    except Exception as exc:
        problem = f"{type(exc).__name__}: {exc}"
    n_batches = logger.keep_unsent_on_disk()
    for local_path, artifact_path in artifacts:
        spool.keep_artifact(local_path, artifact_path)
    spool.save_run(status, tags | {names.SPOOL_TAG: str(spool.directory)})
    message = (
        f"The MLflow tracking store {redact(uri)} did not take run {run_id} within "
        f"tracking.outage_wait_s={wait_s:g} s ({redact(problem)}). Nothing is lost: {n_batches} metric "
        f"batch(es), {len(artifacts)} artifact(s) and the final status {status} are kept in "
        f"{spool.directory}. When the server is back, upload them with: {as_typed('seqlab-upload')} "
        f"{spool.directory} --tracking-uri {redact(uri)}"
    )
    if failing:  # an error is already on its way out: add this one to the log, do not replace it
        log.error("seqlab: %s", message)
        return
    raise TrackingError(message)
