"""Sweeps through seqlab's Ray launcher (hydra/launcher=ray), on a Ray the launcher starts and on an existing
cluster (`ray start --head`): every job a run nested under the sweep's parent, Ray on loopback only, and a
sweep stopped (SIGTERM to the launching process) or a job's worker killed leaves no run RUNNING."""

import contextlib
import ipaddress
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest
from conftest import runs_of, seqlab_env
from mlflow import MlflowClient

from seqlab import names

pytestmark = pytest.mark.integration

TINY = [
    "task=adding",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
    "tracking.system_metrics=false",
    "hydra/launcher=ray",
]
RAY = Path(sys.executable).parent / "ray"


def _seqlab(folder: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "seqlab.train", *args, f"tracking.uri=sqlite:///{folder / 'mlflow.db'}"],
        cwd=folder,
        env=env or seqlab_env(folder),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _tree(proc: subprocess.Popen | int) -> list[psutil.Process]:
    with contextlib.suppress(psutil.Error):
        root = psutil.Process(proc if isinstance(proc, int) else proc.pid)
        return [root, *root.children(recursive=True)]
    return []


def _off_loopback(processes: list[psutil.Process]) -> list[str]:
    """Every TCP socket of these processes that is bound or connected elsewhere than loopback."""
    found = []
    for process in processes:
        with contextlib.suppress(psutil.Error):
            for conn in process.net_connections(kind="tcp"):
                for addr in (conn.laddr, conn.raddr):
                    if addr and not ipaddress.ip_address(addr.ip.removeprefix("::ffff:")).is_loopback:
                        found.append(f"{process.name()} (pid {process.pid}): {conn.laddr} -> {conn.raddr}")
    return found


def _stop(processes: list[psutil.Process]) -> None:
    """Kill what a test started and is still alive, by pid."""
    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(processes, timeout=10)


def _alive(processes) -> list[psutil.Process]:
    alive = []
    for process in processes:
        with contextlib.suppress(psutil.Error):
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                alive.append(process)
    return alive


def _parent(client: MlflowClient):
    (parent,) = [r for r in runs_of(client, "seqlab") if names.SWEEP_JOBS_TAG in r.data.tags]
    return parent


def _jobs(client: MlflowClient, parent_id: str) -> dict[str, object]:
    runs = runs_of(client, "seqlab")
    return {
        r.data.tags[names.JOB_NUM_TAG]: r for r in runs if r.data.tags.get(names.PARENT_RUN_TAG) == parent_id
    }


def _watch(proc: subprocess.Popen, timeout: float, watched: list[psutil.Process], until=None) -> list[str]:
    """Sample the sockets of the sweep's processes (and `watched`) until it ends, or until `until()` holds;
    returns those off loopback."""
    off: list[str] = []
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        off += _off_loopback(_tree(proc) + watched)
        with contextlib.suppress(Exception):  # the store or the folder is still being created
            if until is not None and until():
                return off
        time.sleep(0.5)
    assert until is None, "the sweep ended (or timed out) before it could be stopped"
    return off


def test_a_local_ray_sweep_nests_its_jobs_on_loopback_and_stops_ray(tmp_path):
    proc = _seqlab(tmp_path, "-m", "cell=rnn,gru", "trainer.max_epochs=2", *TINY)
    started: dict[psutil.Process, str] = {}
    try:
        off = []
        deadline = time.monotonic() + 150
        while proc.poll() is None and time.monotonic() < deadline:
            tree = _tree(proc)
            for process in tree:
                with contextlib.suppress(psutil.Error):
                    started.setdefault(process, process.name())
            off += _off_loopback(tree)
            time.sleep(0.5)
        output, _ = proc.communicate(timeout=10)
    finally:
        _stop(_tree(proc))
    assert proc.returncode == 0, output[-3000:]
    assert not off, "\n".join(sorted(set(off)))
    assert {"raylet", "gcs_server"} <= set(started.values()), f"no Ray was seen running: {started}"
    assert not _alive(started), "Ray was left running"
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    parent = _parent(client)
    assert parent.info.status == "FINISHED"
    jobs = _jobs(client, parent.info.run_id)
    assert sorted(jobs) == ["0", "1"] and all(j.info.status == "FINISHED" for j in jobs.values())
    # ray.remote.num_cpus is 1 by default: each job trains with one thread
    assert [j.data.params[names.TORCH_THREADS] for j in jobs.values()] == ["1", "1"]


@pytest.fixture
def ray_cluster():
    """`ray start --head` on loopback, as a user starts a cluster on this machine; stopped by pid."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    temp_dir = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths live under it
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SEQLAB_", "MLFLOW_"))}
    env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # see docs/scale-out.md#ray: Ray on loopback
    start = subprocess.run(
        [str(RAY), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=2",
         "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp_dir}"],
        env=env, capture_output=True, text=True, timeout=90,
    )  # fmt: skip

    def processes() -> list[psutil.Process]:
        mine = []
        for process in psutil.process_iter(["cmdline"]):
            with contextlib.suppress(psutil.Error):
                if temp_dir in " ".join(process.info["cmdline"] or []):
                    mine += [process, *process.children(recursive=True)]
        return mine

    try:
        assert start.returncode == 0, start.stdout + start.stderr
        yield f"127.0.0.1:{port}", processes()
    finally:
        _stop(processes())


def test_a_sweep_on_an_existing_ray_cluster_learns_its_sweep_from_the_job(tmp_path, ray_cluster):
    address, cluster = ray_cluster
    proc = _seqlab(
        tmp_path, "-m", "cell=rnn,gru", "trainer.max_epochs=1", *TINY,
        f"hydra.launcher.ray.init.address={address}",
        "+hydra.launcher.ray.init.object_store_memory=100000000",
    )  # fmt: skip
    try:
        off = _watch(proc, 150, cluster)
        output, _ = proc.communicate(timeout=10)
    finally:
        _stop(_tree(proc))
    assert proc.returncode == 0, output[-3000:]
    assert not off, "\n".join(sorted(set(off)))
    assert "Left out ray.init's object_store_memory" in output
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    parent = _parent(client)
    assert parent.info.status == "FINISHED"
    # the cluster's workers started without the sweep's variables: the jobs learnt it from the job itself
    jobs = _jobs(client, parent.info.run_id)
    assert sorted(jobs) == ["0", "1"] and all(j.info.status == "FINISHED" for j in jobs.values())
    assert all(p.is_running() for p in cluster), "the sweep stopped a cluster that is not its own"


def test_a_ray_sweep_stopped_with_sigterm_cancels_its_jobs(tmp_path):
    proc = _seqlab(tmp_path, "-m", "cell=rnn,gru", "trainer.max_epochs=40", *TINY)
    started: list[psutil.Process] = []

    def both_training() -> bool:
        started.extend(p for p in _tree(proc) if p not in started)
        return len(list(tmp_path.glob("outputs/multirun/*/*/checkpoints/last.ckpt"))) == 2

    try:
        _watch(proc, 120, [], until=both_training)
        stopped_at = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
        took = time.monotonic() - stopped_at
    finally:
        _stop(_tree(proc))
    assert proc.returncode == 128 + signal.SIGTERM, output[-3000:]
    assert took < 15, f"the stop took {took:.1f} s"
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert not [r.info.run_name for r in runs_of(client, "seqlab") if r.info.status == "RUNNING"]
    parent = _parent(client)
    assert parent.info.status == "KILLED", output[-3000:]
    jobs = _jobs(client, parent.info.run_id)
    assert {n: j.info.status for n, j in jobs.items()} == {"0": "KILLED", "1": "KILLED"}, output[-3000:]
    assert f"resume={parent.info.run_id}" in " ".join(output.split())
    assert not _alive(started), "a process of the sweep was left running"


def _worker_of(proc: subprocess.Popen, job_dir_prefix: str) -> psutil.Process | None:
    """The Ray worker running the job whose folder starts so: it holds the job's log file open."""
    for process in _tree(proc):
        with contextlib.suppress(psutil.Error):
            is_worker = "execute_job" in process.name() or "ray::" in " ".join(process.cmdline())
            if is_worker and any(f"/{job_dir_prefix}" in f.path for f in process.open_files()):
                return process
    return None


def test_a_killed_ray_worker_leaves_its_job_killed_named_and_resumable(tmp_path):
    proc = _seqlab(tmp_path, "-m", "cell=rnn,gru", "trainer.max_epochs=12", *TINY)
    try:
        _watch(
            proc, 120, [], until=lambda: any(tmp_path.glob("outputs/multirun/*/0-*/checkpoints/last.ckpt"))
        )
        worker = _worker_of(proc, "0-cell=rnn")
        assert worker is not None, "job 0's Ray worker was not found"
        worker.kill()
        output, _ = proc.communicate(timeout=120)
    finally:
        _stop(_tree(proc))
    assert proc.returncode != 0, output[-3000:]
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert not [r.info.run_name for r in runs_of(client, "seqlab") if r.info.status == "RUNNING"]
    parent = _parent(client)
    jobs = _jobs(client, parent.info.run_id)
    lost, other = jobs["0"], jobs["1"]
    assert (lost.info.status, other.info.status) == ("KILLED", "FINISHED"), output[-3000:]
    assert "Ray worker died" in lost.data.tags[names.SIGNAL_TAG]
    assert parent.info.status == "KILLED"
    assert parent.data.tags[names.FAILED_JOBS_TAG].startswith("job 0 (cell=rnn)")
    assert f"resume={parent.info.run_id}" in " ".join(output.split())

    done = subprocess.run(
        [sys.executable, "-m", "seqlab.train", f"resume={lost.info.run_id}",
         f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}"],
        cwd=tmp_path, env=seqlab_env(tmp_path), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    resumed = client.get_run(lost.info.run_id)
    assert resumed.info.status == "FINISHED" and names.RESUMED_TAG in resumed.data.tags
    assert client.get_run(parent.info.run_id).info.status == "FINISHED"
