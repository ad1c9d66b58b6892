"""Logging cost: epoch time of a run logging to a real `mlflow server` on loopback versus no tracking at all."""

import os
import socket
import statistics
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
from seqlab.bench.harness import bench_config, epoch_seconds, report
from seqlab.tracking.server import QUIET_RUN_LINKS
from seqlab.train import build, configured_callbacks, train


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def mlflow_server(workdir: Path):
    """A real MLflow tracking server (SQLite backend, local artifacts) on a free loopback port.

    While it runs, MLflow's "View run ... at: <url>" lines, printed as each run against a server ends,
    are off: links to a throwaway server would sit between the report's figures.
    """
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{workdir / 'server.db'}",
         "--artifacts-destination", str(workdir / "server-artifacts"), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    quiet_before = os.environ.get(QUIET_RUN_LINKS)
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
        os.environ[QUIET_RUN_LINKS] = "true"
        yield url
    finally:
        if quiet_before is None:
            os.environ.pop(QUIET_RUN_LINKS, None)
        else:
            os.environ[QUIET_RUN_LINKS] = quiet_before
        server.terminate()
        server.wait(timeout=30)


def _untracked_epochs(cfg, workdir: Path) -> list[float]:
    """The same run with no tracking: same task, module, callbacks and trainer, logger=False."""
    with open_dict(cfg):
        cfg.paths.output_dir = str(workdir)
    task, module = build(cfg)
    callbacks = configured_callbacks(cfg)
    assert any(isinstance(c, EpochClock) for c in callbacks)
    trainer = instantiate(cfg.trainer, logger=False, callbacks=callbacks)
    trainer.fit(module, datamodule=task)
    return epoch_seconds(Path(cfg.callbacks.epoch_clock.path))[1:]  # without the warm-up epoch


def run(quick: bool, accelerator: str = "cpu") -> float:
    epochs = 3 if quick else 8
    # log_every_n_steps=1: every step's loss goes to the server, the worst case for the network.
    # torch_threads=1 on both sides: the server here shares the 2-core machine (in use it runs elsewhere);
    # with torch on both cores, its request handling competes with torch's threads for them, and the
    # ratio would measure that contention, not whether a step waits on the network.
    overrides = ["task=adding", "cell=gru", f"trainer.max_epochs={epochs}", "trainer.log_every_n_steps=1", "torch_threads=1",
                 f"trainer.accelerator={accelerator}"]
    if quick:
        overrides += ["task.n_train=512", "task.n_val=128", "task.n_test=128"]
    server_epochs, none_epochs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with mlflow_server(work) as url:
            for trial in range(1 if quick else 3):  # alternate the two, so a slow spell of the machine hits both
                clock = work / f"server{trial}.json"
                for side in ("server", "none"):
                    (work / f"{side}{trial}").mkdir()
                train(bench_config(work / f"server{trial}", [*overrides, f"tracking.uri={url}"], epoch_clock=clock))
                server_epochs += epoch_seconds(clock)[1:]  # without the warm-up epoch (the server's too)
                cfg = bench_config(work / f"none{trial}", overrides, epoch_clock=work / f"none{trial}.json")
                none_epochs += _untracked_epochs(cfg, work / f"none{trial}" / "job")
    server_s, none_s = statistics.median(server_epochs), statistics.median(none_epochs)
    print(f"logging: {' '.join(overrides)} (median s/epoch over {len(none_epochs)} epochs each, first epochs left out)")
    print(f"  MLflow server on loopback: {server_s:.3f} s/epoch  {['%.3f' % s for s in server_epochs]}")
    print(f"  no tracking:               {none_s:.3f} s/epoch  {['%.3f' % s for s in none_epochs]}")
    return report("logging", server_s / none_s)
