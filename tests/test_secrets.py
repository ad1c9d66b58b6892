"""A password in tracking.uri appears nowhere: not printed, not in a file seqlab or Hydra writes (job
folder names, .hydra/*.yaml, logs), not in MLflow (params, tags, the config artifact). Checked against a
real `mlflow server` behind HTTP basic auth, and with a database URL whose server is not there."""

import base64
import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import TINY, seqlab_env
from mlflow import MlflowClient

from seqlab.train import TRACKING_URI_ENV, hide_tracking_credentials

pytestmark = pytest.mark.integration
SEQLAB = str(Path(sys.executable).parent / "seqlab")
USER, SECRET = "alice", "Tr0ub4dor-secret-pw"


class BasicAuthProxy(BaseHTTPRequestHandler):
    """HTTP basic auth in front of a plain `mlflow server` (MLflow's own auth app needs Flask-WTF, which
    seqlab does not install): a request without USER:SECRET gets 401, /health needs none (as there)."""

    upstream = ""  # host:port of the mlflow server
    authorized = 0  # requests that came with the right credentials

    def _forward(self) -> None:
        expected = "Basic " + base64.b64encode(f"{USER}:{SECRET}".encode()).decode()
        if self.path != "/health" and self.headers.get("Authorization") != expected:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="mlflow"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        type(self).authorized += self.path != "/health"
        body = self._body()
        upstream = http.client.HTTPConnection(self.upstream, timeout=60)
        dropped = ("host", "authorization", "transfer-encoding", "content-length")
        headers = {k: v for k, v in self.headers.items() if k.lower() not in dropped}
        upstream.request(self.command, self.path, body=body, headers=headers)
        answer = upstream.getresponse()
        data = answer.read()
        self.send_response(answer.status)
        for key, value in answer.getheaders():
            if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        upstream.close()

    def _body(self) -> bytes:
        """The request's body, also when sent chunked (requests sends an empty file's upload that way)."""
        if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))
        chunks = []
        while size := int(self.rfile.readline().split(b";")[0], 16):
            chunks.append(self.rfile.read(size))
            self.rfile.readline()  # the CRLF after each chunk
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers, then the blank line
            pass
        return b"".join(chunks)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward  # noqa: N815 (http.server's names)

    def log_message(self, format: str, *args) -> None:  # quiet: the test output is what is checked
        pass


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory):
    """A real `mlflow server` behind HTTP basic auth on loopback ports; yields the URI with USER:SECRET."""
    root = tmp_path_factory.mktemp("auth-server")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--workers", "1", "--backend-store-uri", f"sqlite:///{root / 'runs.db'}"]
    command += ["--artifacts-destination", str(root / "artifacts")]
    with open(root / "server.log", "w") as log:
        proc = subprocess.Popen(
            command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    BasicAuthProxy.upstream = f"127.0.0.1:{port}"
    proxy = ThreadingHTTPServer(("127.0.0.1", 0), BasicAuthProxy)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                    break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    raise AssertionError("no server: " + (root / "server.log").read_text()[-3000:]) from None
                time.sleep(0.3)
        yield f"http://{USER}:{SECRET}@127.0.0.1:{proxy.server_address[1]}"
    finally:
        proxy.shutdown()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _seqlab(cwd: Path, *argv: str) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [SEQLAB, *argv], cwd=cwd, env=seqlab_env(cwd), capture_output=True, text=True, timeout=300
    )
    assert SECRET not in done.stdout + done.stderr, done.stdout + done.stderr
    return done


def _assert_nowhere_under(root: Path) -> None:
    """Neither a path nor a file under root holds the secret (job folders, .hydra/*.yaml, logs, spools)."""
    found = [
        p for p in root.rglob("*") if SECRET in str(p) or (p.is_file() and SECRET.encode() in p.read_bytes())
    ]
    assert not found, found


def test_the_command_line_hands_hydra_an_interpolation_and_the_job_the_uri(monkeypatch):
    monkeypatch.delenv(TRACKING_URI_ENV, raising=False)
    uri = f"postgresql://{USER}:{SECRET}@db.example/runs"
    argv = hide_tracking_credentials([f"tracking.uri='{uri}'", "cell=gru", "tracking.experiment=x"])
    assert argv == [f"tracking.uri=${{oc.env:{TRACKING_URI_ENV}}}", "cell=gru", "tracking.experiment=x"]
    assert os.environ[TRACKING_URI_ENV] == uri
    plain = ["tracking.uri=http://127.0.0.1:5000", "seed=1"]  # no credentials: left as typed
    assert hide_tracking_credentials(plain) == plain


def test_a_sweep_against_a_server_with_basic_auth_shows_the_password_nowhere(auth_server, tmp_path):
    experiment = "secrets-sweep"
    done = _seqlab(
        tmp_path,
        "-m",
        f"tracking.uri={auth_server}",
        f"tracking.experiment={experiment}",
        "cell=rnn,gru",
        *TINY,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert BasicAuthProxy.authorized > 0  # the jobs reached the server with the real credentials
    _assert_nowhere_under(tmp_path)
    client = MlflowClient(auth_server)
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    runs = client.search_runs([experiment_id])
    assert len(runs) == 3  # the sweep's parent and its two jobs
    for run in runs:
        # the job folders (paths, checkpoint dirpaths) hold no part of the URI either
        assert f"{USER}:" not in str(run.data.params) + str(run.data.tags), run.info.run_name
        if run.data.tags.get("mlflow.parentRunId"):
            config_yaml = Path(client.download_artifacts(run.info.run_id, "config.yaml", str(tmp_path)))
            assert SECRET not in config_yaml.read_text()


def test_a_sweep_given_the_password_in_mlflows_environment_variables_shows_it_nowhere(auth_server, tmp_path):
    """MLflow's own way to pass credentials (MLFLOW_TRACKING_USERNAME / _PASSWORD): the jobs reach the
    server with them, and the password is in no printed line, file, param, tag or artifact."""
    address, experiment = "http://" + auth_server.split("@", 1)[1], "secrets-env"
    before = BasicAuthProxy.authorized
    env = seqlab_env(tmp_path) | {"MLFLOW_TRACKING_USERNAME": USER, "MLFLOW_TRACKING_PASSWORD": SECRET}
    command = [SEQLAB, "-m", f"tracking.uri={address}", f"tracking.experiment={experiment}", "cell=rnn,gru"]
    done = subprocess.run(
        [*command, *TINY], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert SECRET not in done.stdout + done.stderr, done.stdout + done.stderr
    assert BasicAuthProxy.authorized > before  # the credentials came from the environment
    _assert_nowhere_under(tmp_path)
    client = MlflowClient(auth_server)
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    assert len(runs) == 3
    for run in runs:
        assert SECRET not in str(run.data.params) + str(run.data.tags), run.info.run_name
        artifacts = Path(client.download_artifacts(run.info.run_id, "", str(tmp_path / run.info.run_id)))
        _assert_nowhere_under(artifacts)


def test_a_failing_run_against_a_server_with_basic_auth_shows_the_password_nowhere(auth_server, tmp_path):
    done = _seqlab(
        tmp_path, f"tracking.uri={auth_server}", "task=csv", "task.path=missing.csv", "task.target=a", *TINY
    )
    assert done.returncode == 2, done.stdout + done.stderr
    _assert_nowhere_under(tmp_path)


@pytest.mark.parametrize("multirun", [[], ["-m", "cell=rnn,gru"]], ids=["run", "sweep"])
def test_a_database_url_that_cannot_be_used_shows_the_password_nowhere(multirun, tmp_path):
    uri = f"postgresql://{USER}:{SECRET}@127.0.0.1:9/runs"
    done = _seqlab(tmp_path, *multirun, f"tracking.uri={uri}", *TINY)
    assert done.returncode != 0
    _assert_nowhere_under(tmp_path)
