"""A real `mlflow server` subprocess on a free loopback port: end to end with artifacts, credentials
redacted, and an outage in the middle of training (the server stopped and restarted on the same port)."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import seqlab_env
from mlflow import MlflowClient
from slow_run import SLOW_EPOCHS, assert_complete, start_seqlab, the_run, wait_for_first_epoch

pytestmark = pytest.mark.integration
SECRET = "hunter2-secret"


class MlflowServer:
    """`mlflow server` with a SQLite backend and served local artifacts; stop() and start() keep the port."""

    def __init__(self, root: Path) -> None:
        self.root = root
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.uri = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.root / "server.log", "a") as log:  # the server writes to its own copy of the handle
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "mlflow",
                    "server",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--workers",
                    "1",
                    "--backend-store-uri",
                    f"sqlite:///{self.root / 'server.db'}",
                    "--artifacts-destination",
                    str(self.root / "artifacts"),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2):
                    return
            except OSError:
                time.sleep(0.3)
        raise AssertionError("mlflow server did not start: " + (self.root / "server.log").read_text()[-3000:])

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the server and its workers: a crash, not a shutdown
            self.proc.wait()


@pytest.fixture(scope="module")
def _module_server(tmp_path_factory):
    """One server for the module (it takes seconds to start); each test logs to an experiment of its own."""
    server = MlflowServer(tmp_path_factory.mktemp("mlflow-server"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def server(_module_server):
    if _module_server.proc is None or _module_server.proc.poll() is not None:  # a test that stopped it failed
        _module_server.start()
    return _module_server


@pytest.fixture
def experiment(request) -> str:
    return request.node.name


def test_end_to_end_against_a_server_with_credentials_in_the_uri(server, experiment, tmp_path):
    uri = f"http://bob:{SECRET}@127.0.0.1:{server.port}"
    proc = start_seqlab(tmp_path, uri, experiment, "debug=fast")
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, output[-4000:]
    assert SECRET not in output
    client = MlflowClient(server.uri)
    run = the_run(client, experiment)
    assert run.info.status == "FINISHED"
    assert run.data.params["tracking.uri"] == f"http://***@127.0.0.1:{server.port}"
    config_yaml = Path(client.download_artifacts(run.info.run_id, "config.yaml", str(tmp_path))).read_text()
    assert SECRET not in config_yaml + str(run.data.params) + str(run.data.tags)
    assert {"checkpoints", "plots", "model"} <= {f.path for f in client.list_artifacts(run.info.run_id)}
    assert list(server.root.glob(f"artifacts/**/{run.info.run_id}/**/*.ckpt")), (
        "artifacts went to the server's store"
    )


def test_a_server_restarted_mid_training_loses_nothing(server, experiment, tmp_path):
    client = MlflowClient(server.uri)
    proc = start_seqlab(tmp_path, server.uri, experiment, *SLOW_EPOCHS)
    try:
        run_id = wait_for_first_epoch(client, proc, experiment)
        server.stop()
        time.sleep(6)  # training goes on meanwhile; its metrics wait in the spool
        server.start()
        output, _ = proc.communicate(timeout=400)
    finally:
        proc.kill()
    assert proc.returncode == 0, output[-4000:]
    assert_complete(client, run_id)
    assert not list(tmp_path.rglob("mlflow-spool")), "an emptied spool is removed"


def test_a_server_that_never_returns_leaves_a_spool_to_upload(server, experiment, tmp_path):
    client = MlflowClient(server.uri)
    proc = start_seqlab(tmp_path, server.uri, experiment, *SLOW_EPOCHS, "tracking.outage_wait_s=3")
    try:
        run_id = wait_for_first_epoch(client, proc, experiment)
        server.stop()
        output, _ = proc.communicate(timeout=400)
    finally:
        proc.kill()
    assert proc.returncode != 0, output[-4000:]
    [spool] = list(tmp_path.rglob("mlflow-spool"))
    assert "seqlab-upload" in output and str(spool) in output, output[-3000:]
    assert (spool / "metrics.jsonl").exists() and list((spool / "artifacts").rglob("*.ckpt"))
    server.start()
    command = output.split("upload them with: ")[1].splitlines()[
        0
    ]  # run as printed, where the run was started
    upload = subprocess.run(
        command,
        shell=True,
        cwd=tmp_path,
        env=seqlab_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert upload.returncode == 0, f"{command}: {upload.stderr[-3000:]}"
    assert_complete(client, run_id)
    assert not spool.exists()
