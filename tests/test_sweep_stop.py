"""Stopping a sweep or a run, and finishing a stopped sweep: no run left RUNNING whatever the output stream
does, a stopped sweep starts no new job and exits in seconds with one paragraph, and `seqlab
resume=<parent run id>` finishes it."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import runs_of, seqlab_env
from mlflow import MlflowClient

from seqlab import names

pytestmark = pytest.mark.integration

# Short epochs: a checkpoint exists within seconds, and a resumed sweep finishes within seconds too.
QUICK = [
    "task=adding",
    "trainer.max_epochs=30",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
    "tracking.system_metrics=false",
]
# The entry point with `seqlab resume=<parent run id>` handed to resume_sweep, as seqlab.train does it.
RESUME_APP = """
import hydra
from seqlab.errors import SeqlabError
from seqlab.train import ReportedError, train
from seqlab.tracking.sweep import resume_sweep

@hydra.main(version_base="1.3", config_path="pkg://seqlab.conf", config_name="config")
def main(cfg):
    try:
        finished = resume_sweep(cfg, train) if cfg.get("resume") else None
        return finished if finished is not None else train(cfg)
    except SeqlabError as err:
        raise ReportedError(str(err)) from err

main()
"""


def _seqlab(folder: Path, *args: str, **popen) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "seqlab.train", *args, f"tracking.uri=sqlite:///{folder / 'mlflow.db'}"],
        cwd=folder,
        env=seqlab_env(folder),
        **popen,
    )


def _wait_for(condition, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the command ended before it could be stopped"
        try:
            if condition():
                return
        except Exception:  # the store is still being created
            pass
        time.sleep(0.3)
    raise AssertionError("timed out waiting for the command to get going")


def _running_jobs(client: MlflowClient) -> list:
    exp = client.get_experiment_by_name("seqlab")
    runs = client.search_runs([exp.experiment_id], "attributes.status = 'RUNNING'")
    return [r for r in runs if names.PARENT_RUN_TAG in r.data.tags]


def _parent(client: MlflowClient):
    (parent,) = [r for r in runs_of(client, "seqlab") if names.SWEEP_JOBS_TAG in r.data.tags]
    return parent


@pytest.fixture(scope="module")
def stopped_sweep(tmp_path_factory) -> tuple[Path, subprocess.Popen, str]:
    """A 3-job sweep whose reader (`| tee`) went away, then Ctrl-C once job 0 has a checkpoint."""
    folder = tmp_path_factory.mktemp("stopped-sweep")
    proc = _seqlab(
        folder, "-m", "cell=rnn,gru,lstm", *QUICK, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    _wait_for(lambda: any(folder.glob("outputs/multirun/*/0-*/**/last.ckpt")), proc)
    proc.stdout.close()  # the reader is gone: every later print to stdout raises BrokenPipeError
    proc.send_signal(signal.SIGINT)
    stderr = proc.stderr.read()
    proc.wait(timeout=60)
    return folder, proc, stderr


def test_a_sweep_stopped_with_its_reader_gone_ends_every_run(stopped_sweep):
    folder, proc, stderr = stopped_sweep
    assert proc.returncode != 0
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    runs = runs_of(client, "seqlab")
    assert not [r.info.run_name for r in runs if r.info.status == "RUNNING"], stderr[-3000:]
    parent = _parent(client)
    assert parent.info.status == "KILLED", stderr[-3000:]
    jobs = [r for r in runs if r.data.tags.get(names.PARENT_RUN_TAG) == parent.info.run_id]
    assert [(j.data.tags[names.JOB_NUM_TAG], j.info.status) for j in jobs] == [("0", "KILLED")]
    assert "Traceback" not in stderr, stderr[-3000:]


def test_a_resume_trains_with_the_thread_count_the_run_logged(stopped_sweep, monkeypatch):
    from conftest import compose_config

    from seqlab.reproduce.resume import resume_point

    folder, _, _ = stopped_sweep
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    job = next(r for r in runs_of(MlflowClient(uri), "seqlab") if names.JOB_NUM_TAG in r.data.tags)
    logged = int(job.data.params[names.TORCH_THREADS])
    point = resume_point(compose_config([f"resume={job.info.run_id}", f"tracking.uri={uri}"]))
    assert point.cfg.torch_threads == logged
    given = compose_config(
        [f"resume={job.info.run_id}", f"tracking.uri={uri}", f"torch_threads={logged + 1}"]
    )
    assert resume_point(given).cfg.torch_threads == logged + 1


def test_resuming_a_stopped_sweep_runs_what_it_did_not_and_finishes_its_parent(stopped_sweep):
    folder, _, _ = stopped_sweep
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    client = MlflowClient(uri)
    parent = _parent(client)
    (stopped,) = [r for r in runs_of(client, "seqlab") if names.JOB_NUM_TAG in r.data.tags]
    done = subprocess.run(
        [sys.executable, "-c", RESUME_APP, f"resume={parent.info.run_id}", f"tracking.uri={uri}"],
        cwd=folder,
        env=seqlab_env(folder),
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    parent = client.get_run(parent.info.run_id)
    assert parent.info.status == "FINISHED"
    assert names.FAILED_JOBS_TAG not in parent.data.tags
    jobs = {
        r.data.tags[names.JOB_NUM_TAG]: r
        for r in runs_of(client, "seqlab")
        if r.data.tags.get(names.PARENT_RUN_TAG) == parent.info.run_id
    }
    assert sorted(jobs) == ["0", "1", "2"] and all(j.info.status == "FINISHED" for j in jobs.values())
    assert jobs["0"].info.run_id == stopped.info.run_id, "the stopped job went on in its own run"
    assert names.RESUMED_TAG in jobs["0"].data.tags
    assert [jobs[n].info.run_name for n in "12"] == ["gru-adding-s0", "lstm-adding-s0"]
    assert jobs["2"].data.tags[names.JOB_OVERRIDES_TAG].startswith("cell=lstm ")
    # the summary lists the runs this command resumed and started, the parent among them
    assert "4 run(s)" in done.stdout, done.stdout
    for run in [parent, *jobs.values()]:
        assert run.info.run_id in done.stdout


def test_sigterm_to_a_joblib_sweep_starts_no_new_job_and_exits_in_seconds(tmp_path):
    proc = _seqlab(
        tmp_path,
        "-m",
        "task=adding",
        "cell=rnn,gru,lstm",
        "trainer.max_epochs=200",
        "tracking.system_metrics=false",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    _wait_for(lambda: len(_running_jobs(client)) == 2, proc, timeout=180)
    time.sleep(2)  # a few batches into training
    proc.send_signal(signal.SIGTERM)
    stopped = time.monotonic()
    output, _ = proc.communicate(timeout=60)
    assert time.monotonic() - stopped < 10, output[-3000:]
    assert proc.returncode == 128 + signal.SIGTERM
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output[-3000:]
    parent = _parent(client)
    jobs = [r for r in runs_of(client, "seqlab") if r.data.tags.get(names.PARENT_RUN_TAG)]
    assert parent.info.status == "KILLED"
    assert sorted(j.data.tags[names.JOB_NUM_TAG] for j in jobs) == ["0", "1"], "job 2 never started"
    assert all(j.info.status == "KILLED" for j in jobs)
    # one paragraph: how each job ended, with its run id, and the command that finishes the sweep
    report = output[output.index("seqlab: the sweep's parent run") :]
    assert "\n\n" not in report.strip()
    report = " ".join(report.split())  # as read, not as wrapped
    assert "job 2 (cell=lstm): no run" in report
    for job in jobs:
        assert job.info.run_id in report
    assert f"resume={parent.info.run_id}" in report


def test_a_lone_run_stopped_names_its_id_and_the_resume_command(tmp_path):
    proc = _seqlab(
        tmp_path,
        "task=adding",
        "trainer.max_epochs=200",
        "tracking.system_metrics=false",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")

    def running():
        exp = client.get_experiment_by_name("seqlab")
        return client.search_runs([exp.experiment_id], "attributes.status = 'RUNNING'")

    _wait_for(running, proc)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    stderr = " ".join(stderr.split())  # as read, not as wrapped
    (run,) = runs_of(client, "seqlab")
    assert run.info.status == "KILLED"
    assert f"run {run.info.run_id}" in stderr and f"resume={run.info.run_id}" in stderr, stderr[-2000:]
