"""One MLflow run per training job, owned from creation to its final status.

The run ends FINISHED on success, FAILED on an exception (the error kept as a tag), KILLED on Ctrl-C
or SIGTERM; it is never left RUNNING.
"""

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Param, RunTag
from mlflow.exceptions import MlflowException
from omegaconf import DictConfig, OmegaConf

import seqlab
from seqlab import names
from seqlab.errors import TrackingError
from seqlab.tracking.logger import MlflowMetricLogger
from seqlab.tracking.params import flatten, redact, redact_config
from seqlab.tracking.provenance import git_state

MAX_PARAMS_PER_BATCH = 100  # MLflow's limit for one log_batch request
MAX_TAG_LENGTH = 5000


def resolve_tracking_uri(uri: str | None) -> str:
    """tracking.uri, else $MLFLOW_TRACKING_URI, else the SQLite file outputs/mlflow.db under the cwd."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI")
    return uri or f"sqlite:///{Path.cwd() / 'outputs' / 'mlflow.db'}"


def sqlite_path(uri: str) -> Path | None:
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None


def ui_command(uri: str) -> str:
    """The command that opens this store in the MLflow UI, with a path relative to the cwd when it can."""
    db = sqlite_path(uri)
    if db is not None:
        try:
            uri = f"sqlite:///{db.resolve().relative_to(Path.cwd())}"
        except ValueError:
            pass
        return f"mlflow ui --backend-store-uri {uri}"
    return f"open {redact(uri)} in a browser"


def open_experiment(uri: str, experiment: str) -> tuple[MlflowClient, str]:
    """The client and id of `experiment`, created if missing (artifacts beside a SQLite store)."""
    db = sqlite_path(uri)
    artifact_location = None
    if db is not None:
        db.parent.mkdir(parents=True, exist_ok=True)
        artifact_location = (db.resolve().parent / "mlartifacts").as_uri()
    client = MlflowClient(uri)
    try:
        found = client.get_experiment_by_name(experiment)
        if found is not None:
            return client, found.experiment_id
        try:
            return client, client.create_experiment(experiment, artifact_location=artifact_location)
        except MlflowException:  # created meanwhile by a parallel job
            found = client.get_experiment_by_name(experiment)
            if found is None:
                raise
            return client, found.experiment_id
    except MlflowException as exc:
        raise TrackingError(
            f"Cannot use the MLflow tracking store {redact(uri)} (tracking.uri): {exc}. "
            "Check tracking.uri / MLFLOW_TRACKING_URI and that the store is reachable and writable."
        ) from exc


class _Interrupts:
    """Records Ctrl-C and SIGTERM so the run can be marked KILLED rather than FAILED.

    Inside trainer.fit Lightning chains its own SIGTERM handler before this one and stops at the next
    batch boundary (so a checkpoint is never cut half-written); outside fit, SIGTERM interrupts at once.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.getsignal(signum)
            signal.signal(signum, self._handle)

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame: Any) -> None:
        self.signum = signum
        if signum == signal.SIGTERM and signal.getsignal(signal.SIGTERM) != self._handle:
            return  # Lightning's handler is installed on top of ours and stops training gracefully
        raise KeyboardInterrupt


@dataclass
class TrackedRun:
    client: MlflowClient
    run_id: str
    logger: MlflowMetricLogger

    def log_metrics(self, metrics: dict[str, float]) -> None:
        self.logger.log_metrics(metrics)


def run_params(cfg: DictConfig, extra: dict[str, Any]) -> dict[str, str]:
    """The resolved config flattened with dotted keys, credentials redacted, plus seqlab's own params."""
    plain = redact_config(OmegaConf.to_container(cfg, resolve=True))
    plain["tracking"]["uri"] = redact(resolve_tracking_uri(cfg.tracking.uri))  # the store actually used
    return flatten(plain) | {k: str(v) for k, v in extra.items()}


def run_tags() -> dict[str, str]:
    commit, dirty = git_state()
    tags = {
        names.GIT_COMMIT: commit,
        names.GIT_DIRTY: "unknown" if dirty is None else str(dirty).lower(),
        names.SEQLAB_VERSION: seqlab.__version__,
    }
    if dirty is not None:
        tags["mlflow.source.git.commit"] = commit  # shown by the MLflow UI
    return tags


@contextmanager
def tracked_run(
    cfg: DictConfig,
    run_name: str,
    extra_params: dict[str, Any],
    extra_tags: dict[str, str] | None = None,
    reopen_run_id: str | None = None,
) -> Iterator[TrackedRun]:
    """Create the run, log its params, tags and config, and give it a final status whatever happens.

    extra_tags are set at creation (provenance, rerun_of). reopen_run_id continues an existing run
    instead (a resume): it is set RUNNING again, its params and config stay as first logged.
    """
    uri = resolve_tracking_uri(cfg.tracking.uri)
    client, experiment_id = open_experiment(uri, cfg.tracking.experiment)
    if reopen_run_id is None:
        run = client.create_run(experiment_id, run_name=run_name, tags=run_tags() | (extra_tags or {}))
        run_id = run.info.run_id
    else:
        run_id = reopen_run_id
        client.update_run(run_id, status="RUNNING")
        for key, value in (extra_tags or {}).items():
            client.set_tag(run_id, key, value)
    logger = MlflowMetricLogger(client, run_id)
    interrupts = _Interrupts()
    interrupts.install()
    status = "FAILED"
    try:
        if reopen_run_id is None:
            params = [Param(k, v) for k, v in run_params(cfg, extra_params).items()]
            for i in range(0, len(params), MAX_PARAMS_PER_BATCH):
                client.log_batch(run_id, params=params[i : i + MAX_PARAMS_PER_BATCH])
            config_yaml = OmegaConf.to_yaml(redact_config(OmegaConf.to_container(cfg, resolve=True)))
            client.log_text(run_id, config_yaml, "config.yaml")
        yield TrackedRun(client, run_id, logger)
        status = "FINISHED"
    except BaseException as exc:
        if interrupts.signum is not None or isinstance(exc, KeyboardInterrupt):
            status = "KILLED"
            signum = interrupts.signum or signal.SIGINT
            client.set_tag(run_id, names.SIGNAL_TAG, signal.Signals(signum).name)
            raise SystemExit(128 + signum) from exc
        if isinstance(exc, SystemExit) and exc.code in (0, None):
            status = "FINISHED"
            raise
        message = redact(f"{type(exc).__name__}: {exc}")[:MAX_TAG_LENGTH]
        client.set_tag(run_id, names.ERROR_TAG, message)
        raise
    finally:
        interrupts.restore()
        try:
            logger.flush()
        finally:
            client.set_terminated(run_id, status)
