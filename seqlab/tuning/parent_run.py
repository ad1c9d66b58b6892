"""A tuning sweep as one MLflow parent run: its trials and evaluation runs nest under it.

The same command run again (after Ctrl-C, a lost machine, or with a larger n_trials) continues the study,
and its runs nest under the same parent: the studies record its id.
"""

import atexit
import json
import os
import signal
import sys
import threading
from typing import Any

from omegaconf import DictConfig, OmegaConf

from seqlab import names
from seqlab.errors import USAGE_ERROR, SeqlabError
from seqlab.tracking.hydra_callbacks import ENDED_SWEEPS, SweepParentRun
from seqlab.tracking.params import redact
from seqlab.tuning.plan import Tuning, tuning_of_config

# Parent runs whose tuning got to its report: the others end FAILED (or KILLED, when stopped)
REPORTED: set[str] = set()


class TuneParentRun(SweepParentRun):
    """SweepParentRun for hydra/sweeper=tune: the parent is found again through the study when the
    command continues one, and ends FINISHED once the report is logged and every evaluation run finished
    (a failed or pruned trial is part of a search, not a failure of it)."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from seqlab.tracking.sweep import TORCH_THREADS_ENV, JobContext, say

        self.config = config
        user_threads = os.environ.get(TORCH_THREADS_ENV)
        try:
            tuning = tuning_of_config(config)
            self.parent_run_id = start_tuning_run(config, tuning)
        except SeqlabError as err:  # no run: nothing started to fail the same way
            say(f"seqlab: {redact(str(err))}", sys.stderr)
            ENDED_SWEEPS.append("FAILED")
            raise SystemExit(USAGE_ERROR) from None
        launcher = OmegaConf.to_container(config.hydra.get("launcher") or {}, resolve=False)
        assert isinstance(launcher, dict)
        at_once = tuning.options.n_jobs * len(tuning.options.search_seeds or [None])
        plain = {str(k): v for k, v in launcher.items()}
        self.job_context = JobContext(self.parent_run_id, os.getpid(), plain, at_once, user_threads)
        atexit.register(self._end)
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._stop)
            signal.signal(signal.SIGINT, self._stop)

    kind = "tuning sweep"

    def end_parent(self, config: DictConfig, parent_run_id: str) -> str:
        return end_tuning_run(config, parent_run_id)


def recorded_parent(tuning: Tuning, uri: str) -> str | None:
    """The parent run a former command of this study recorded, if the study exists."""
    from seqlab.tuning.study import PARENT_RUN_ATTR, open_storage, storage_url

    storage = open_storage(storage_url(tuning.options.storage, uri))
    for arm in tuning.plan.arms:
        try:
            study_id = storage.get_study_id_from_name(f"{tuning.name} [{arm.name}]")
        except KeyError:
            continue
        parent = storage.get_study_user_attrs(study_id).get(PARENT_RUN_ATTR)
        if parent:
            return str(parent)
    return None


def start_tuning_run(config: DictConfig, tuning: Tuning) -> str:
    """The parent run: the one the study recorded, RUNNING again, else a new one named after the sweep,
    its overrides as params. Returns its id, also put in the environment as start_sweep does."""
    from mlflow.entities import Param
    from mlflow.exceptions import MlflowException

    from seqlab.tracking.provenance import run_tags
    from seqlab.tracking.store import MAX_PARAM_LENGTH, MAX_TAG_LENGTH, open_experiment, tracking_uri
    from seqlab.tracking.sweep import PARENT_RUN_ENV, SWEEP_PID_ENV, sweep_name

    uri = tracking_uri(config.tracking.uri)
    client, experiment_id = open_experiment(uri, config.tracking.experiment)
    parent = recorded_parent(tuning, uri)
    if parent is not None:
        try:
            run = client.get_run(parent)
            if run.info.experiment_id != experiment_id or run.info.lifecycle_stage != "active":
                parent = None
        except MlflowException:
            parent = None
    if parent is not None:
        client.update_run(parent, status="RUNNING")
        client.set_tag(parent, names.SWEEP_DIR_TAG, str(config.hydra.sweep.dir))
    else:
        overrides = list(tuning.overrides)
        tags = run_tags() | {
            names.SWEEP_DIR_TAG: str(config.hydra.sweep.dir),
            names.SWEEP_KIND_TAG: names.TUNE_KIND,
            names.TUNE_STUDY_TAG: tuning.name[:MAX_TAG_LENGTH],
        }
        recorded = json.dumps([redact(o) for o in overrides])
        if len(recorded) <= MAX_TAG_LENGTH:
            tags[names.SWEEP_OVERRIDES_TAG] = recorded
        name = "tune" + sweep_name(overrides).removeprefix("sweep")
        parent = client.create_run(experiment_id, run_name=name, tags=tags).info.run_id
        params = {o.partition("=")[0].lstrip("+~"): redact(o.partition("=")[2]) for o in overrides}
        params |= {f"tune.{k}": str(v) for k, v in vars(tuning.options).items() if k != "storage"}
        batch = [Param(k, v[:MAX_PARAM_LENGTH]) for k, v in params.items()]
        for start in range(0, len(batch), 100):
            client.log_batch(parent, params=batch[start : start + 100])
    os.environ[PARENT_RUN_ENV] = parent
    os.environ[SWEEP_PID_ENV] = str(os.getpid())
    return parent


def end_tuning_run(config: DictConfig, parent_run_id: str) -> str:
    """The parent's final status: KILLED when the sweep was stopped, FAILED when it did not get to its
    report or an evaluation run did not finish (named in names.FAILED_JOBS_TAG), else FINISHED. A run of
    the sweep still RUNNING belongs to a process that was killed: it ends KILLED."""
    from seqlab.tracking.store import MAX_TAG_LENGTH, open_experiment, tracking_uri
    from seqlab.tracking.sweep import PARENT_RUN_ENV, SWEEP_PID_ENV, job_runs, say, stop_file

    os.environ.pop(PARENT_RUN_ENV, None)
    os.environ.pop(SWEEP_PID_ENV, None)
    client, experiment_id = open_experiment(tracking_uri(config.tracking.uri), config.tracking.experiment)
    runs = job_runs(client, experiment_id, parent_run_id)
    for run in runs:
        if run.info.status == "RUNNING":
            client.set_tag(run.info.run_id, names.SIGNAL_TAG, "its process was stopped with the sweep")
            client.set_terminated(run.info.run_id, "KILLED")
    evals = [r for r in runs if r.data.tags.get(names.TUNE_ROLE_TAG) == names.TUNE_EVAL]
    finished = {
        (r.data.tags.get(names.TUNE_ARM_TAG), r.data.params.get("seed"))
        for r in evals
        if r.info.status == "FINISHED"
    }
    failed = [
        f"{r.data.tags.get(names.TUNE_ARM_TAG)} seed {r.data.params.get('seed')}: {r.info.status}, "
        f"run {r.info.run_id}"
        for r in evals
        if r.info.status != "FINISHED"
        and (r.data.tags.get(names.TUNE_ARM_TAG), r.data.params.get("seed")) not in finished
    ]
    sweep_dir = config.hydra.get("sweep", {}).get("dir")
    stopped = sweep_dir is not None and stop_file(str(sweep_dir)).is_file()
    if failed:
        client.set_tag(parent_run_id, names.FAILED_JOBS_TAG, "\n".join(failed)[:MAX_TAG_LENGTH])
    status = "KILLED" if stopped else "FAILED" if failed or parent_run_id not in REPORTED else "FINISHED"
    client.set_terminated(parent_run_id, status)
    if status != "FINISHED":
        why = (
            "it was stopped"
            if stopped
            else "evaluation runs did not finish: " + "; ".join(failed)
            if failed
            else "the tuning did not get to its report"
        )
        say(
            f"seqlab: the tuning sweep's parent run {parent_run_id} is {status} ({why}). Run the same "
            "command again to continue it: finished trials are kept, trials cut short run again.",
            sys.stderr,
        )
    return status
