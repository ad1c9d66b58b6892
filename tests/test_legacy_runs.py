"""Runs logged before cells, norms and losses were `_target_` configs stay comparable and rerunnable.

tests/data/legacy_sweep.json holds a real sweep logged by seqlab at git commit 834d3c3 (its params, tags,
final metrics and config.yaml; how it was made is in the file). The test writes it into a fresh MLflow store,
as that version left it, and reads it back with today's seqlab-compare and seqlab-rerun.
"""

import json
from pathlib import Path

import pytest
from conftest import seqlab_compare, seqlab_env
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

from seqlab import names

LEGACY = json.loads((Path(__file__).parent / "data" / "legacy_sweep.json").read_text())
QUICK = ["trainer.max_epochs=1"]

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> tuple[MlflowClient, dict[str, str]]:
    """The legacy sweep in a fresh SQLite store; returns the client and {run name: new run id}."""
    db = tmp_path_factory.mktemp("legacy") / "mlflow.db"
    client = MlflowClient(f"sqlite:///{db}")
    experiment = client.create_experiment("seqlab")
    ids: dict[str, str] = {}
    old_to_new: dict[str, str] = {}
    for logged in LEGACY["runs"]:  # the parent first, as the sweep created it
        tags = dict(logged["tags"])
        if names.PARENT_RUN_TAG in tags:
            tags[names.PARENT_RUN_TAG] = old_to_new[tags[names.PARENT_RUN_TAG]]
        run_id = client.create_run(experiment, run_name=logged["name"]).info.run_id
        client.log_batch(
            run_id,
            metrics=[Metric(k, v, 0, 0) for k, v in logged["metrics"].items()],
            params=[Param(k, v) for k, v in logged["params"].items()],
            tags=[RunTag(k, v) for k, v in tags.items()],
        )
        if "config_yaml" in logged:
            client.log_text(run_id, logged["config_yaml"], "config.yaml")
        client.set_terminated(run_id, "FINISHED")
        old_to_new[logged["run_id"]], ids[logged["name"]] = run_id, run_id
    return client, ids


def test_seqlab_compare_reads_a_legacy_sweep(store, tmp_path):
    client, ids = store
    stdout, cells = seqlab_compare(
        ids["sweep cell=rnn,gru"], client.tracking_uri, tmp_path, seqlab_env(tmp_path)
    )
    assert cells == {"rnn", "gru"}, stdout


@pytest.mark.parametrize("name", ["rnn-sine-s0", "gru-sine-s0"])
def test_seqlab_rerun_trains_a_legacy_run_as_it_was(store, name, tmp_path, monkeypatch):
    """The old names translate to today's options with the same network: an rnn keeps its relu, every cell
    its group norm and huber loss, and the rerun's metrics are the original's."""
    from seqlab.reproduce.rerun import rerun

    client, ids = store
    monkeypatch.chdir(tmp_path)
    new_id = rerun(ids[name], ["tracking.system_metrics=false"], client.tracking_uri)
    new = client.get_run(new_id)
    params = new.data.params
    cell = name.split("-")[0]
    assert new.info.status == "FINISHED" and new.data.tags[names.RERUN_OF] == ids[name]
    assert params["cell.name"] == cell and params["cell._target_"] == f"seqlab.models.cells.{cell.upper()}"
    assert params.get("cell.nonlinearity") == ("relu" if cell == "rnn" else None)
    assert (params["norm.name"], params["norm.num_groups"], params["loss.name"]) == ("group", "2", "huber")
    original = next(r for r in LEGACY["runs"] if r["name"] == name)
    assert params[names.N_PARAMS] == original["params"][names.N_PARAMS]
    for key in (names.VAL_LOSS, names.TEST_LOSS):  # the same network, data and seed: the same numbers
        assert new.data.metrics[key] == pytest.approx(original["metrics"][key], rel=1e-4), key
