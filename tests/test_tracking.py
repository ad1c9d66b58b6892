"""What each run carries in a real MLflow store: checkpoint, plots, a served pyfunc model, system figures;
credentials never logged; a dead tracking server refused in seconds before training."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import runs_of, seqlab_env

from seqlab import names
from seqlab.errors import TrackingError
from seqlab.train import train


def test_run_carries_checkpoint_plots_model_and_system_figures(make_cfg, client, tmp_path):
    cfg = make_cfg("cell=gru", "trainer.max_epochs=2")
    train(cfg)
    [run] = runs_of(client, cfg.tracking.experiment)
    run_id = run.info.run_id
    assert run.info.status == "FINISHED"
    # a run started on its own stays top-level: no sweep parent, no job number
    assert names.PARENT_RUN_TAG not in run.data.tags and names.JOB_NUM_TAG not in run.data.tags
    listed = {f.path for f in client.list_artifacts(run_id)}
    assert {"checkpoints", "plots", "model", "config.yaml"} <= listed
    [ckpt] = [f.path for f in client.list_artifacts(run_id, "checkpoints")]
    assert ckpt.startswith("checkpoints/best-epoch") and ckpt.endswith(".ckpt")
    plots = {f.path for f in client.list_artifacts(run_id, "plots")}
    pictures = {"plots/learning_curves.png", "plots/predictions.png", "plots/gradient_flow.png"}
    assert plots == pictures | {"plots/gradient_flow.csv"}
    for plot in pictures:
        assert (
            Path(client.download_artifacts(run_id, plot, str(tmp_path))).read_bytes()[:8]
            == b"\x89PNG\r\n\x1a\n"
        )
    metrics = run.data.metrics
    assert metrics[names.TIME_FIT] > 0 and metrics[names.TIME_TEST] > 0
    assert metrics[names.TRAIN_THROUGHPUT] > 0
    assert metrics[names.MEM_PEAK_RSS] > 50  # torch alone takes more than 50 MB
    # the served model, in a fresh process, predicts finite values for its own input example
    script = f"""
import json, mlflow, numpy as np
mlflow.set_tracking_uri({cfg.tracking.uri!r})
model = mlflow.pyfunc.load_model("runs:/{run_id}/model")
example_file = mlflow.artifacts.download_artifacts("runs:/{run_id}/model/serving_input_example.json")
example = np.asarray(json.load(open(example_file))["inputs"], dtype=np.float32)
pred = model.predict(example)
schema = model.metadata.get_input_schema().to_json()
print(json.dumps({{"shape": list(pred.shape), "finite": bool(np.isfinite(pred).all()), "inputs": schema}}))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=seqlab_env(tmp_path)
    )
    assert done.returncode == 0, done.stderr[-3000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["finite"] and answer["shape"] == [2, 1]
    assert "float32" in answer["inputs"]
    assert "type hint" not in done.stderr  # MLflow's class-definition nag, switched off in SequenceNetModel


SECRET = "s3cr3t-pa55"


def test_credentials_in_the_uri_never_reach_params_or_the_config_artifact(make_cfg):
    from omegaconf import OmegaConf, open_dict

    from seqlab.tracking.params import redact_config
    from seqlab.tracking.run import run_params

    cfg = make_cfg()
    with open_dict(cfg):
        cfg.tracking.uri = f"https://bob:{SECRET}@mlflow.example.org:5000"
        cfg.callbacks.model_checkpoint.dirpath = f"s3://carol:{SECRET}@bucket/ckpt"
    params = run_params(cfg, {})
    config_yaml = OmegaConf.to_yaml(redact_config(OmegaConf.to_container(cfg, resolve=True)))
    assert SECRET not in json.dumps(params) + config_yaml
    assert params["tracking.uri"] == "https://***@mlflow.example.org:5000"
    assert "s3://***@bucket/ckpt" in config_yaml


def test_unreachable_server_is_refused_in_seconds_before_training(make_cfg, tmp_path):
    import socket

    with socket.socket() as s:  # a free port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = make_cfg()
    from omegaconf import open_dict

    with open_dict(cfg):
        cfg.tracking.uri = f"http://alice:{SECRET}@127.0.0.1:{port}"
    started = time.monotonic()
    with pytest.raises(TrackingError) as err:
        train(cfg)
    assert time.monotonic() - started < 15
    message = str(err.value)
    assert f"http://***@127.0.0.1:{port}" in message and SECRET not in message
    assert "not reachable" in message
    assert not Path(cfg.paths.output_dir, "checkpoints").exists(), "training must not have started"


def test_step_metrics_are_written_in_few_requests_and_flush_does_not_wait_out_the_pause(tmp_path):
    # One write per step would have the store compete with training: 200 steps, one every 5 ms, land in a
    # handful of log_batch calls, all of them, and flush sends at once.
    from mlflow import MlflowClient

    from seqlab.tracking.logger import MlflowMetricLogger

    class CountingClient(MlflowClient):
        requests = 0

        def log_batch(self, *args, **kwargs):
            CountingClient.requests += 1
            return super().log_batch(*args, **kwargs)

    client = CountingClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run_id = client.create_run(client.create_experiment("burst")).info.run_id

    class PatientLogger(MlflowMetricLogger):
        send_every_s = 5.0

    logger = PatientLogger(client, run_id)
    for step in range(200):
        logger.log_metrics({"train/step_loss": 1.0 / (step + 1)}, step=step)
        time.sleep(0.005)
    started = time.monotonic()
    assert logger.flush(wait_s=30)
    assert time.monotonic() - started < 4.0  # well under the 5 s pause
    assert CountingClient.requests <= 3
    assert sorted(m.step for m in client.get_metric_history(run_id, "train/step_loss")) == list(range(200))


@pytest.mark.parametrize("activated", [False, True])
def test_the_commands_a_run_ends_with_can_be_typed_as_printed(activated, tmp_path, monkeypatch):
    """After `make run` the venv is not activated: the printed `mlflow ui` must name .venv/bin/mlflow."""
    from seqlab.tracking.store import as_typed, ui_command

    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    for script in ("python", "mlflow", "seqlab-compare"):
        (bin_dir / script).write_text("#!/bin/sh\n")
        (bin_dir / script).chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(bin_dir / "python"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin" if activated else "/usr/bin:/bin")
    venv = "" if activated else ".venv/bin/"
    assert as_typed("seqlab-compare") == f"{venv}seqlab-compare"
    store = "sqlite:///outputs/mlflow.db"
    assert (
        ui_command(f"sqlite:///{tmp_path}/outputs/mlflow.db")
        == f"{venv}mlflow ui --backend-store-uri {store}"
    )
    assert as_typed("not-installed-here") == "not-installed-here"  # not this environment's: left as named
