"""Logging cost: epoch time of a run logging to a real `mlflow server` on loopback versus no tracking at all."""

import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import open_dict

from seqlab.bench.clocks import EpochClock
from seqlab.bench.harness import bench_config, epoch_seconds, report, steady
from seqlab.train import build, train


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def mlflow_server(workdir: Path):
    """A real MLflow tracking server (SQLite backend, local artifacts) on a free loopback port."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{workdir / 'server.db'}",
         "--artifacts-destination", str(workdir / "server-artifacts"), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(f"{url}/health", timeout=2)
                break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    raise RuntimeError("the mlflow server did not start") from None
                time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def run(quick: bool) -> float:
    epochs = 3 if quick else 8
    # log_every_n_steps=1: every step's loss goes to the server, the worst case for the network
    overrides = ["task=adding", "cell=gru", f"trainer.max_epochs={epochs}", "trainer.log_every_n_steps=1"]
    if quick:
        overrides += ["task.n_train=512", "task.n_val=128", "task.n_test=128"]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with mlflow_server(work) as url:
            clock = work / "server.json"
            cfg = bench_config(work, [*overrides, f"tracking.uri={url}"], epoch_clock=clock)
            train(cfg)
            server_epochs = epoch_seconds(clock)

        # The same run with no tracking: same task, module, callbacks and trainer, logger=False.
        clock = work / "none.json"
        cfg = bench_config(work, overrides, epoch_clock=clock)
        with open_dict(cfg):
            cfg.paths.output_dir = str(work / "untracked")
        task, module = build(cfg)
        callbacks = [instantiate(c) for c in cfg.callbacks.values()]
        trainer = instantiate(cfg.trainer, logger=False, callbacks=callbacks)
        trainer.fit(module, datamodule=task)
        none_epochs = epoch_seconds(clock)
    assert any(isinstance(c, EpochClock) for c in callbacks)
    server_s, none_s = steady(server_epochs), steady(none_epochs)
    print(f"logging: {' '.join(overrides)} (median s/epoch after the first)")
    print(f"  MLflow server on loopback: {server_s:.3f} s/epoch  {['%.3f' % s for s in server_epochs]}")
    print(f"  no tracking:               {none_s:.3f} s/epoch  {['%.3f' % s for s in none_epochs]}")
    return report("logging", server_s / none_s)
