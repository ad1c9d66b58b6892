"""`mlflow models serve -m runs:/<id>/model --env-manager local`, a real scoring server on a free loopback
port, answers /invocations as `mlflow.pyfunc.load_model(...).predict` does: for a regression (a CSV, in
the data's units), a classification (symbols as int64) and a music run (88-key piano rolls)."""

import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import mlflow
import numpy as np
import pytest
from conftest import runs_of, seqlab_env, tiny_config
from mlflow import MlflowClient

from seqlab.train import train

pytestmark = pytest.mark.integration
BIN = Path(sys.executable).parent
START_S = 60  # the scoring server imports torch and loads the model: seconds, not minutes


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tracking_uri) -> Callable[..., str]:
    """A tiny run per set of overrides, trained once for the module in one store; returns its run id.

    Trained on first use, so that a test's data_cache is in place when its run reads the data."""
    root = tmp_path_factory.mktemp("serving")
    ids: dict[tuple[str, ...], str] = {}

    def run_id(*overrides: str) -> str:
        if overrides not in ids:
            cfg = tiny_config(root, tracking_uri, *overrides, "model.hidden_size=8")
            train(cfg)
            [run] = runs_of(MlflowClient(tracking_uri), cfg.tracking.experiment)
            ids[overrides] = run.info.run_id
        return ids[overrides]

    return run_id


class Served:
    """A served model and the same model loaded in this process, from the same run."""

    def __init__(self, url: str, model: mlflow.pyfunc.PyFuncModel, folder: Path) -> None:
        self.url, self.model, self.folder = url, model, folder
        [self.dtype] = model.metadata.get_input_schema().numpy_types()

    def post(self, body: bytes) -> tuple[int, dict]:
        request = urllib.request.Request(
            f"{self.url}/invocations", body, {"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as refused:
            return refused.code, json.loads(refused.read())

    def predict(self, inputs: np.ndarray) -> np.ndarray:
        """What the server answers for `inputs`, checked against the loaded model's predict.

        JSON has no dtypes: the server casts what it reads to the signature's (0/1 integers to float32),
        where a local predict takes numpy arrays of that dtype only."""
        status, answer = self.post(json.dumps({"inputs": inputs.tolist()}).encode())
        assert status == 200, answer
        served = np.asarray(answer["predictions"], dtype=np.float32)
        np.testing.assert_allclose(
            served, self.model.predict(inputs.astype(self.dtype)), rtol=1e-5, atol=1e-6
        )
        return served

    def example(self) -> np.ndarray:
        """The model's own serving_input_example.json, posted as it was saved; returns its inputs."""
        body = (self.folder / "serving_input_example.json").read_bytes()
        status, answer = self.post(body)
        assert status == 200, answer
        inputs = np.asarray(json.loads(body)["inputs"], dtype=self.dtype)
        served = np.asarray(answer["predictions"], dtype=np.float32)
        np.testing.assert_allclose(served, self.model.predict(inputs), rtol=1e-5, atol=1e-6)
        return inputs


@contextmanager
def serving(run_id: str, tracking_uri: str, tmp_path: Path) -> Iterator[Served]:
    """`mlflow models serve` in its own process group on a free 127.0.0.1 port, stopped by pid at the end."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = seqlab_env(tmp_path) | {
        "MLFLOW_TRACKING_URI": tracking_uri,
        # as in an activated environment: the server starts `uvicorn` from PATH
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    }
    uri = f"runs:/{run_id}/model"
    command = [BIN / "mlflow", "models", "serve", "-m", uri, "--env-manager", "local"]
    log_path = tmp_path / "serve.log"
    with open(log_path, "w") as log:  # the server writes to its own copy of the handle
        proc = subprocess.Popen(
            [*command, "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_S
        while True:
            assert proc.poll() is None, (
                f"the server exited {proc.returncode}:\n{log_path.read_text()[-3000:]}"
            )
            try:
                with urllib.request.urlopen(f"{url}/ping", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, f"no answer in {START_S} s:\n{log_path.read_text()[-3000:]}"
            time.sleep(0.25)
        folder = Path(MlflowClient(tracking_uri).download_artifacts(run_id, "model", str(tmp_path)))
        yield Served(url, mlflow.pyfunc.load_model(str(folder)), folder)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the CLI and the uvicorn it started
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)


def test_a_served_csv_regression_answers_in_the_data_units(trained, tracking_uri, tmp_path):
    rows = [f"{i},{100 + i + 5 * math.sin(i):.3f},{math.cos(i / 7):.4f}" for i in range(300)]
    path = tmp_path / "load.csv"
    path.write_text("\n".join(["step,load,temp", *rows]) + "\n")
    run_id = trained(
        "task=csv", f"task.path={path}", "task.target=load", "task.time_column=step", "task.window=6"
    )
    with serving(run_id, tracking_uri, tmp_path) as served:
        example = served.example()
        assert example.shape[1:] == (6, 2) and example.dtype == np.float32
        # a longer window, in the data's units (load about 350, not a z-score)
        window = np.array([[[float(v) for v in r.split(",")[1:]] for r in rows[-10:]]], np.float32)
        predicted = served.predict(window)
        assert predicted.shape == (1, 1) and predicted[0, 0] > 20


def test_a_served_classifier_takes_symbols_as_int64(trained, tracking_uri, tmp_path):
    run_id = trained("task=copy")
    with serving(run_id, tracking_uri, tmp_path) as served:
        example = served.example()
        assert example.dtype == np.int64
        other = example[::-1].copy()
        other[:, 0] = 1  # other symbols to copy
        logits = served.predict(other)
        assert logits.shape == (*other.shape, 9)  # per step: blank, the 8 symbols


def test_a_served_music_model_takes_piano_rolls_of_any_length(trained, tracking_uri, tmp_path, data_cache):
    data_cache("JSB_Chorales.mat")
    run_id = trained("task=music")
    with serving(run_id, tracking_uri, tmp_path) as served:
        example = served.example()
        assert example.shape[2] == 88
        # one piece, shorter than the example's padded length, written as 0/1 integers
        piece = example[:1, :50].astype(np.int64)
        assert served.predict(piece).shape == (1, 50, 88)
        status, answer = served.post(json.dumps({"inputs": piece[:, :, :87].tolist()}).encode())
        assert status == 400 and "shape" in answer["message"]  # 87 keys: refused, with a reason
