"""A Hydra multirun as one MLflow parent run with every job nested under it.

The parent is created in the launching process before any job starts (which also creates the store's
schema and the experiment once, so parallel jobs on one SQLite file never race to migrate or create
them); jobs learn its id from $SEQLAB_PARENT_RUN_ID, which process-based launchers (joblib) inherit.
The parent ends FINISHED only when every job's run did, FAILED otherwise, naming the jobs that did not.
"""

import os
from typing import Any

from omegaconf import DictConfig

from seqlab import names
from seqlab.tracking.params import redact
from seqlab.tracking.provenance import run_tags
from seqlab.tracking.store import MAX_PARAM_LENGTH, open_experiment, tracking_uri

PARENT_RUN_ENV = "SEQLAB_PARENT_RUN_ID"
TORCH_THREADS_ENV = "SEQLAB_TORCH_THREADS"  # threads per job in a parallel sweep (cores / n_jobs)
MAX_RUN_NAME = 240


def sweep_job_tags() -> dict[str, str]:
    """Tags that nest a job's run under its sweep's parent run; none outside a multirun."""
    parent = os.environ.get(PARENT_RUN_ENV)
    if not parent:
        return {}
    tags = {names.PARENT_RUN_TAG: parent}
    try:
        from hydra.core.hydra_config import HydraConfig

        job = HydraConfig.get()
        tags[names.JOB_NUM_TAG] = str(job.job.num)
        tags[names.JOB_OVERRIDES_TAG] = " ".join(job.overrides.task)
    except ValueError:  # not inside a Hydra job
        pass
    return tags


def sweep_jobs(overrides: list[str]) -> list[list[str]]:
    """The override list of every job the basic sweeper makes of the command line's overrides
    (the one place seqlab asks Hydra how a sweep splits into jobs: preflight checks the same jobs)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    return [job for batch in BasicSweeper.split_arguments(parse(overrides), None) for job in batch]


def parse(overrides: list[str]) -> list[Any]:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create().parse_overrides(overrides)


def threads_per_job(n_jobs: Any) -> int | None:
    """Cores shared out between parallel jobs (joblib's n_jobs: -1 is one job per core)."""
    if not isinstance(n_jobs, int) or n_jobs == 1:
        return None
    cores = os.cpu_count() or 1
    parallel = cores if n_jobs < 0 else min(n_jobs, cores)
    return max(1, cores // parallel)


def start_sweep(config: DictConfig) -> str:
    """Create the parent run (named after the sweep, its overrides as params); returns its id."""
    from mlflow.entities import Param

    overrides = [o for o in config.hydra.overrides.task]
    client, experiment_id = open_experiment(tracking_uri(config.tracking.uri), config.tracking.experiment)
    n_jobs = len(sweep_jobs(overrides))
    swept = [o.input_line for o in parse(overrides) if o.is_sweep_override()]
    name = " ".join(["sweep", *swept])  # the sweep's name: what varies (every override is a param)
    tags = run_tags() | {names.SWEEP_DIR_TAG: str(config.hydra.sweep.dir), names.SWEEP_JOBS_TAG: str(n_jobs)}
    run = client.create_run(experiment_id, run_name=redact(name)[:MAX_RUN_NAME], tags=tags)
    params = {}
    for override in overrides:
        key, _, value = override.partition("=")
        params[key.lstrip("+~")] = redact(value)
    if params:
        client.log_batch(run.info.run_id, params=[Param(k, v[:MAX_PARAM_LENGTH]) for k, v in params.items()])
    os.environ[PARENT_RUN_ENV] = run.info.run_id
    launcher = config.hydra.get("launcher") or {}
    threads = threads_per_job(launcher.get("n_jobs"))
    if threads is not None:
        os.environ.setdefault(TORCH_THREADS_ENV, str(threads))
    return run.info.run_id


def job_runs(client: Any, experiment_id: str, parent_run_id: str) -> list[Any]:
    """The runs nested under a sweep's parent run."""
    return client.search_runs(
        [experiment_id], filter_string=f"tags.`{names.PARENT_RUN_TAG}` = '{parent_run_id}'", max_results=50000
    )


def failed_jobs(config: DictConfig, children: list[Any]) -> list[str]:
    """One line per job of the sweep whose run (among `children`) is missing or did not end FINISHED."""
    by_num = {run.data.tags.get(names.JOB_NUM_TAG): run for run in children}
    failed = []
    for num, job in enumerate(sweep_jobs(list(config.hydra.overrides.task))):
        label = f"job {num} ({' '.join(job) or 'defaults'})"
        run = by_num.get(str(num))
        if run is None:
            failed.append(f"{label}: no run (it failed before training started, or never started)")
        elif run.info.status != "FINISHED":
            error = run.data.tags.get(names.ERROR_TAG) or run.data.tags.get(names.SIGNAL_TAG) or ""
            failed.append(f"{label}: {run.info.status} {error}".strip()[:500])
    return failed


def end_sweep(config: DictConfig, parent_run_id: str) -> str:
    """Give the parent its final status from its jobs' runs; returns it.

    A job run still RUNNING once the sweep is over belongs to a process that was killed before it
    could end it (joblib stops its workers on Ctrl-C or SIGTERM): it is ended here, KILLED. The parent
    is KILLED when any job was stopped by a signal, FAILED when any other did not finish.
    """
    os.environ.pop(PARENT_RUN_ENV, None)
    client, experiment_id = open_experiment(tracking_uri(config.tracking.uri), config.tracking.experiment)
    children = job_runs(client, experiment_id, parent_run_id)
    for i, run in enumerate(children):
        if run.info.status == "RUNNING":
            client.set_tag(run.info.run_id, names.SIGNAL_TAG, "its process was stopped with the sweep")
            client.set_terminated(run.info.run_id, "KILLED")
            children[i] = client.get_run(run.info.run_id)
    failed = failed_jobs(config, children)
    killed = any(names.SIGNAL_TAG in run.data.tags for run in children)
    status = "KILLED" if killed else "FAILED" if failed else "FINISHED"
    if failed:
        client.set_tag(parent_run_id, names.FAILED_JOBS_TAG, "\n".join(failed)[:5000])
        print(
            f"seqlab: the sweep's parent run {parent_run_id} is {status}; jobs that did not finish:\n  "
            + "\n  ".join(failed)
        )
    client.set_terminated(parent_run_id, status)
    return status


def settle_after_resume(client: Any, parent_run_id: str) -> str:
    """A resumed job of this sweep has finished: the parent, which the interruption left KILLED or FAILED,
    becomes FINISHED once every job of the sweep has a FINISHED run. Returns the parent's status then.
    A parent still RUNNING is the sweep's own to end (end_sweep).
    """
    parent = client.get_run(parent_run_id)
    n_jobs = parent.data.tags.get(names.SWEEP_JOBS_TAG)
    if parent.info.status in ("FINISHED", "RUNNING") or n_jobs is None:
        return parent.info.status
    children = job_runs(client, parent.info.experiment_id, parent_run_id)
    finished = {run.data.tags.get(names.JOB_NUM_TAG) for run in children if run.info.status == "FINISHED"}
    if not finished >= {str(num) for num in range(int(n_jobs))}:
        return parent.info.status
    if names.FAILED_JOBS_TAG in parent.data.tags:
        client.delete_tag(parent_run_id, names.FAILED_JOBS_TAG)
    client.set_terminated(parent_run_id, "FINISHED")
    print(f"seqlab: every job of sweep {parent_run_id} has now finished; its parent run is FINISHED")
    return "FINISHED"
