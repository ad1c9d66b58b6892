"""Sweeps through Hydra's submitit launcher (submitit_local here, submitit_slurm on a cluster): every job a
run nested under the sweep's parent, each with its share of the cores, and a job stopped by the signals
SLURM sends (SIGTERM on scancel, SIGUSR2 on preemption) ends KILLED, resumable, named by the parent."""

import contextlib
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from conftest import runs_of, seqlab_env
from mlflow import MlflowClient

from seqlab import names
from seqlab.tracking.sweep import RAY_LAUNCHER as RAY
from seqlab.tracking.sweep import SUBMITIT_LOCAL, threads_per_job

TINY = [
    "task=adding",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
    "tracking.system_metrics=false",
    "hydra/launcher=submitit_local",
    # as on a cluster whose jobs start in an environment of their own (sbatch --export=NONE): what a job
    # needs from the sweep must travel inside the job
    "+hydra.launcher.setup=[unset SEQLAB_PARENT_RUN_ID SEQLAB_SWEEP_PID SEQLAB_TORCH_THREADS]",
]
SLURM = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
JOBLIB = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"


# --- threads per job: one function, whatever the launcher ----------------------------------------------


@pytest.mark.parametrize(
    ("launcher", "n_jobs", "environ", "expected"),
    [
        ({"_target_": SUBMITIT_LOCAL, "cpus_per_task": None}, 2, {}, 4),  # every job at once: 8 cores / 2
        ({"_target_": SUBMITIT_LOCAL, "cpus_per_task": None}, 16, {}, 1),
        ({"_target_": SUBMITIT_LOCAL, "cpus_per_task": 3}, 2, {}, 3),  # what the user gave each job
        ({"_target_": SUBMITIT_LOCAL, "cpus_per_task": 32}, 2, {}, 8),  # never more than the machine has
        ({"_target_": SLURM, "cpus_per_task": 4}, 10, {"SLURM_CPUS_PER_TASK": "4"}, 4),
        ({"_target_": SLURM, "cpus_per_task": None}, 10, {"SLURM_CPUS_PER_TASK": "6"}, 6),  # the allocation
        ({"_target_": SLURM, "cpus_per_task": None}, 10, {}, None),  # unknown until the job runs: torch's
        ({"_target_": JOBLIB, "n_jobs": 2}, 8, {}, 4),
        ({"_target_": JOBLIB, "n_jobs": -1}, 8, {}, 1),
        ({"_target_": JOBLIB, "n_jobs": -1}, 2, {}, 4),  # two jobs do not need eight processes
        ({"_target_": JOBLIB, "n_jobs": 2}, 8, {"SLURM_CPUS_PER_TASK": "4"}, 2),  # a sweep in an allocation
        ({"_target_": JOBLIB, "n_jobs": 1}, 8, {}, None),  # one at a time: the machine's default
        ({"_target_": RAY, "ray": {"remote": {"num_cpus": 2}}}, 8, {}, 2),  # what Ray reserves for each job
        ({"_target_": RAY, "ray": {"remote": {"num_cpus": None}}}, 8, {}, 1),  # Ray's default: one CPU
        ({"_target_": RAY, "ray": {"remote": {"num_cpus": 0.5}}}, 8, {}, 1),
        ({"_target_": RAY, "ray": {"remote": {"num_cpus": 32}}}, 2, {}, 8),
        ({"_target_": RAY, "ray": {"remote": {"num_cpus": 4}}}, 8, {"SLURM_CPUS_PER_TASK": "2"}, 2),
        ({}, 8, {}, None),  # the basic launcher
        ({}, 8, {"SLURM_CPUS_PER_TASK": "4"}, 4),
    ],
)
def test_threads_per_job_follow_what_the_launcher_gives_each_job(launcher, n_jobs, environ, expected):
    assert threads_per_job(launcher, n_jobs, environ, cores=8) == expected


# --- submitit_local, end to end -------------------------------------------------------------------------


def _seqlab(folder: Path, *args: str, **popen) -> subprocess.Popen:
    env = seqlab_env(folder)
    env.pop(
        "OMP_NUM_THREADS", None
    )  # torch's default is then every core: a job's share must come from seqlab
    return subprocess.Popen(
        [sys.executable, "-m", "seqlab.train", *args, f"tracking.uri=sqlite:///{folder / 'mlflow.db'}"],
        cwd=folder,
        env=env,
        **popen,
    )


def _jobs(client: MlflowClient, parent_id: str) -> dict[str, object]:
    runs = runs_of(client, "seqlab")
    return {
        r.data.tags[names.JOB_NUM_TAG]: r for r in runs if r.data.tags.get(names.PARENT_RUN_TAG) == parent_id
    }


def _parent(client: MlflowClient):
    (parent,) = [r for r in runs_of(client, "seqlab") if names.SWEEP_JOBS_TAG in r.data.tags]
    return parent


def test_a_submitit_local_sweep_nests_its_jobs_each_with_its_share_of_the_cores(tmp_path):
    proc = _seqlab(tmp_path, "-m", "cell=rnn,gru", "trainer.max_epochs=1", *TINY, stdout=subprocess.PIPE,
                   stderr=subprocess.STDOUT, text=True)  # fmt: skip
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, output[-3000:]
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    parent = _parent(client)
    assert parent.info.status == "FINISHED"
    jobs = _jobs(client, parent.info.run_id)
    assert sorted(jobs) == ["0", "1"] and all(j.info.status == "FINISHED" for j in jobs.values())
    share = threads_per_job({"_target_": SUBMITIT_LOCAL}, 2)
    assert [j.data.params[names.TORCH_THREADS] for j in jobs.values()] == [str(share)] * 2
    assert parent.data.tags[names.SWEEP_THREADS_TAG] == str(share)


def _job_process(launching: subprocess.Popen, job_dir_prefix: str) -> psutil.Process | None:
    """The submitit task (python -m submitit.core._submit) running the job whose folder starts so: it holds
    the job's log file open."""
    for process in psutil.Process(launching.pid).children(recursive=True):
        try:
            if "submitit.core._submit" not in " ".join(process.cmdline()):
                continue
            if any(f"/{job_dir_prefix}" in f.path for f in process.open_files()):
                return process
        except psutil.Error:
            continue
    return None


def _stop_tree(proc: subprocess.Popen) -> None:
    """Kill what is left of a sweep this test started: the launching process and submitit's job processes
    (which outlive it)."""
    if proc.poll() is not None:
        return
    started = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    for process in started:
        with contextlib.suppress(psutil.Error):
            process.kill()
    proc.wait(timeout=10)


def _wait_for(condition, proc: subprocess.Popen, timeout: float = 90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the sweep ended before a job could be stopped"
        try:
            found = condition()
            if found:
                return found
        except Exception:  # the store is still being created
            pass
        time.sleep(0.3)
    raise AssertionError("timed out waiting for the sweep to get going")


@pytest.mark.parametrize("signum", [signal.SIGUSR2, signal.SIGTERM])
def test_a_submitit_job_stopped_by_slurms_signals_ends_killed_and_resumes(tmp_path, signum):
    proc = _seqlab(tmp_path, "-m", "cell=rnn,gru", "trainer.max_epochs=40", *TINY, stdout=subprocess.PIPE,
                   stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        _wait_for(lambda: any(tmp_path.glob("outputs/multirun/*/0-*/checkpoints/last.ckpt")), proc)
        job = _wait_for(lambda: _job_process(proc, "0-cell=rnn"), proc, timeout=10)
        job.send_signal(signum)  # as SLURM signals a job's processes: the sweep itself is not told
        output, _ = proc.communicate(timeout=90)
    finally:
        _stop_tree(proc)
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert not [r.info.run_name for r in runs_of(client, "seqlab") if r.info.status == "RUNNING"], output[
        -3000:
    ]
    parent = _parent(client)
    jobs = _jobs(client, parent.info.run_id)
    stopped, other = jobs["0"], jobs["1"]
    # the stopped job alone: the launcher waited for the other one, which finished its 40 epochs
    assert (stopped.info.status, other.info.status) == ("KILLED", "FINISHED"), output[-3000:]
    assert stopped.data.tags[names.SIGNAL_TAG] == signal.Signals(signum).name
    assert parent.info.status == "KILLED"
    assert stopped.info.run_id in parent.data.tags[names.FAILED_JOBS_TAG]
    assert f"resume={parent.info.run_id}" in " ".join(output.split())
    assert "Traceback" not in output, output[-3000:]

    # the job's own run goes on from its last checkpoint, and the sweep is then whole
    env = seqlab_env(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "seqlab.train", f"resume={stopped.info.run_id}",
         f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    resumed = client.get_run(stopped.info.run_id)
    assert resumed.info.status == "FINISHED" and names.RESUMED_TAG in resumed.data.tags
    assert client.get_run(parent.info.run_id).info.status == "FINISHED"


def test_a_submitit_job_that_fails_makes_the_parent_failed_and_named(tmp_path):
    proc = _seqlab(tmp_path, "-m", "optimizer=sgd", "optimizer.lr=0.01,1e30", "trainer.max_epochs=1", *TINY,
                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode != 0, output[-3000:]
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    parent = _parent(client)
    jobs = _jobs(client, parent.info.run_id)
    assert {num: job.info.status for num, job in jobs.items()} == {"0": "FINISHED", "1": "FAILED"}, output[
        -3000:
    ]
    assert parent.info.status == "FAILED"
    failed = parent.data.tags[names.FAILED_JOBS_TAG]
    assert failed.startswith("job 1 (") and "FAILED DivergedError" in failed and "job 0" not in failed
