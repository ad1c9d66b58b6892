"""Every console script against the store it is given: a dead server refused in seconds with the paragraph
`seqlab` prints (naming the option of the command at hand), options and overrides in any order, reruns at
the thread count the run trained with, and experiments that MLflow's UI opens on their runs."""

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import runs_of, seqlab_env, tiny_config
from mlflow import MlflowClient

from seqlab import names
from seqlab.reproduce import rerun as rerun_module
from seqlab.tracking.store import EXPERIMENT_KIND_TAG, MODEL_TRAINING, open_experiment, ui_command
from seqlab.tracking.sweep import TORCH_THREADS_ENV
from seqlab.train import train

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
RUN_ID = "0123456789abcdef0123456789abcdef"
REFUSED_WITHIN_S = 20  # MLflow's own retries take minutes; the check answers in seconds


@pytest.fixture
def closed_port() -> str:
    """A tracking URI on 127.0.0.1 where nothing listens: a port the OS just handed out, then closed."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _commands(uri: str, spool: Path) -> dict[str, list[str]]:
    return {
        # options before overrides, as the issue typed it
        "seqlab-rerun": [str(BIN / "seqlab-rerun"), RUN_ID, "--tracking-uri", uri, "seed=1"],
        "seqlab-compare": [str(BIN / "seqlab-compare"), RUN_ID, "--tracking-uri", uri],
        "seqlab-compare --experiment": [
            str(BIN / "seqlab-compare"),
            "--experiment",
            "seqlab",
            "--tracking-uri",
            uri,
        ],
        "seqlab-upload": [str(BIN / "seqlab-upload"), str(spool), "--tracking-uri", uri],
        "nll_averaging": [
            sys.executable,
            "-m",
            "seqlab.reports.nll_averaging",
            RUN_ID,
            "--tracking-uri",
            uri,
        ],
        "nll_averaging --sweep": [
            sys.executable,
            "-m",
            "seqlab.reports.nll_averaging",
            "--sweep",
            RUN_ID,
            "--tracking-uri",
            uri,
        ],
        "seqlab resume=": [str(BIN / "seqlab"), f"resume={RUN_ID}", f"tracking.uri={uri}"],
    }


@pytest.mark.parametrize("command", list(_commands("", Path())))
def test_every_command_refuses_a_dead_server_in_seconds(command, closed_port, tmp_path):
    spool = tmp_path / "job" / "mlflow-spool"
    spool.mkdir(parents=True)
    (spool / "run.json").write_text(json.dumps({"run_id": RUN_ID, "status": "FINISHED", "tags": {}}))
    argv = _commands(closed_port, spool)[command]
    started = time.monotonic()
    done = subprocess.run(
        argv, cwd=tmp_path, env=seqlab_env(tmp_path), capture_output=True, text=True, timeout=240
    )
    took = time.monotonic() - started
    output = done.stdout + done.stderr

    assert took < REFUSED_WITHIN_S, f"{command} took {took:.0f} s: {output[-2000:]}"
    assert done.returncode != 0
    assert f"The MLflow tracking server {closed_port}" in output and "is not reachable" in output, output[
        -2000:
    ]
    assert "nothing was trained, read or logged" in output
    assert "no such run" not in output and "Traceback" not in output
    # the hint names what this command takes: seqlab's override, or the scripts' option
    given, other = (
        ("tracking.uri", "--tracking-uri")
        if command.startswith("seqlab ")
        else ("--tracking-uri", "tracking.uri")
    )
    assert f"fix {given}," in output and other not in output.replace(given, ""), output[-2000:]
    assert not (tmp_path / "outputs" / "mlflow.db").exists()


def test_rerun_takes_options_before_overrides(client, tracking_uri, capsys):
    # argparse's parse_args stops at the first option: seed=1 after --tracking-uri was "unrecognized"
    client.search_experiments()  # the store exists (MLflow creates it on first use)
    with pytest.raises(SystemExit) as exit_:
        rerun_module.main([RUN_ID, "--tracking-uri", tracking_uri, "seed=1"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "unrecognized arguments" not in err
    assert f"Cannot rerun run '{RUN_ID}': there is no such run" in err and "(--tracking-uri or" in err


# --- reruns at the run's thread count ----------------------------------------------------------------

# A per-step classifier over long sequences: the head's weight gradient sums over batch x time, a sum that
# torch splits between threads, so 1 and 2 threads give other numbers from the first epoch on.
THREAD_SENSITIVE = [
    "task=copy",
    "task.delay=100",
    "task.n_train=512",
    "task.n_val=128",
    "task.n_test=128",
    "model.hidden_size=64",
]


def _val_test(run) -> dict[str, float]:
    return {k: v for k, v in run.data.metrics.items() if k.startswith((names.VAL, names.TEST))}


def test_a_rerun_trains_with_the_thread_count_the_run_logged(tracking_uri, tmp_path, monkeypatch):
    client = MlflowClient(tracking_uri)
    before = torch.get_num_threads()
    try:
        # the original: a joblib job's share of the cores, its config leaving torch_threads unset
        monkeypatch.setenv(TORCH_THREADS_ENV, "1")
        cfg = tiny_config(tmp_path, tracking_uri, *THREAD_SENSITIVE, "trainer.max_epochs=1", tiny=False)
        train(cfg)
        [original] = runs_of(client, cfg.tracking.experiment)
        assert original.data.params.get("torch_threads", "None") == "None"
        assert original.data.params[names.TORCH_THREADS] == "1"

        # rerun from a shell whose torch defaults to 2 threads, the options before the overrides
        monkeypatch.delenv(TORCH_THREADS_ENV)
        monkeypatch.chdir(tmp_path)
        torch.set_num_threads(2)
        rerun_module.main([original.info.run_id, "--tracking-uri", tracking_uri, "seed=0"])
        assert torch.get_num_threads() == 2  # the process's own count is given back
        same = runs_of(client, cfg.tracking.experiment)[-1]
        assert same.data.tags[names.RERUN_OF] == original.info.run_id
        assert same.data.params[names.TORCH_THREADS] == "1"
        assert _val_test(same) == _val_test(original)

        # torch_threads on the command line still wins, and at 2 threads the numbers differ: the setting
        # above is one where the thread count matters
        other = client.get_run(rerun_module.rerun(original.info.run_id, ["torch_threads=2"], tracking_uri))
        assert other.data.params[names.TORCH_THREADS] == "2"
        assert _val_test(other) != _val_test(original)
    finally:
        torch.set_num_threads(before)


# --- MLflow's UI -------------------------------------------------------------------------------------


def test_experiments_are_marked_as_model_training_for_the_ui(tracking_uri):
    client = MlflowClient(tracking_uri)
    # a new experiment, one made before seqlab tagged them, and one whose kind someone chose in the UI
    _, new = open_experiment(tracking_uri, "kind-new")
    old = client.create_experiment("kind-old")
    chosen = client.create_experiment("kind-chosen", tags={EXPERIMENT_KIND_TAG: "genai_development"})
    for name in ("kind-old", "kind-chosen"):
        open_experiment(tracking_uri, name)

    def kind(experiment_id: str) -> str | None:
        return client.get_experiment(experiment_id).tags.get(EXPERIMENT_KIND_TAG)

    assert kind(new) == kind(old) == MODEL_TRAINING
    assert kind(chosen) == "genai_development"


def test_the_ui_line_of_a_server_opens_the_runs_page(tmp_path, monkeypatch):
    assert ui_command("http://user:pw@127.0.0.1:5000/", "7") == (
        "open http://***@127.0.0.1:5000/#/experiments/7/runs in a browser"
    )
    store = tmp_path / "elsewhere" / "mlflow.db"
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")  # a store outside the working folder keeps its absolute path
    assert ui_command(f"sqlite:///{store}", "7").endswith(f"ui --backend-store-uri sqlite:///{store}")
