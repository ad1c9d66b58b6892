"""A Hydra multirun as one MLflow parent run with every job nested under it.

The parent is created in the launching process before any job starts (which also creates the store's
schema and the experiment once, so parallel jobs on one SQLite file never race to migrate or create
them). Jobs learn its id, and their share of the cores, from a JobContext that travels inside each job
(Hydra pickles its callbacks with the job for joblib's workers and for submitit's local and SLURM jobs,
whose environment is the scheduler's, not the launching process's); join_sweep puts it in the job's
environment ($SEQLAB_PARENT_RUN_ID, $SEQLAB_TORCH_THREADS).
The parent ends FINISHED only when every job's run did, FAILED otherwise, naming the jobs that did not,
KILLED when the sweep was stopped; `seqlab resume=<parent run id>` (resume_sweep) finishes such a sweep.
Every line printed here goes through `say`: a reader that went away (`| tee` stopped with Ctrl-C) must
not keep a run from its final status, so runs are ended first and printed about after.
"""

import contextlib
import json
import logging
import os
import sys
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from omegaconf import DictConfig, open_dict
from omegaconf.errors import OmegaConfBaseException

from seqlab import names
from seqlab.errors import TrackingError
from seqlab.tracking.params import redact
from seqlab.tracking.provenance import run_tags
from seqlab.tracking.server import check_reachable
from seqlab.tracking.store import (
    MAX_PARAM_LENGTH,
    MAX_TAG_LENGTH,
    as_typed,
    open_experiment,
    tracking_uri,
)

log = logging.getLogger(__name__)

PARENT_RUN_ENV = "SEQLAB_PARENT_RUN_ID"
TORCH_THREADS_ENV = "SEQLAB_TORCH_THREADS"  # threads per job in a parallel sweep (threads_per_job)
# The process that runs the sweep: a job stopped in it stops the sweep, a job stopped in a process of its own
# (a joblib worker, a submitit job) ends alone and the launcher goes on collecting the others.
SWEEP_PID_ENV = "SEQLAB_SWEEP_PID"
SLURM_CPUS_ENV = "SLURM_CPUS_PER_TASK"  # set by SLURM in a job that asked for --cpus-per-task
SUBMITIT_LOCAL = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher"
RAY_LAUNCHER = "hydra_plugins.seqlab_ray_launcher.ray_launcher.RayLauncher"
MAX_RUN_NAME = 240
MAX_NAME_VALUE = 24  # a longer override value is shortened in the sweep's name (a path to its file name)
STOP_FILE = ".seqlab-stopped"  # in the sweep folder once the sweep is stopped: no job starts after it
PARAGRAPH_WIDTH = 110


def say(text: str, stream: TextIO | None = None) -> None:
    """Print `text` for the user, never raising: once the reader is gone (BrokenPipeError) the stream is
    pointed at /dev/null, so neither this nor the interpreter's last flush fails again."""
    stream = stream or sys.stdout
    try:
        print(text, file=stream, flush=True)
    except (OSError, ValueError):  # a broken pipe, or a stream already closed
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, stream.fileno())
            os.close(devnull)


def paragraph(text: str, command: str | None = None, head: str = "") -> str:
    """One paragraph: `head` on its own line (whole, so it can be searched for), `text` wrapped, and a
    command on a line of its own so it copies whole."""
    body = textwrap.fill(
        text,
        PARAGRAPH_WIDTH,
        initial_indent="  " if head else "",
        subsequent_indent="  ",
        break_long_words=False,
        break_on_hyphens=False,
    )
    body = f"{head}\n{body}" if head else body
    return f"{body}\n    {command}" if command else body


def resume_command(run_id: str, uri: str) -> str:
    """`seqlab resume=<id>`, with the store when it is not the one seqlab uses by default from here."""
    store = "" if uri == tracking_uri(None) else f" tracking.uri={redact(uri)}"
    return f"{as_typed('seqlab')} resume={run_id}{store}"


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
    except (
        ValueError,
        OmegaConfBaseException,
    ):  # not inside a Hydra multirun job (resume_sweep tags its own)
        pass
    return tags


def sweep_overrides(config: DictConfig) -> list[str]:
    """The overrides a multirun sweeps over, as Hydra's basic sweeper puts them together: the preset's
    `hydra.sweeper.params` (an experiment's cells and seeds), then the command line's."""
    params = config.hydra.get("sweeper", {}).get("params") or {}
    return [f"{key}={value}" for key, value in params.items()] + list(config.hydra.overrides.task)


def sweep_jobs(overrides: list[str]) -> list[list[str]]:
    """The override list of every job the basic sweeper makes of the command line's overrides
    (the one place seqlab asks Hydra how a sweep splits into jobs: preflight checks the same jobs)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    return [job for batch in BasicSweeper.split_arguments(parse(overrides), None) for job in batch]


def parse(overrides: list[str]) -> list[Any]:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create().parse_overrides(overrides)


def threads_per_job(
    launcher: Mapping[str, Any],
    n_jobs: int,
    environ: Mapping[str, str] | None = None,
    cores: int | None = None,
) -> int | None:
    """Torch threads for each job of a sweep: the cores a job is given, so jobs running side by side do not
    fight over them. Inside a SLURM allocation its cores are SLURM_CPUS_PER_TASK, else this machine's
    (those this process may run on). A launcher's cpus_per_task (submitit) is what each job gets; else the
    cores are shared out between the jobs that run at once: joblib's n_jobs (-1: one per core), every job of
    the sweep with submitit_local. A Ray task's num_cpus (hydra.launcher.ray.remote, 1 unless given) is what
    Ray reserves for each job, and Ray runs no more jobs at once than it has CPUs for. None where jobs run
    one after another on the whole machine (the basic launcher outside SLURM): torch's own default then.
    `launcher` is the config's hydra.launcher, `n_jobs` the number of jobs in the sweep."""
    environ = os.environ if environ is None else environ
    allotted = environ.get(SLURM_CPUS_ENV)
    if allotted:
        cores = int(allotted)
    elif cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    cpus = launcher.get("cpus_per_task")
    if launcher.get("_target_") == RAY_LAUNCHER:  # a Ray task gets the CPUs it asks for, one by default
        cpus = ((launcher.get("ray") or {}).get("remote") or {}).get("num_cpus") or 1
    if cpus:
        return max(1, min(int(float(cpus)), cores))
    parallel = 1
    joblib_jobs = launcher.get("n_jobs")
    if isinstance(joblib_jobs, int) and joblib_jobs != 1:
        parallel = min(cores if joblib_jobs < 0 else joblib_jobs, n_jobs)
    elif launcher.get("_target_") == SUBMITIT_LOCAL:
        parallel = n_jobs  # submitit_local starts every job at once
    if parallel <= 1:
        return cores if allotted else None
    return max(1, cores // min(parallel, cores))


@dataclass(frozen=True)
class JobContext:
    """What each job of a sweep needs from the process that started the sweep. It is carried inside the job
    (as SweepParentRun's state, which Hydra pickles with the job), never through the environment, which
    a scheduler need not pass on (sbatch --export=NONE, a submitit job started later)."""

    parent_run_id: str
    sweep_pid: int
    launcher: dict[str, Any]
    n_jobs: int
    user_threads: str | None  # $SEQLAB_TORCH_THREADS as the user set it: it wins over threads_per_job


def job_context(config: DictConfig, parent_run_id: str, user_threads: str | None) -> JobContext:
    from omegaconf import OmegaConf

    launcher = OmegaConf.to_container(config.hydra.get("launcher") or {}, resolve=False)
    assert isinstance(launcher, dict)
    n_jobs = len(sweep_jobs(sweep_overrides(config)))
    plain = {str(key): value for key, value in launcher.items()}
    return JobContext(parent_run_id, os.getpid(), plain, n_jobs, user_threads)


def join_sweep(context: JobContext) -> None:
    """In a job, wherever it runs: nest its run under the parent and give torch the job's share of the
    cores (decided here, where SLURM says what the job was given)."""
    os.environ[PARENT_RUN_ENV] = context.parent_run_id
    os.environ[SWEEP_PID_ENV] = str(context.sweep_pid)
    threads = context.user_threads or threads_per_job(context.launcher, context.n_jobs)
    if threads:
        os.environ[TORCH_THREADS_ENV] = str(threads)
    else:
        os.environ.pop(TORCH_THREADS_ENV, None)


# How to stop jobs that are not this process's children to signal (Ray's tasks, here or on a cluster): their
# launcher sets it while they run, and a stopped sweep calls it instead of signalling its child processes.
_job_stopper: Callable[[int], None] | None = None


def set_job_stopper(stop: Callable[[int], None] | None) -> None:
    global _job_stopper
    _job_stopper = stop


def stop_jobs_elsewhere(signum: int) -> bool:
    """Tell the jobs their launcher runs out of reach of this process's signals to stop (the sweep was
    stopped by `signum`); whether there is such a launcher."""
    if _job_stopper is None:
        return False
    _job_stopper(signum)
    return True


def end_lost_job(config: DictConfig, parent_run_id: str, job_num: int, why: str) -> None:
    """A job whose process died without ending its run (a Ray worker killed): its run, still RUNNING, ends
    KILLED saying so, and the sweep's end names it with the command that resumes it."""
    client, experiment_id = open_experiment(tracking_uri(config.tracking.uri), config.tracking.experiment)
    for run in job_runs(client, experiment_id, parent_run_id):
        if run.info.status == "RUNNING" and run.data.tags.get(names.JOB_NUM_TAG) == str(job_num):
            client.set_tag(run.info.run_id, names.SIGNAL_TAG, why[:MAX_TAG_LENGTH])
            client.set_terminated(run.info.run_id, "KILLED")


def in_job_process() -> bool:
    """Whether this process runs one job of a sweep started by another process."""
    sweep_pid = os.environ.get(SWEEP_PID_ENV)
    return bool(os.environ.get(PARENT_RUN_ENV)) and bool(sweep_pid) and sweep_pid != str(os.getpid())


def sweep_name(overrides: list[str]) -> str:
    """What tells two sweeps apart: what varies, then what is fixed, credentials redacted. Keys shorten to
    their last part where that is unambiguous (max_epochs=8), long values to their end (a path to its file
    name); where the runs are stored (tracking.*, paths.*) is no part of what the sweep tries."""
    shown = [o for o in parse(overrides) if not o.key_or_group.startswith(("tracking.", "paths."))]
    last = [o.key_or_group.rpartition(".")[2] for o in shown]

    def short(override: Any, key: str) -> str:
        value = redact(override.input_line.partition("=")[2])
        if len(value) > MAX_NAME_VALUE:
            name = Path(value).name if "/" in value else ""
            value = name if 0 < len(name) <= MAX_NAME_VALUE else f"...{value[-(MAX_NAME_VALUE - 3) :]}"
        return f"{key if last.count(key) == 1 else override.key_or_group}={value}"

    swept = [short(o, k) for o, k in zip(shown, last, strict=True) if o.is_sweep_override()]
    fixed = [short(o, k) for o, k in zip(shown, last, strict=True) if not o.is_sweep_override()]
    return " ".join(["sweep", *swept, *(["|", *fixed] if fixed else [])])[:MAX_RUN_NAME]


def start_sweep(config: DictConfig) -> str:
    """Create the parent run (named after the sweep, its overrides as params); returns its id."""
    from mlflow.entities import Param

    overrides = sweep_overrides(config)
    client, experiment_id = open_experiment(tracking_uri(config.tracking.uri), config.tracking.experiment)
    n_jobs = len(sweep_jobs(overrides))
    # what each job is planned to get, for resume_sweep; a SLURM job learns its own as it starts
    threads = os.environ.get(TORCH_THREADS_ENV) or threads_per_job(config.hydra.get("launcher") or {}, n_jobs)
    tags = run_tags() | {names.SWEEP_DIR_TAG: str(config.hydra.sweep.dir), names.SWEEP_JOBS_TAG: str(n_jobs)}
    recorded = json.dumps([redact(o) for o in overrides])
    if len(recorded) <= MAX_TAG_LENGTH:  # longer: resume_sweep says the sweep cannot be rebuilt
        tags[names.SWEEP_OVERRIDES_TAG] = recorded
    if threads:
        tags[names.SWEEP_THREADS_TAG] = str(threads)
    run = client.create_run(experiment_id, run_name=sweep_name(overrides), tags=tags)
    params = {}
    for override in overrides:
        key, _, value = override.partition("=")
        params[key.lstrip("+~")] = redact(value)
    if params:
        client.log_batch(run.info.run_id, params=[Param(k, v[:MAX_PARAM_LENGTH]) for k, v in params.items()])
    os.environ[PARENT_RUN_ENV] = run.info.run_id
    os.environ[SWEEP_PID_ENV] = str(os.getpid())
    return run.info.run_id


def stop_file(sweep_dir: str) -> Path:
    return Path(sweep_dir) / STOP_FILE


def job_runs(client: Any, experiment_id: str, parent_run_id: str) -> list[Any]:
    """The runs nested under a sweep's parent run."""
    return client.search_runs(
        [experiment_id], filter_string=f"tags.`{names.PARENT_RUN_TAG}` = '{parent_run_id}'", max_results=50000
    )


def runs_by_job(children: list[Any]) -> dict[str, Any]:
    """The run of each job number; of a job run more than once (a resume started it again), the FINISHED
    one, else the newest."""

    def rank(run: Any) -> tuple[bool, int]:
        return run.info.status == "FINISHED", run.info.start_time or 0

    best: dict[str, Any] = {}
    for run in children:
        num = run.data.tags.get(names.JOB_NUM_TAG)
        if num is not None and (num not in best or rank(run) > rank(best[num])):
            best[num] = run
    return best


def failed_jobs(overrides: list[str], children: list[Any]) -> list[str]:
    """One line per job of the sweep whose run (among `children`) is missing or did not end FINISHED."""
    by_num = runs_by_job(children)
    failed = []
    for num, job in enumerate(sweep_jobs(overrides)):
        label = job_label(num, job, overrides)
        run = by_num.get(str(num))
        if run is None:
            failed.append(f"{label}: no run (it failed before training started, or never started)")
        elif run.info.status != "FINISHED":
            error = run.data.tags.get(names.ERROR_TAG) or run.data.tags.get(names.SIGNAL_TAG) or ""
            failed.append(f"{f'{label}: {run.info.status} {error}'.strip()[:400]}, run {run.info.run_id}")
    return failed


def job_label(num: int, job: list[str], overrides: list[str]) -> str:
    """ "job 1 (cell=gru seed=0)": the job's values of what the sweep varies (what is fixed is the same in
    every job, and the sweep's name says it)."""
    swept = {o.key_or_group for o in parse(overrides) if o.is_sweep_override()}
    values = [o for o in job if o.partition("=")[0].lstrip("+~") in swept] or job
    return f"job {num} ({' '.join(values) or 'defaults'})"


def _end_leftover_runs(client: Any, children: list[Any]) -> list[Any]:
    """A job run still RUNNING once the sweep is over belongs to a process that was killed before it could
    end it (joblib stops its workers on Ctrl-C or SIGTERM): it is ended here, KILLED."""
    for i, run in enumerate(children):
        if run.info.status == "RUNNING":
            client.set_tag(run.info.run_id, names.SIGNAL_TAG, "its process was stopped with the sweep")
            client.set_terminated(run.info.run_id, "KILLED")
            children[i] = client.get_run(run.info.run_id)
    return children


def conclude(
    client: Any,
    parent_run_id: str,
    overrides: list[str],
    children: list[Any],
    uri: str,
    stopped: bool = False,
) -> str:
    """Give the parent its final status from its jobs' runs (KILLED when the sweep or a job was stopped by a
    signal, FAILED when a job did not finish) and its list of jobs that did not; returns what to print."""
    by_num = runs_by_job(children)
    failed = failed_jobs(overrides, children)
    killed = stopped or any(names.SIGNAL_TAG in run.data.tags for run in by_num.values())
    status = "KILLED" if killed else "FAILED" if failed else "FINISHED"
    tags = client.get_run(parent_run_id).data.tags
    if failed:
        client.set_tag(parent_run_id, names.FAILED_JOBS_TAG, "\n".join(failed)[:MAX_TAG_LENGTH])
    elif names.FAILED_JOBS_TAG in tags:
        client.delete_tag(parent_run_id, names.FAILED_JOBS_TAG)
    client.set_terminated(parent_run_id, status)
    if not failed:
        return ""
    jobs = sweep_jobs(overrides)
    finished = [n for n in range(len(jobs)) if str(n) in by_num and by_num[str(n)].info.status == "FINISHED"]
    done = (
        f" Finished: job(s) {', '.join(map(str, finished))} (runs "
        f"{', '.join(by_num[str(n)].info.run_id for n in finished)})."
        if finished
        else ""
    )
    how = "the sweep was stopped" if stopped else "a job was stopped" if killed else "a job failed"
    head = (
        f"seqlab: the sweep's parent run {parent_run_id} is {status} ({how}); jobs that did not finish "
        f"({len(failed)} of {len(jobs)}):"
    )
    text = (
        f"{'; '.join(failed)}.{done} Finish the sweep (its stopped jobs resume from their last checkpoints, "
        "the others start) with:"
    )
    return paragraph(text, resume_command(parent_run_id, uri), head)


def end_sweep(config: DictConfig, parent_run_id: str) -> str:
    """Give the parent its final status from its jobs' runs, then say which did not finish; returns it."""
    os.environ.pop(PARENT_RUN_ENV, None)
    os.environ.pop(SWEEP_PID_ENV, None)
    uri = tracking_uri(config.tracking.uri)
    client, experiment_id = open_experiment(uri, config.tracking.experiment)
    children = _end_leftover_runs(client, job_runs(client, experiment_id, parent_run_id))
    sweep_dir = config.hydra.get("sweep", {}).get("dir")
    stopped = sweep_dir is not None and stop_file(str(sweep_dir)).is_file()
    report = conclude(client, parent_run_id, sweep_overrides(config), children, uri, stopped)
    if report:
        say(report)
    return str(client.get_run(parent_run_id).info.status)


def settle_after_resume(client: Any, parent_run_id: str) -> str:
    """A resumed job of this sweep has finished: the parent, which the interruption left KILLED or FAILED,
    becomes FINISHED once every job of the sweep has a FINISHED run. Returns the parent's status then.
    A parent still RUNNING is the sweep's own to end (end_sweep, resume_sweep).
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
    say(f"seqlab: every job of sweep {parent_run_id} has now finished; its parent run is FINISHED")
    return "FINISHED"


# --- seqlab resume=<parent run id> -----------------------------------------------------------------


def resume_sweep(cfg: DictConfig, train: Callable[[DictConfig, dict[str, str]], float]) -> float | None:
    """`seqlab resume=<parent run id>`: finish a sweep that was stopped or failed. Jobs with a last
    checkpoint resume from it (`train` with resume=<job run id>), the others start again from the overrides
    the parent recorded; then the parent gets its final status. None when cfg.resume is not a sweep's
    parent run (a lone run's resume is train's). Returns the best value `train` returned.
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    uri = tracking_uri(cfg.tracking.uri)
    check_reachable(uri)
    client = MlflowClient(uri)
    try:
        parent = client.get_run(str(cfg.resume))
    except MlflowException:
        return None  # no such run: train's resume says so
    parent_id, tags = parent.info.run_id, parent.data.tags
    if names.SWEEP_JOBS_TAG not in tags:
        return None
    if parent.info.status == "FINISHED":
        raise TrackingError(
            f"Cannot resume sweep '{parent_id}': its parent run is FINISHED, every job of it finished and "
            f"there is nothing left to train. `{as_typed('seqlab-compare')} {parent_id}` compares its runs."
        )
    if names.SWEEP_OVERRIDES_TAG not in tags:
        raise TrackingError(
            f"Cannot resume sweep '{parent_id}': it records no command line (tag {names.SWEEP_OVERRIDES_TAG}"
            "; sweeps started by an older seqlab, or with overrides too long for a tag, do not), so its jobs "
            "cannot be rebuilt. Resume each stopped job with `seqlab resume=<its run id>` (the MLflow UI "
            "lists them under the parent run), or start the sweep again."
        )
    if parent.info.status == "RUNNING":
        log.warning(
            "sweep %s is marked RUNNING: resuming it assumes its process died (make sure it did)", parent_id
        )
    overrides = json.loads(tags[names.SWEEP_OVERRIDES_TAG])
    experiment = client.get_experiment(parent.info.experiment_id).name
    by_num = runs_by_job(job_runs(client, parent.info.experiment_id, parent_id))
    todo = [
        (num, job, by_num.get(str(num)))
        for num, job in enumerate(sweep_jobs(overrides))
        if str(num) not in by_num or by_num[str(num)].info.status != "FINISHED"
    ]
    saved_env = {key: os.environ.get(key) for key in (PARENT_RUN_ENV, TORCH_THREADS_ENV)}
    os.environ[PARENT_RUN_ENV] = parent_id  # the jobs' runs nest under it, and leave the summing-up to it
    if names.SWEEP_THREADS_TAG in tags:  # a job trains with the threads the sweep gave each job
        os.environ[TORCH_THREADS_ENV] = tags[names.SWEEP_THREADS_TAG]
    client.update_run(parent_id, status="RUNNING")
    results: list[float] = []
    try:
        for num, job, run in todo:
            job_tags = {
                names.PARENT_RUN_TAG: parent_id,
                names.JOB_NUM_TAG: str(num),
                names.JOB_OVERRIDES_TAG: " ".join(job),
            }
            resumable = run is not None and _has_last_checkpoint(run)
            how = "resuming" if resumable else "starting"
            log.info("sweep %s: %s job %d (%s)", parent_id, how, num, redact(" ".join(job)))
            job_cfg = _resumed_job(cfg, run, uri) if resumable else _started_job(job, num, uri, experiment)
            try:
                results.append(train(job_cfg, job_tags))
            except Exception as exc:  # as Hydra's launchers do: one job failing does not stop the others
                log.error("job %d (%s) of sweep %s failed: %s", num, redact(" ".join(job)), parent_id, exc)
    finally:
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        children = _end_leftover_runs(client, job_runs(client, parent.info.experiment_id, parent_id))
        report = conclude(client, parent_id, overrides, children, uri)
        say(report or f"seqlab: every job of sweep {parent_id} has now finished; its parent run is FINISHED")
    return min(results) if results else float("nan")


def _has_last_checkpoint(run: Any) -> bool:
    folder = run.data.tags.get(names.CHECKPOINT_DIR)
    return bool(folder) and (Path(folder) / names.LAST_CHECKPOINT).is_file()


def _resumed_job(cfg: DictConfig, run: Any, uri: str) -> DictConfig:
    """This command's config pointed at a stopped job's run: train resumes it from its last checkpoint."""
    job_cfg = cfg.copy()
    with open_dict(job_cfg):
        job_cfg.resume = run.info.run_id
        job_cfg.tracking.uri = uri
    return job_cfg


def _started_job(job: list[str], num: int, uri: str, experiment: str) -> DictConfig:
    """A job's config composed from its recorded overrides, in this command's store and output folder (the
    store's recorded address is redacted, and a job never started has no folder of its own)."""
    from hydra import compose
    from hydra.core.hydra_config import HydraConfig

    hydra_cfg = HydraConfig.get()
    kept = [o for o in job if not o.lstrip("+~").startswith(("tracking.uri=", "tracking.experiment="))]
    job_cfg = compose(config_name=hydra_cfg.job.config_name, overrides=kept)
    with open_dict(job_cfg):
        job_cfg.tracking.uri = uri
        job_cfg.tracking.experiment = experiment
        job_cfg.paths.output_dir = str(Path(hydra_cfg.runtime.output_dir) / f"job{num}")
    return job_cfg
