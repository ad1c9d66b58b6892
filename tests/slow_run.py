"""A seqlab run in a subprocess, slow enough that a tracking server can be stopped and restarted while it
trains, and the checks that it lost nothing: shared by the SQLite server and PostgreSQL stack tests."""

import subprocess
import sys
import time
from pathlib import Path

from conftest import seqlab_env
from mlflow import MlflowClient

from seqlab import names


def start_seqlab(tmp_path: Path, uri: str, experiment: str, *overrides: str) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "seqlab.train",
            f"tracking.uri={uri}",
            f"tracking.experiment={experiment}",
            "tracking.system_metrics=false",
            *overrides,
        ],
        cwd=tmp_path,
        env=seqlab_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def the_run(client: MlflowClient, experiment: str):
    [run] = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    return run


def wait_for_first_epoch(
    client: MlflowClient, proc: subprocess.Popen, experiment: str, timeout: float = 180
) -> str:
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        exp = client.get_experiment_by_name(experiment)
        runs = client.search_runs([exp.experiment_id]) if exp else []
        if runs and names.VAL_LOSS in runs[0].data.metrics:
            return runs[0].info.run_id
        time.sleep(0.3)
    raise AssertionError(
        "training never logged an epoch: " + (proc.stdout.read() if proc.poll() is not None else "")
    )


EPOCHS = 6
SLOW_EPOCHS = [f"trainer.max_epochs={EPOCHS}", "task.n_train=6000", "model.hidden_size=96"]


def assert_complete(client: MlflowClient, run_id: str) -> None:
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert len(client.get_metric_history(run_id, names.VAL_LOSS)) == EPOCHS
    assert len(client.get_metric_history(run_id, names.TRAIN_LOSS)) == EPOCHS
    assert names.TEST_LOSS in run.data.metrics
    listed = {f.path for f in client.list_artifacts(run_id)}
    assert {"checkpoints", "plots", "model", "config.yaml"} <= listed
