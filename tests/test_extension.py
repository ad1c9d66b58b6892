"""A cell, a task and a loss defined outside seqlab (tests/extension: one module on PYTHONPATH and one YAML
each in a config folder added with hydra.searchpath) are validated, trained, budget-matched, served as the
pyfunc model and compared, with no edit to seqlab."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import runs_of, seqlab_compare, seqlab_env
from mlflow import MlflowClient

from seqlab import names

EXTENSION = Path(__file__).parent / "extension"
SEARCHPATH = f"hydra.searchpath=[file://{EXTENSION / 'conf'}]"
BUDGET = 3000

pytestmark = pytest.mark.integration


def _env(tmp_path: Path) -> dict[str, str]:
    env = seqlab_env(tmp_path)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(EXTENSION), env.get("PYTHONPATH")]))
    return env


def _seqlab(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "seqlab.train", *argv],
        cwd=tmp_path,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> tuple[Path, MlflowClient, subprocess.CompletedProcess]:
    """One sweep: the outside cell against seqlab's GRU, on the outside task with the outside loss."""
    tmp_path = tmp_path_factory.mktemp("extension")
    db = tmp_path / "mlflow.db"
    done = _seqlab(
        tmp_path,
        "-m",
        SEARCHPATH,
        f"tracking.uri=sqlite:///{db}",
        "cell=scaled_gru,gru",
        "task=parity",
        f"model.param_budget={BUDGET}",
        "seed=0,1",
        "trainer.max_epochs=2",
        "tracking.system_metrics=false",
    )
    return tmp_path, MlflowClient(f"sqlite:///{db}"), done


def test_outside_options_train_under_a_parameter_budget(sweep):
    _, client, done = sweep
    assert done.returncode == 0, done.stderr[-3000:]
    jobs = [r for r in runs_of(client, "seqlab") if names.PARENT_RUN_TAG in r.data.tags]
    assert sorted(r.data.params["cell.name"] for r in jobs) == ["gru", "gru", "scaled_gru", "scaled_gru"]
    for run in jobs:
        assert run.info.status == "FINISHED"
        assert (
            run.data.params["loss.name"] == "focal"
            and run.data.params["task._target_"] == "labext.ParityTask"
        )
        assert abs(int(run.data.params[names.N_PARAMS]) - BUDGET) <= 0.02 * BUDGET
        assert run.info.run_name.startswith(run.data.params["cell.name"] + "-parity-")


def test_outside_cell_is_served_as_the_pyfunc_model(sweep, tmp_path):
    _, client, _ = sweep
    [run, *_] = [r for r in runs_of(client, "seqlab") if r.data.params.get("cell.name") == "scaled_gru"]
    script = f"""
import json, mlflow, numpy as np
mlflow.set_tracking_uri({client.tracking_uri!r})
model = mlflow.pyfunc.load_model("runs:/{run.info.run_id}/model")
pred = model.predict(np.random.rand(3, 6, 1).astype(np.float32))
print(json.dumps({{"shape": list(pred.shape), "finite": bool(np.isfinite(pred).all())}}))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=_env(tmp_path)
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"shape": [3, 2], "finite": True}


def test_outside_cell_shows_in_seqlab_compare(sweep):
    tmp_path, client, _ = sweep
    [parent] = [r for r in runs_of(client, "seqlab") if names.PARENT_RUN_TAG not in r.data.tags]
    stdout, cells = seqlab_compare(parent.info.run_id, client.tracking_uri, tmp_path, _env(tmp_path))
    assert cells == {"scaled_gru", "gru"}, stdout
    assert "cell._target_" not in stdout  # the name stands for the choice
    assert "test/accuracy" in stdout  # the outside task's metrics: seqlab's default for classification


@pytest.mark.parametrize(
    "argv,words",
    [
        (["cell=scaled_gru", "cell.gain=-1"], ["cell.gain=-1", "> 0"]),  # the cell's own check
        (["cell=scaled_gru", "cell.gainn=2"], ["cell.gainn", "Did you mean 'cell.gain'"]),  # its signature
        (["task=sine", "loss=focal"], ["loss=focal", "task=sine", "regression"]),  # the loss's declared kinds
        (["task=parity", "task.lenght=3"], ["task.lenght", "task.length"]),
    ],
)
def test_outside_options_are_validated_before_anything_runs(tmp_path, argv, words):
    done = _seqlab(tmp_path, SEARCHPATH, *argv)
    assert done.returncode != 0
    for word in words:
        assert word in done.stderr, done.stderr[-2000:]
    assert not (tmp_path / "outputs" / "mlflow.db").exists()  # refused before any run
