"""A tuning sweep logging to a PostgreSQL tracking store keeps its study in that database, in a schema of its
own, and writes the store's password nowhere."""

import subprocess
import sys

import optuna
import pytest
from conftest import seqlab_env
from mlflow import MlflowClient
from optuna.trial import TrialState
from test_postgres_stack import empty_database, nowhere_under, stack  # noqa: F401 (a fixture)

from seqlab import names
from seqlab.tuning.study import storage_url

pytestmark = pytest.mark.integration


def test_a_tuning_sweep_on_postgresql_keeps_its_study_in_the_stores_database(stack, tmp_path):  # noqa: F811
    uri = empty_database(stack[0])
    password = stack[0].password()
    command = [
        sys.executable, "-m", "seqlab.train", "-m", "hydra/sweeper=tune", "task=adding", "task.n_train=128",
        "task.n_val=32", "task.n_test=32", "trainer.max_epochs=1", "tracking.system_metrics=false",
        "optimizer.lr=tag(log, interval(1e-3, 1e-1))", "hydra.sweeper.n_trials=2",
        "hydra.sweeper.eval_seeds=[10]", f"tracking.uri={uri}",
    ]  # fmt: skip
    done = subprocess.run(
        command, cwd=tmp_path, env=seqlab_env(tmp_path), capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    storage = storage_url(None, uri)
    assert "search_path%3Doptuna" in storage
    (name,) = optuna.study.get_all_study_names(storage)
    study = optuna.load_study(study_name=name, storage=storage)
    assert len(study.get_trials(states=[TrialState.COMPLETE])) == 2
    client = MlflowClient(uri)  # MLflow's own tables still answer beside Optuna's schema
    runs = client.search_runs([client.get_experiment_by_name("seqlab").experiment_id])
    assert {r.data.tags.get(names.TUNE_ROLE_TAG) for r in runs} == {None, names.TUNE_TRIAL, names.TUNE_EVAL}
    for run in runs:
        shown = {k: v for k, v in (run.data.params | run.data.tags).items() if password in v}
        assert not shown, (run.info.run_name, shown)
    assert password not in done.stdout + done.stderr
    nowhere_under(tmp_path, password)
