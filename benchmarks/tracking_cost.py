"""Logging cost: epoch time of a run logging to a real `mlflow server` on loopback versus no tracking
at all."""

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
from omegaconf import DictConfig

from benchmarks.bare_loop import BareLoop
from benchmarks.harness import bench_config, report, train_with
from benchmarks.lockstep import Lockstep, median_interval, verdict
from seqlab.tracking.server import QUIET_RUN_LINKS
from seqlab.train import build, configured_callbacks


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
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            f"sqlite:///{workdir / 'server.db'}",
            "--artifacts-destination",
            str(workdir / "server-artifacts"),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
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


def warm_up(url: str) -> None:
    """Serve each kind of request a run makes once before anything is timed: a fresh server's first
    requests import its handlers and open its store, CPU work that would land in the first trial's epochs."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param, RunTag

    client = MlflowClient(url)
    run = client.create_run(client.create_experiment("warm-up"))
    client.log_batch(
        run.info.run_id,
        metrics=[Metric("warm-up", 0.0, int(time.time() * 1000), 0)],
        params=[Param("warm-up", "0")],
        tags=[RunTag("warm-up", "0")],
    )
    client.set_terminated(run.info.run_id)


def untracked(cfg: DictConfig, lockstep: Lockstep) -> None:
    """The same run with no tracking: same task, module, callbacks and trainer, logger=False."""
    task, module = build(cfg)
    trainer = instantiate(cfg.trainer, logger=False, callbacks=[*configured_callbacks(cfg), lockstep])
    trainer.fit(module, datamodule=task)


def run(quick: bool, accelerator: str = "cpu") -> float:
    """The ratio of the two sides' epochs, each side's epochs first taken over the bare PyTorch epochs run
    beside them (`benchmarks.lockstep`, as the overhead benchmark pairs them).

    This VM's speed drifts by 10-30% within seconds, and whole runs taking turns read 0.96-1.19 in one
    run of three trials. Over the bare epoch beside it, each epoch's time no longer carries the drift:
    epoch k of trial t with the server, over its bare epoch, divided by the same of the run without
    tracking, is one estimate of the ratio, and the benchmark reports their median with the sign test's
    95% interval, and what that says about 5%.
    """
    epochs = 3 if quick else 8
    # log_every_n_steps=1: every step's loss goes to the server, the worst case for the network.
    # torch_threads=1 on both sides: the server here shares the 2-core machine (in use it runs elsewhere);
    # with torch on both cores, its request handling competes with torch's threads for them, and the
    # ratio would measure that contention, not whether a step waits on the network.
    overrides = [
        "task=adding",
        "cell=gru",
        f"trainer.max_epochs={epochs}",
        "trainer.log_every_n_steps=1",
        "torch_threads=1",
        f"trainer.accelerator={accelerator}",
    ]
    if quick:
        overrides += ["task.n_train=512", "task.n_val=128", "task.n_test=128"]
    seconds: dict[str, list[float]] = {"server": [], "none": []}
    over_bare: dict[str, list[float]] = {"server": [], "none": []}
    estimates, trial_ratios = [], []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with mlflow_server(work) as url:
            warm_up(url)
            for trial in range(1 if quick else 3):  # the sides take turns going first
                this_trial = {}
                for side in ("server", "none") if trial % 2 == 0 else ("none", "server"):
                    (workdir := work / f"{side}{trial}").mkdir()
                    cfg = bench_config(
                        workdir, [*overrides, *([f"tracking.uri={url}"] if side == "server" else [])]
                    )
                    bare = BareLoop(cfg)  # built first: train_with() and untracked() seed again as they build
                    lockstep = Lockstep(bare, bare_first=trial % 2 == 1)
                    if side == "server":
                        train_with(cfg, lockstep)
                    else:
                        untracked(cfg, lockstep)
                    seconds[side] += lockstep.seconds[1:]  # without the warm-up epoch (the server's too)
                    this_trial[side] = [
                        s / b for s, b in zip(lockstep.seconds[1:], bare.seconds[1:], strict=True)
                    ]
                    over_bare[side] += this_trial[side]
                estimates += [s / n for s, n in zip(this_trial["server"], this_trial["none"], strict=True)]
                trial_ratios.append(
                    statistics.median(this_trial["server"]) / statistics.median(this_trial["none"])
                )
    ratio, interval = median_interval(estimates)
    print(
        f"logging: {' '.join(overrides)} ({len(estimates)} epochs a side, first epochs left out, each paired "
        "with a bare PyTorch epoch run beside it)"
    )
    for side, label in (("server", "MLflow server on loopback:"), ("none", "no tracking:")):
        print(
            f"  {label:<27} median {statistics.median(seconds[side]):.3f} s/epoch, "
            f"{statistics.median(over_bare[side]):.3f} "
            f"x the bare epoch beside it  {[f'{s:.3f}' for s in seconds[side]]}"
        )
    print(
        f"  ratio (median of the epochs' server / none, each over its bare epoch) {ratio:.3f}; "
        f"{verdict(interval)}"
    )
    print(f"  each trial's own ratio (its medians): {' '.join(f'{r:.3f}' for r in trial_ratios)}")
    return report("logging", ratio)
