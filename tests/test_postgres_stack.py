"""The tracking stack on PostgreSQL (`python -m seqlab.tracking.stack`), started as a user starts it: jobs log
through its MLflow server and straight to the database, a parallel sweep on an empty database loses no job,
and its password appears in no printed line, file, param or tag. PostgreSQL must be installed (.ci/run
installs it): without it these tests skip on a developer machine and fail under CI=true."""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psutil
import pytest
from conftest import TINY, seqlab_env
from mlflow import MlflowClient
from slow_run import SLOW_EPOCHS, assert_complete, start_seqlab, wait_for_first_epoch

from seqlab.tracking.stack import Stack, find_bindir

pytestmark = pytest.mark.integration
SEQLAB = str(Path(sys.executable).parent / "seqlab")
STACK = [sys.executable, "-m", "seqlab.tracking.stack"]
# six tiny jobs, two at a time: the sweep of docs/scale-out.md, made small
SWEEP = ["-m", "cell=rnn,lstm,gru", "seed=0,1", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]
SWEEP += [*TINY, "tracking.system_metrics=false"]


def require_postgres() -> Path:
    """PostgreSQL's programs, found as the stack finds them; skipped without them, failed under CI=true."""
    bindir = find_bindir()
    if bindir is None:
        message = (
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): apt-get install postgresql"
        )
        if os.environ.get("CI", "").lower() in {"true", "1"}:
            pytest.fail(message)
        pytest.skip(message)
    return bindir


def stack_command(root: Path, *argv: str, timeout: float = 150) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*STACK, *argv, "--root", str(root)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=seqlab_env(root),
    )


def stack_root() -> Path:
    """A folder the user `postgres` can enter when the tests run as root (pytest's tmp_path is closed)."""
    return Path(tempfile.mkdtemp(prefix="seqlab-stack-"))


@pytest.fixture(scope="module")
def stack():
    require_postgres()
    root = stack_root()
    try:
        started = stack_command(root, "start")
        assert started.returncode == 0, started.stdout + started.stderr
        yield Stack(root), started
    finally:
        stack_command(root, "stop")
        shutil.rmtree(root, ignore_errors=True)


def empty_database(stack: Stack) -> str:
    """A new, empty database in the stack's PostgreSQL; its postgresql:// URI, password included."""
    import psycopg

    state, name = stack.state(), f"empty_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(
        host="127.0.0.1", port=state["pg_port"], user="seqlab", password=stack.password(), dbname="postgres",
        autocommit=True,
    ) as conn:  # fmt: skip
        conn.execute(f'CREATE DATABASE "{name}"')
    return stack.database_uri(state).rsplit("/", 1)[0] + f"/{name}"


def nowhere_under(root: Path, secret: str) -> None:
    """As in test_secrets: neither a path nor a file under root holds the secret."""
    found = [
        p for p in root.rglob("*") if secret in str(p) or (p.is_file() and secret.encode() in p.read_bytes())
    ]
    assert not found, found


def assert_sweep_complete(client: MlflowClient, experiment: str, secret: str) -> None:
    """The parent and its six jobs, every one FINISHED, none showing the secret in a param or tag."""
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    assert len(runs) == 7, [r.info.run_name for r in runs]
    assert {r.info.status for r in runs} == {"FINISHED"}
    jobs = [r for r in runs if r.data.tags.get("mlflow.parentRunId")]
    assert len({r.data.tags["mlflow.parentRunId"] for r in jobs}) == 1 and len(jobs) == 6
    for run in runs:
        assert secret not in str(run.data.params) + str(run.data.tags), run.info.run_name


def test_start_prints_the_server_uri_listens_on_loopback_only_and_starts_once(stack):
    stack, started = stack
    state = stack.state()
    uri = f"http://127.0.0.1:{state['port']}"
    assert started.stdout.splitlines()[-1] == f"tracking.uri={uri}"
    assert (stack.password_file.stat().st_mode & 0o777) == 0o600
    again = stack_command(stack.root, "start")
    assert again.returncode == 0, again.stderr
    assert "was running already" in again.stdout and again.stdout.splitlines()[-1] == f"tracking.uri={uri}"
    assert stack.state() == state  # the same pids and ports: nothing started twice
    status = stack_command(stack.root, "status")
    assert status.returncode == 0 and f"on {uri}" in status.stdout
    # both listen on loopback only (as `ss -tlnp` shows): PostgreSQL and every MLflow server process
    pids = {stack.postgres_pid(), state["mlflow_pid"]}
    pids |= {p.pid for p in psutil.Process(state["mlflow_pid"]).children(recursive=True)}
    listening = [c for c in psutil.net_connections("tcp") if c.status == "LISTEN" and c.pid in pids]
    assert {c.laddr.port for c in listening} == {state["pg_port"], state["port"]}
    assert {c.laddr.ip for c in listening} == {"127.0.0.1"}
    # the password: in its file and in the line asked for, in no other output, log or process's arguments
    secret = stack.password()
    for done in (started, again, status):
        assert secret not in done.stdout + done.stderr
    asked = stack_command(stack.root, "uri", "--database")
    assert asked.stdout.strip() == f"postgresql://seqlab:{secret}@127.0.0.1:{state['pg_port']}/mlflow"
    for name in ("mlflow.log", "postgres.log", "stack.json"):
        assert secret not in (stack.root / name).read_text()
    for proc in psutil.process_iter(["cmdline"]):
        assert secret not in " ".join(proc.info["cmdline"] or ())


def test_a_parallel_sweep_through_the_server_loses_no_job(stack, tmp_path):
    stack, _ = stack
    uri = f"http://127.0.0.1:{stack.state()['port']}"
    done = subprocess.run(
        [SEQLAB, *SWEEP, f"tracking.uri={uri}", "tracking.experiment=through-server"],
        cwd=tmp_path, env=seqlab_env(tmp_path), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert_sweep_complete(MlflowClient(uri), "through-server", stack.password())
    nowhere_under(tmp_path, stack.password())


def test_a_parallel_sweep_straight_to_an_empty_database_loses_no_job(stack, tmp_path):
    stack, _ = stack
    uri = empty_database(stack)
    secret = stack.password()
    # as typed on a command line (seqlab moves it out of Hydra's sight before any job starts)
    done = subprocess.run(
        [SEQLAB, *SWEEP, f"tracking.uri={uri}", "tracking.experiment=straight"],
        cwd=tmp_path, env=seqlab_env(tmp_path), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert secret not in done.stdout + done.stderr
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert_sweep_complete(MlflowClient(uri), "straight", secret)
    nowhere_under(tmp_path, secret)


RACER = """
import os, sys, time
from seqlab.tracking.store import open_experiment
from mlflow import MlflowClient
import mlflow.store.tracking.sqlalchemy_store  # imported before the start, so all begin together
uri, go = os.environ["RACE_URI"], float(sys.argv[2])
time.sleep(max(0.0, go - time.time()))
if sys.argv[1] == "seqlab":
    open_experiment(uri, "race")
else:
    MlflowClient(uri).search_experiments()
"""


def race(uri: str, kinds: list[str]) -> list[subprocess.CompletedProcess]:
    """Clients that open an empty database at the same moment: seqlab's (open_experiment) and MLflow's own."""
    go = time.time() + 12  # every racer has imported MLflow by then
    env = {**os.environ, "RACE_URI": uri, "OMP_NUM_THREADS": "1"}
    racer = [sys.executable, "-c", RACER]
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    procs = [subprocess.Popen([*racer, kind, str(go)], env=env, **pipes) for kind in kinds]
    results = []
    for proc, kind in zip(procs, kinds, strict=True):
        out, err = proc.communicate(timeout=120)
        results.append(subprocess.CompletedProcess([kind], proc.returncode, out, err))
    return results


def test_clients_of_seqlab_opening_an_empty_database_at_once_all_succeed(stack):
    results = race(empty_database(stack[0]), ["seqlab"] * 4)
    assert [r.returncode for r in results] == [0] * 4, [r.stderr[-1500:] for r in results]


def test_seqlab_waits_out_mlflow_clients_creating_the_tables(stack):
    """MLflow's own clients (a server, `mlflow ui`) take no lock: seqlab's retry while they create them."""
    results = race(empty_database(stack[0]), ["mlflow", "seqlab", "mlflow", "seqlab"])
    seqlab = [r for r in results if r.args == ["seqlab"]]
    assert [r.returncode for r in seqlab] == [0, 0], [r.stderr[-1500:] for r in seqlab]


def test_a_port_in_use_is_refused_and_nothing_is_started(tmp_path):
    require_postgres()
    root = stack_root()
    try:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            done = stack_command(root, "start", "--pg-port", str(port))
        assert done.returncode == 2, done.stdout + done.stderr
        assert f"127.0.0.1:{port}" in done.stderr and "in use" in done.stderr and "--pg-port" in done.stderr
        assert not (root / "pgdata").exists() and not (root / "stack.json").exists()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_without_postgresql_it_says_how_to_install_it(tmp_path):
    done = stack_command(tmp_path / "stack", "start", "--pg-bin", str(tmp_path / "no-postgres"))
    assert done.returncode == 2
    assert "apt-get install postgresql" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "stack").exists() or not any((tmp_path / "stack").iterdir())


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs PostgreSQL as another user")
def test_as_root_a_folder_postgres_cannot_enter_is_refused(tmp_path):
    require_postgres()
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    done = stack_command(closed / "stack", "start")
    assert done.returncode == 2
    assert "refuses to run as root" in done.stderr and "--root" in done.stderr
    assert not (closed / "stack" / "pgdata").exists()


def test_stop_ends_both_by_pid_and_a_restart_keeps_the_uri_and_the_runs(stack):
    stack, _ = stack
    state = stack.state()
    uri = f"http://127.0.0.1:{state['port']}"
    kept = f"kept-{uuid.uuid4().hex[:8]}"
    MlflowClient(uri).create_experiment(kept)
    pids = [stack.postgres_pid(), state["mlflow_pid"]]
    stopped = stack_command(stack.root, "stop")
    assert (
        stopped.returncode == 0 and f"pid {pids[0]}" in stopped.stdout and f"pid {pids[1]}" in stopped.stdout
    )
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie" for pid in pids)
    assert stack_command(stack.root, "status").returncode == 1
    assert "Nothing runs" in stack_command(stack.root, "stop").stdout  # stopping twice is harmless
    restarted = stack_command(stack.root, "start")
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    assert restarted.stdout.splitlines()[-1] == f"tracking.uri={uri}"  # the same ports as before
    assert MlflowClient(uri).get_experiment_by_name(kept) is not None  # and the same data
    assert json.loads(stack.state_file.read_text())["pg_port"] == state["pg_port"]


def test_a_run_logging_through_the_stack_restarted_mid_training_loses_nothing(stack, tmp_path):
    """Both the MLflow server and PostgreSQL stopped and started again while a run trains: its metrics
    wait in the spool, and the run ends FINISHED with every epoch, as it does against a SQLite server."""
    stack, _ = stack
    uri = f"http://127.0.0.1:{stack.state()['port']}"
    client, experiment = MlflowClient(uri), f"restart-{uuid.uuid4().hex[:8]}"
    proc = start_seqlab(tmp_path, uri, experiment, *SLOW_EPOCHS)
    try:
        run_id = wait_for_first_epoch(client, proc, experiment)
        stopped = stack_command(stack.root, "stop")
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        time.sleep(3)  # training goes on meanwhile
        assert proc.poll() is None, "the run ended before the outage: make it slower"
        restarted = stack_command(stack.root, "start")
        assert restarted.returncode == 0, restarted.stdout + restarted.stderr
        output, _ = proc.communicate(timeout=400)
    finally:
        proc.kill()
    assert proc.returncode == 0, output[-4000:]
    assert_complete(client, run_id)
