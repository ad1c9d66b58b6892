"""Hydra multiruns as MLflow parent runs, with the basic launcher and joblib's parallel processes on one
SQLite store; the parent's status says whether every job finished."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import TINY, runs_of, seqlab_env
from mlflow import MlflowClient

from seqlab import names


def _sweep(tmp_path: Path, *overrides: str) -> tuple[subprocess.CompletedProcess, MlflowClient]:
    db = tmp_path / "mlflow.db"
    done = subprocess.run(
        [sys.executable, "-m", "seqlab.train", "-m", f"tracking.uri=sqlite:///{db}", *TINY, *overrides],
        cwd=tmp_path,
        env=seqlab_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=600,
    )
    return done, MlflowClient(f"sqlite:///{db}")


def _parent_and_children(client: MlflowClient):
    runs = runs_of(client, "seqlab")
    parents = [r for r in runs if names.PARENT_RUN_TAG not in r.data.tags]
    assert len(parents) == 1, [r.info.run_name for r in runs]
    children = [r for r in runs if r.data.tags.get(names.PARENT_RUN_TAG) == parents[0].info.run_id]
    assert len(children) == len(runs) - 1, "every job's run is nested under the parent"
    return parents[0], children


@pytest.mark.integration
def test_joblib_sweep_on_one_sqlite_store_nests_every_job_under_a_finished_parent(tmp_path):
    done, client = _sweep(
        tmp_path,
        "cell=rnn,gru",
        "seed=0,1",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "tracking.system_metrics=false",
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert "database is locked" not in output
    parent, children = _parent_and_children(client)
    assert parent.info.status == "FINISHED"
    # what varies, then what every job shares (tracking.* left out), so two sweeps read apart
    assert parent.info.run_name == (
        "sweep cell=rnn,gru seed=0,1 | "
        "max_epochs=1 limit_train_batches=3 limit_val_batches=2 limit_test_batches=2"
    )
    assert parent.data.params["cell"] == "rnn,gru" and parent.data.params["seed"] == "0,1"
    assert parent.data.tags[names.SWEEP_JOBS_TAG] == "4"
    assert sorted(c.info.run_name for c in children) == [
        "gru-sine-s0",
        "gru-sine-s1",
        "rnn-sine-s0",
        "rnn-sine-s1",
    ]
    assert all(c.info.status == "FINISHED" for c in children)
    assert sorted(c.data.tags[names.JOB_NUM_TAG] for c in children) == ["0", "1", "2", "3"]
    threads = str(max(1, (os.cpu_count() or 1) // 2))  # two jobs share the cores
    for child in children:  # each job logged every metric it trained for
        assert names.TEST_LOSS in child.data.metrics and names.VAL_LOSS in child.data.metrics
        assert child.data.params[names.TORCH_THREADS] == threads


@pytest.mark.integration
def test_a_failing_job_makes_the_parent_failed_and_named(tmp_path):
    done, client = _sweep(
        tmp_path,
        "task=adding",
        "optimizer=sgd",
        "optimizer.lr=0.01,1e30",
        "trainer.limit_train_batches=5",
        "tracking.system_metrics=false",
    )
    output = done.stdout + done.stderr
    assert done.returncode == 2, output[-4000:]  # a user's error: the exit status of every other one
    assert "diverged" in output
    parent, children = _parent_and_children(client)
    # Hydra's basic launcher runs the rest of the batch, then raises: both jobs have runs
    statuses = {c.data.tags[names.JOB_NUM_TAG]: c.info.status for c in children}
    assert statuses == {"0": "FINISHED", "1": "FAILED"}, statuses
    assert (
        "optimizer.lr=1e+30"
        in next(c for c in children if c.info.status == "FAILED").data.tags[names.JOB_OVERRIDES_TAG]
    )
    assert parent.info.status == "FAILED"
    failed = parent.data.tags[names.FAILED_JOBS_TAG]
    assert (
        failed.startswith("job 1 (") and "optimizer.lr=1e+30" in failed and "FAILED DivergedError" in failed
    )
    assert "job 0" not in failed
    assert "jobs that did not finish" in output


@pytest.mark.integration
@pytest.mark.parametrize("launcher", ["basic", "joblib"])
def test_sigterm_to_a_sweep_leaves_no_run_running_and_no_job_process(launcher, tmp_path):
    # A scheduler stopping the sweep signals the launching process only: its jobs (joblib's worker
    # processes) must stop too, every run must end KILLED, the parent included, and nothing be left over.
    import psutil

    db = tmp_path / "mlflow.db"
    extra = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"] if launcher == "joblib" else []
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "seqlab.train",
            "-m",
            f"tracking.uri=sqlite:///{db}",
            "task=adding",
            "cell=rnn,gru",
            "seed=0,1",
            "trainer.max_epochs=200",
            "tracking.system_metrics=false",
            *extra,
        ],
        cwd=tmp_path,
        env=seqlab_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    client = MlflowClient(f"sqlite:///{db}")
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:  # wait until jobs are training
        try:
            exp = client.get_experiment_by_name("seqlab")
            running = exp and client.search_runs([exp.experiment_id], "attributes.status = 'RUNNING'")
            if running and len(running) >= (3 if launcher == "joblib" else 2):  # parent + job(s)
                break
        except Exception:  # the store is still being created
            pass
        time.sleep(1)
    assert proc.poll() is None, proc.stdout.read()[-3000:]
    time.sleep(3)  # a few batches into training
    jobs = psutil.Process(proc.pid).children(recursive=True)
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode != 0, output[-3000:]
    _, alive = psutil.wait_procs(jobs, timeout=30)
    assert not alive, f"job processes left running: {alive}"
    parent, children = _parent_and_children(client)
    assert parent.info.status == "KILLED", output[-3000:]
    assert children and all(c.info.status == "KILLED" for c in children), [
        (c.info.run_name, c.info.status) for c in children
    ]
    assert all(names.SIGNAL_TAG in c.data.tags for c in children)


def test_end_sweep_ends_a_job_run_left_running_killed_and_the_parent_too(tmp_path):
    # A worker killed outright (SIGKILL, OOM) never ends its run; the parent ends it when the sweep is over.
    from omegaconf import OmegaConf

    from seqlab.tracking.sweep import end_sweep

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment_id = client.create_experiment("seqlab")
    parent = client.create_run(experiment_id).info.run_id
    jobs = [
        client.create_run(experiment_id, tags={names.PARENT_RUN_TAG: parent, names.JOB_NUM_TAG: str(i)})
        for i in range(2)
    ]
    client.set_terminated(jobs[0].info.run_id, "FINISHED")  # job 1 stays RUNNING
    config = OmegaConf.create(
        {"tracking": {"uri": uri, "experiment": "seqlab"}, "hydra": {"overrides": {"task": ["seed=0,1"]}}}
    )
    assert end_sweep(config, parent) == "KILLED"
    assert client.get_run(jobs[0].info.run_id).info.status == "FINISHED"
    stopped = client.get_run(jobs[1].info.run_id)
    assert stopped.info.status == "KILLED" and names.SIGNAL_TAG in stopped.data.tags
    assert client.get_run(parent).info.status == "KILLED"
    assert client.get_run(parent).data.tags[names.FAILED_JOBS_TAG].startswith("job 1 (seed=1): KILLED")


def test_resuming_the_stopped_jobs_of_a_sweep_finishes_its_parent(make_cfg, client):
    """A sweep stopped by SIGTERM ends KILLED (above); `seqlab resume=<job run>` then finishes its jobs one
    by one, and the parent follows once the last of them has a FINISHED run, not before."""
    from seqlab.tracking.run import tracked_run

    cfg = make_cfg()
    experiment_id = client.create_experiment(cfg.tracking.experiment)
    parent = client.create_run(experiment_id, tags={names.SWEEP_JOBS_TAG: "3"}).info.run_id
    jobs = [
        client.create_run(
            experiment_id, tags={names.PARENT_RUN_TAG: parent, names.JOB_NUM_TAG: str(i)}
        ).info.run_id
        for i in range(3)
    ]
    client.set_terminated(jobs[0], "FINISHED")
    for stopped in jobs[1:]:
        client.set_terminated(stopped, "KILLED")
    client.set_tag(parent, names.FAILED_JOBS_TAG, "job 1 (seed=1): KILLED\njob 2 (seed=2): KILLED")
    client.set_terminated(parent, "KILLED")

    for resumed, parent_then in ((jobs[1], "KILLED"), (jobs[2], "FINISHED")):
        with tracked_run(cfg, "resumed job", {}, reopen_run_id=resumed):
            pass  # the resumed training, as seqlab resume= runs it
        assert client.get_run(resumed).info.status == "FINISHED"
        assert client.get_run(parent).info.status == parent_then
    assert names.FAILED_JOBS_TAG not in client.get_run(parent).data.tags


def test_a_parent_is_settled_only_by_a_full_set_of_finished_jobs(tmp_path):
    from seqlab.tracking.sweep import settle_after_resume

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment_id = client.create_experiment("seqlab")
    parent = client.create_run(experiment_id, tags={names.SWEEP_JOBS_TAG: "2"}).info.run_id
    job = client.create_run(
        experiment_id, tags={names.PARENT_RUN_TAG: parent, names.JOB_NUM_TAG: "0"}
    ).info.run_id
    client.set_terminated(job, "FINISHED")
    assert (
        settle_after_resume(client, parent) == "RUNNING"
    )  # the sweep itself is still going: end_sweep decides
    client.set_terminated(parent, "FAILED")
    assert settle_after_resume(client, parent) == "FAILED"  # job 1 has no run at all
    assert client.get_run(parent).info.status == "FAILED"
    second = client.create_run(
        experiment_id, tags={names.PARENT_RUN_TAG: parent, names.JOB_NUM_TAG: "1"}
    ).info.run_id
    client.set_terminated(second, "FINISHED")
    assert settle_after_resume(client, parent) == "FINISHED"  # a FAILED parent is settled too
