"""Each benchmark runs in its tiny mode, so the script cannot rot (its numbers are not asserted)."""

import os
import re
import subprocess
import sys
import urllib.request

import pytest

from benchmarks.harness import checkout_env
from tests.conftest import seqlab_env


@pytest.mark.parametrize("name", ["overhead", "logging", "data", "startup", "sweep", "cells", "pruning"])
def test_benchmark_runs_and_prints_its_ratio(name, tmp_path, data_cache):
    if name == "data":
        data_cache("ETTm1.csv")
    if name == "overhead":  # its workloads include the JSB and Nottingham presets
        data_cache("JSB_Chorales.mat", "Nottingham.mat")
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", name, "--quick"],  # from another folder, as checkout_env allows
        cwd=tmp_path,
        env=seqlab_env(tmp_path) | {"PYTHONPATH": checkout_env()["PYTHONPATH"]},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    last = done.stdout.strip().splitlines()[-1]
    assert re.fullmatch(rf"{name} ratio: \d+\.\d+", last), done.stdout
    assert float(last.split(": ")[1]) > 0
    # a report of figures: no library's per-run notices between them (Lightning's, MLflow's INFO lines)
    assert not re.search(r"\bINFO\b", done.stdout + done.stderr), done.stdout + done.stderr
    assert "View run" not in done.stdout, done.stdout  # MLflow's links as each run against a server ends
    if name == "overhead":  # every workload, with its "Lightning alone" side and checkpoint wait (README)
        from benchmarks.overhead import REPORTED, WORKLOADS

        assert done.stdout.count("Lightning alone (no logger") == len(WORKLOADS) == 4
        waits = re.findall(
            r"the training thread waits (\d+\.\d) ms with seqlab's background writer", done.stdout
        )
        assert len(waits) == 4, done.stdout  # each workload times saving its own checkpoint
        # and splits Lightning alone's cost into its validation and its training steps
        assert (
            len(
                re.findall(
                    r"Lightning alone's difference per epoch, split .*: in validation [+-]\d+ ms; in the "
                    r"\d+ training steps and the epoch's edges [+-]\d+ ms",
                    done.stdout,
                )
            )
            == 4
        ), done.stdout
        # and shows each trial's own ratio, one per trial (--quick: one trial), so a reader sees the noise
        assert (
            len(re.findall(r"each trial's own ratio \(its medians\): \d+\.\d{3}; a spread", done.stdout)) == 4
        )
        # each ratio is the median of epochs paired with bare epochs run beside them, with what it says of 5%
        # (--quick: too few pairs for an interval, and the line says so rather than print a range as one)
        verdicts = re.findall(r"ratio \(median of the pairs' ratios\) \d+\.\d{3}; (.*)", done.stdout)
        assert verdicts == ["too few pairs for a 95% interval (6 at least)"] * 4, done.stdout
        ratios = next(line for line in done.stdout.splitlines() if line.startswith("overhead ratios: "))
        assert all(workload in ratios for workload in WORKLOADS) and f"reported: {REPORTED}" in done.stdout
        # and against a bare loop that saves its checkpoints each epoch too
        assert len(re.findall(r"like for like, seqlab / it: \d+\.\d{3}", done.stdout)) == 4, done.stdout
        like = next(line for line in done.stdout.splitlines() if line.startswith("like-for-like ratios"))
        assert all(workload in like for workload in WORKLOADS)
        # the reported workload alone splits seqlab's cost: Lightning's barebones mode, Lightning alone, then
        # tracking and callbacks, then the checkpoints (two more sides, seqlab without them and Lightning's
        # barebones mode, each paired with a bare loop of its own)
        assert done.stdout.count("seqlab without its checkpoints") == 1, done.stdout
        assert len(re.findall(r"Lightning in its barebones mode .* ratio \d+\.\d{3}", done.stdout)) == 1, (
            done.stdout
        )
        assert (
            len(
                re.findall(
                    r"built up one layer at a time .*: Lightning barebones [+-]\d+ ms; Lightning alone "
                    r"[+-]\d+ ms; with seqlab's tracking and "
                    r"callbacks [+-]\d+ ms; with its checkpoints too, all of seqlab [+-]\d+ ms$",
                    done.stdout,
                    flags=re.MULTILINE,
                )
            )
            == 1
        ), done.stdout
        reported = done.stdout.split(f"overhead: {' '.join(WORKLOADS[REPORTED][0])}")[1].split("\noverhead")[
            0
        ]
        assert "seqlab without its checkpoints" in reported and "barebones mode" in reported, reported
    if name == "logging":  # both sides paired with bare epochs, as the overhead benchmark pairs them
        assert (
            len(re.findall(r"median \d+\.\d{3} s/epoch, \d+\.\d{3} x the bare epoch beside it", done.stdout))
            == 2
        )
        assert re.search(
            r"ratio \(median of the epochs' server / none, each over its bare epoch\) \d+\.\d{3}; "
            r"too few pairs for a 95% interval",
            done.stdout,
        ), done.stdout  # --quick: 2 epochs a side
    if name == "cells":  # each cell at each budget, with the width the budget gave it
        rows = re.findall(
            r"([\d,]+) budget +(rnn|gru|lstm) +\d+ units, +([\d,]+) parameters: .* ms a step", done.stdout
        )
        assert sorted((budget, cell) for budget, cell, _ in rows) == sorted(
            (budget, cell) for budget in ("20,000", "300,000") for cell in ("gru", "lstm", "rnn")
        ), done.stdout
        for budget, _, parameters in rows:  # matched to within 2% of the budget
            assert abs(int(parameters.replace(",", "")) / int(budget.replace(",", "")) - 1) < 0.02
        # on a CPU, the LSTM again with oneDNN's fused kernel off, at both budgets (README, "Cells")
        assert re.findall(r"([\d,]+) budget  lstm without oneDNN .*: +\d+\.\d+ ms a step", done.stdout) == [
            "20,000",
            "300,000",
        ]


def test_the_bare_loop_indexes_the_batches_lightning_would(make_cfg, monkeypatch):
    # trainer.limit_train_batches / limit_val_batches cut both sides alike (quick mode relies on it), and
    # the bare loop reports the training steps it took.
    from benchmarks import bare_loop

    indexed = {"train": 0, "val": 0}

    class Counted:  # a split that counts the batches taken from it
        def __init__(self, split, name):
            self.split, self.name = split, name

        def __len__(self):
            return len(self.split)

        def __getitem__(self, index):
            indexed[self.name] += 1
            return self.split[index]

    def build(cfg):
        task, module = real_build(cfg)
        task.splits = {name: Counted(split, name) for name, split in task.splits.items()}
        return task, module

    real_build = bare_loop.build
    monkeypatch.setattr(bare_loop, "build", build)
    cfg = make_cfg("trainer.max_epochs=2", "trainer.limit_train_batches=3", "trainer.limit_val_batches=2")
    run = bare_loop.train_bare(cfg)
    assert (len(run.seconds), run.steps, indexed) == (2, 3, {"train": 6, "val": 4})


def test_the_bare_loop_saves_last_and_best_each_epoch_when_asked(make_cfg, tmp_path):
    # The like-for-like baseline of `python -m benchmarks overhead`: a loop that can resume saves its state
    # every epoch, as seqlab's last.ckpt and best checkpoint do.
    import torch

    from benchmarks.bare_loop import train_bare

    cfg = make_cfg("trainer.max_epochs=3")
    run = train_bare(cfg, checkpoint_dir=tmp_path / "bare")
    last = torch.load(tmp_path / "bare" / "last.pt", weights_only=True)
    best = torch.load(tmp_path / "bare" / "best.pt", weights_only=True)
    assert last.keys() == best.keys() == {"epoch", "model", "optimizer"}
    assert last["epoch"] == 2 and 0 <= best["epoch"] <= 2 and last["optimizer"]["state"]
    # the saves and the validation are timed apart, as parts of each epoch
    assert len(run.saving) == len(run.validating) == len(run.seconds) == 3
    assert all(0 < saving < total for saving, total in zip(run.saving, run.seconds, strict=True))
    assert all(
        0 < v < total - saving
        for v, saving, total in zip(run.validating, run.saving, run.seconds, strict=True)
    )
    (tmp_path / "bare" / "last.pt").unlink()
    run = train_bare(cfg)  # without a folder it saves nothing
    assert run.saving == [0.0] * 3 and not (tmp_path / "bare" / "last.pt").exists()


@pytest.mark.parametrize("before", [None, "false"])
def test_the_throwaway_server_quiets_run_links_only_while_it_runs(before, tmp_path, monkeypatch):
    from benchmarks.tracking_cost import mlflow_server
    from seqlab.tracking.server import QUIET_RUN_LINKS

    if before is None:
        monkeypatch.delenv(QUIET_RUN_LINKS, raising=False)
    else:
        monkeypatch.setenv(QUIET_RUN_LINKS, before)
    with mlflow_server(tmp_path) as url:
        assert os.environ[QUIET_RUN_LINKS] == "true"
        urllib.request.urlopen(f"{url}/health", timeout=5)  # a real server
    assert os.environ.get(QUIET_RUN_LINKS) == before  # the caller's setting is back


def test_all_runs_each_benchmark_in_its_own_process_and_fails_if_one_does(monkeypatch):
    # A benchmark sets process-wide torch state (logging: one thread), so `all` must not run the next one
    # in the same process; and one failure fails the whole run, naming it.
    from types import SimpleNamespace

    from benchmarks import cli

    commands = []

    def fake_run(command, **kwargs):
        commands.append(command)
        return SimpleNamespace(returncode=1 if command[3] == "data" else 0)

    monkeypatch.setattr(cli.subprocess, "run", fake_run)
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.raises(SystemExit, match="python -m benchmarks all: data failed"):
        cli.main(["all", "--quick"])
    assert commands == [[sys.executable, "-m", "benchmarks", name, "--quick"] for name in cli.BENCHMARKS]
    assert "cells" in cli.BENCHMARKS


def test_all_runs_the_training_benchmarks_again_on_a_gpu_where_torch_sees_one(monkeypatch, capsys):
    # The optional GPU figures: where there is a GPU, `all` adds the ratios measured on it; the
    # data benchmark builds batches on the CPU whatever trains on them, so it runs once.
    from types import SimpleNamespace

    from benchmarks import cli

    commands = []
    monkeypatch.setattr(
        cli.subprocess,
        "run",
        lambda command, **kwargs: commands.append(command) or SimpleNamespace(returncode=0),
    )
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    cli.main(["all"])
    on_cpu = [[sys.executable, "-m", "benchmarks", name] for name in cli.BENCHMARKS]
    on_gpu = [
        [sys.executable, "-m", "benchmarks", name, "--accelerator", "gpu"]
        for name in ("overhead", "logging", "sweep", "startup", "cells", "pruning")
    ]
    assert commands == on_cpu + on_gpu
    assert capsys.readouterr().out.count("--accelerator gpu") == 6  # each GPU run is announced


@pytest.mark.parametrize("name", ["overhead", "cells", "all"])
def test_accelerator_gpu_without_a_gpu_fails_before_running_anything(name, monkeypatch):
    from benchmarks import cli

    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    monkeypatch.setattr(cli.subprocess, "run", lambda *a, **k: pytest.fail("ran a benchmark"))
    monkeypatch.setattr(cli.importlib, "import_module", lambda *a: pytest.fail("ran a benchmark"))
    with pytest.raises(
        SystemExit, match=rf"python -m benchmarks {name}: --accelerator gpu: torch \S+ sees no CUDA GPU"
    ):
        cli.main([name, "--accelerator", "gpu"])


def test_the_data_benchmark_refuses_a_gpu_naming_those_that_take_one(monkeypatch):
    from benchmarks import cli

    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    monkeypatch.setattr(cli.importlib, "import_module", lambda *a: pytest.fail("ran a benchmark"))
    with pytest.raises(
        SystemExit,
        match=r"python -m benchmarks data: --accelerator gpu: the data benchmark times work done "
        r"on the CPU .* overhead, logging, sweep, startup, cells, pruning",
    ):
        cli.main(["data", "--accelerator", "gpu"])


def test_the_bare_loop_trains_where_lightning_would(make_cfg, monkeypatch):
    # On a GPU the bare loop must train there too, or the overhead ratio would compare devices.
    import torch

    from benchmarks.bare_loop import to_device, training_device
    from seqlab.errors import ConfigError

    def device(accelerator, cuda):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
        return training_device(make_cfg(f"trainer.accelerator={accelerator}"))

    assert device("cpu", True) == torch.device("cpu")  # seqlab's default, even beside a GPU
    assert device("gpu", True) == device("cuda", True) == torch.device("cuda", 0)
    assert device("auto", True) == torch.device("cuda", 0)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert device("auto", False) == torch.device("cpu")
    with pytest.raises(ConfigError, match=r"trainer.accelerator=tpu would train elsewhere"):
        device("tpu", False)

    batch = {"x": torch.ones(2, 3), "y": torch.zeros(2)}
    assert to_device(batch, torch.device("cpu")) is batch  # nothing to move, nothing done in the timed loop
    moved = to_device(
        batch, torch.device("meta")
    )  # any other device: every tensor moves, as Lightning moves them
    assert set(moved) == {"x", "y"} and all(t.device.type == "meta" for t in moved.values())


def test_the_median_interval_is_the_sign_tests():
    # The overhead benchmark says "within 5%", "over 5%" or "not resolved" from this interval. For 25
    # values the 95% interval of the median is the 8th to the 18th (tables of the sign test); too few
    # values give none rather than a range passed off as one.
    from benchmarks.lockstep import median_interval

    assert median_interval([float(v) for v in range(25, 0, -1)]) == (13.0, (8.0, 18.0))
    assert median_interval([float(v) for v in range(1, 28)]) == (14.0, (8.0, 20.0))
    assert median_interval([1.0, 2.0, 3.0, 4.0, 5.0]) == (3.0, None)


def test_the_overhead_verdict_calls_5_percent_only_when_the_interval_is_clear_of_it():
    # The README's answer on bai2018_jsb ("over 5%") and a noisy run's "not resolved" come from here.
    from benchmarks.lockstep import verdict

    assert verdict((1.01, 1.049)).endswith(": within 5%")
    assert verdict((1.051, 1.2)).endswith(": over 5%")
    for straddling in ((1.0, 1.06), (1.05, 1.06), (0.9, 1.5)):
        assert ": not resolved: the interval holds 1.05" in verdict(straddling), straddling
    assert verdict((1.062, 1.123)).startswith("95% interval 1.062-1.123")
    assert verdict(None) == "too few pairs for a 95% interval (6 at least)"


class _SleepingBareLoop:
    """Stands in for benchmarks.bare_loop.BareLoop: each epoch sleeps, and records when it ran."""

    def __init__(self, events: list, seconds: float) -> None:
        self.events, self.seconds, self.intervals = events, seconds, []

    def epoch(self) -> None:
        import time

        started = time.perf_counter()
        self.events.append("bare")
        time.sleep(self.seconds)
        self.intervals.append((started, time.perf_counter()))


@pytest.mark.parametrize("bare_first", [False, True])
def test_lockstep_runs_a_bare_epoch_beside_each_epoch_and_keeps_it_off_the_run_clock(bare_first):
    # The pairing the overhead ratio rests on: one bare epoch for each epoch of the run, right after it
    # (or right before it), and the run's clock holds its own epoch-end work but none of the bare epoch.
    import time

    import lightning as L
    from lightning.pytorch.demos.boring_classes import BoringModel

    from benchmarks.lockstep import Lockstep

    events = []

    class EpochEnd(L.Callback):
        def on_validation_batch_end(self, *args):
            time.sleep(0.03)  # a validation the clock can see (the sanity check's is not the run's)

        def on_train_epoch_end(self, trainer, pl_module):
            events.append(f"run {trainer.current_epoch}")
            time.sleep(0.05)  # stands in for the checkpoints, which the clock must count: listed after the
            # lockstep, as ModelCheckpoint saves after every other callback's on_train_epoch_end

    lockstep = Lockstep(_SleepingBareLoop(events, seconds=0.4), bare_first=bare_first)
    trainer = L.Trainer(
        max_epochs=3,
        limit_train_batches=2,
        limit_val_batches=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[lockstep, EpochEnd()],
    )
    trainer.fit(BoringModel())
    runs = ["run 0", "run 1", "run 2"]
    pairs = [["bare", run] if bare_first else [run, "bare"] for run in runs]
    assert events == [event for pair in pairs for event in pair]
    assert len(lockstep.seconds) == 3
    assert all(0.08 <= seconds < 0.4 for seconds in lockstep.seconds), lockstep.seconds
    # each epoch's validation, timed apart as a part of it
    assert len(lockstep.validating) == 3
    assert all(0.03 <= v < s - 0.05 for v, s in zip(lockstep.validating, lockstep.seconds, strict=True)), (
        lockstep.validating
    )


def test_lockstep_charges_seqlabs_background_writes_to_seqlabs_own_epochs(make_cfg, monkeypatch):
    # seqlab writes checkpoints and metrics from background threads. Left running into the bare epoch
    # beside it, they would take the CPU from the bare loop and be charged to it, flattering seqlab's
    # ratio. Here no metric write and no checkpoint write may overlap a bare epoch, every metric still
    # reaches the store, and the metric sender gets its own cadence back afterwards.
    import threading
    import time

    import lightning as L
    from lightning.pytorch.plugins.io import TorchCheckpointIO
    from mlflow import MlflowClient

    from benchmarks.harness import drainable_checkpoints, train_with
    from benchmarks.lockstep import Lockstep
    from seqlab.tracking.logger import MlflowMetricLogger

    writes, lock = [], threading.Lock()

    def timed(method):  # and slow, as a busy disk or store: a write still going when the epoch ends
        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                time.sleep(0.05)
                return method(*args, **kwargs)
            finally:
                with lock:
                    writes.append((started, time.perf_counter()))

        return wrapper

    monkeypatch.setattr(MlflowClient, "log_batch", timed(MlflowClient.log_batch))
    monkeypatch.setattr(TorchCheckpointIO, "save_checkpoint", timed(TorchCheckpointIO.save_checkpoint))

    class Cadence(L.Callback):  # the metric logger's class (its pace), read once the run is over
        def teardown(self, trainer, pl_module, stage):
            self.after = type(trainer.logger)

    cadence, bare = Cadence(), _SleepingBareLoop([], seconds=0.3)
    lockstep = Lockstep(bare)
    # six epochs take longer than the sender's one-second pause: unheld, it would write during a bare epoch
    cfg = make_cfg("trainer.max_epochs=6", "trainer.log_every_n_steps=1")
    drainable_checkpoints(cfg)
    train_with(cfg, cadence, lockstep)
    assert len(bare.intervals) == len(lockstep.seconds) == 6 and len(writes) > 8
    overlapping = [(w, b) for w in writes for b in bare.intervals if w[0] < b[1] and b[0] < w[1]]
    assert not overlapping, overlapping
    assert cadence.after is MlflowMetricLogger
    runs = MlflowClient(cfg.tracking.uri).search_runs(
        [MlflowClient(cfg.tracking.uri).get_experiment_by_name(cfg.tracking.experiment).experiment_id]
    )
    history = MlflowClient(cfg.tracking.uri).get_metric_history(runs[0].info.run_id, "val/loss")
    assert len(history) == 6


def test_lockstep_gives_the_metric_sender_its_pace_back_when_the_run_fails(make_cfg):
    # A paired run that fails must not leave the run's metric sender held for an hour: the run's
    # owner marks it FAILED and flushes, and the sender has to write at its own pace again.
    import lightning as L

    from benchmarks.harness import drainable_checkpoints, train_with
    from benchmarks.lockstep import HeldMetricLogger, Lockstep
    from seqlab.tracking.logger import MlflowMetricLogger

    class FailInSecondEpoch(L.Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            self.logger = trainer.logger
            if trainer.current_epoch == 1:
                self.held = type(trainer.logger)
                raise RuntimeError("a failing epoch")

    failing, cfg = FailInSecondEpoch(), make_cfg("trainer.max_epochs=3")
    drainable_checkpoints(cfg)
    with pytest.raises(RuntimeError, match="a failing epoch"):
        train_with(cfg, Lockstep(_SleepingBareLoop([], 0.0)), failing)
    assert failing.held is HeldMetricLogger  # held while the pairing ran
    assert HeldMetricLogger.send_every_s > MlflowMetricLogger.send_every_s
    assert (
        type(failing.logger) is MlflowMetricLogger
        and failing.logger.send_every_s == MlflowMetricLogger.send_every_s
    )


def test_lockstep_refuses_a_checkpoint_writer_it_cannot_wait_for(make_cfg):
    # seqlab's own background writer has no wait: its writes would run into the bare epoch and be charged
    # to the bare loop. The run's config must name DrainableCheckpointIO (bench_config does).
    from benchmarks.harness import train_with
    from benchmarks.lockstep import Lockstep

    with pytest.raises(RuntimeError, match="Lockstep cannot wait for seqlab's background checkpoint writes"):
        train_with(make_cfg(), Lockstep(_SleepingBareLoop([], 0.0)))
