"""Framework overhead: one seqlab run (Lightning + MLflow on SQLite) against the bare loop, same everything.

seqlab's cost is a fixed ~1-3 ms a training step on this 2-core CPU (Lightning's hooks, closure and
batch bookkeeping, seqlab's callbacks) plus a little per epoch (checkpoint, validation metrics, logging),
whatever the model. So the ratio says how big the model's steps are as much as how lean seqlab is, and one
run measures four workloads, each trained by both sides:

- a small LSTM on the adding task (~3 ms steps): the fixed cost at its most visible;
- the chung2014_jsb preset's LSTM (20k parameters, ~4 ms steps, 15 steps an epoch);
- the bai2018_jsb preset's LSTM (300k parameters, ~20-25 ms steps): the reported ratio, a model of the size
  the papers seqlab reproduces train;
- the bai2018_nottingham preset's LSTM (1M parameters, ~50 ms steps, the largest preset): where the fixed cost should
  fade, measured rather than extrapolated (3 epochs a trial: its epochs take seconds).

Each line shows the ratio, the difference per epoch (Lightning's parity test allows 0.05 s) and per step,
and the step time from which the fixed cost stays under 5%. The bare loop saves last and best each
epoch, as seqlab does, with torch.save on the training thread as a hand-written loop would, and times
its saves apart: the reported ratio is against its epochs without the saves (a loop that saves
nothing), the like-for-like ratio against the same epochs with them, so that the checkpoints a resume
needs are not counted as the machinery's cost.
"""

import statistics
import tempfile
import time
from pathlib import Path

import torch
from hydra.utils import instantiate
from lightning.pytorch.plugins.io import TorchCheckpointIO
from omegaconf import DictConfig

from seqlab import names
from seqlab.bench.bare_loop import train_bare, training_device
from seqlab.bench.clocks import EpochClock
from seqlab.bench.harness import bench_config, epoch_seconds, report
from seqlab.reproduce.checkpoint import BackgroundCheckpointIO
from seqlab.train import build, train

TARGET = 0.05  # seqlab within 5% of the bare loop


def lightning_alone(cfg: DictConfig, workdir: Path) -> list[float]:
    """Seconds per epoch of the same module under the same Trainer settings, but with no logger, no
    checkpoints and none of seqlab's callbacks: what Lightning's loop costs by itself."""
    task, module = build(cfg)
    clock = workdir / "lightning.json"
    trainer = instantiate(cfg.trainer, logger=False, enable_checkpointing=False, default_root_dir=str(workdir),
                          callbacks=[EpochClock(str(clock))])
    trainer.fit(module, datamodule=task)
    return epoch_seconds(clock)


def checkpoint_waits(checkpoint: Path, repeats: int = 20) -> tuple[list[float], list[float]]:
    """Seconds the training thread spends saving a run's own last checkpoint, each time: handing it to
    seqlab's background writer (the default) and writing it itself (Lightning's default CheckpointIO)."""
    state = torch.load(checkpoint, weights_only=True)
    waits: tuple[list[float], list[float]] = ([], [])
    for plugin, times in zip((BackgroundCheckpointIO(TorchCheckpointIO()), TorchCheckpointIO()), waits):
        for i in range(repeats):
            started = time.perf_counter()
            plugin.save_checkpoint(state, checkpoint.with_name(f"timed-{i % 2}.ckpt"))
            times.append(time.perf_counter() - started)
            time.sleep(0.02)  # as between epochs: the previous write has had time to finish
        plugin.teardown()
    return waits


def compare(overrides: list[str], trials: int) -> tuple[float, float, float]:
    """Median seconds per epoch of seqlab, of the bare loop without its saves, and with them.

    The sides alternate, so that a busy moment of the machine hits all, and each trial starts with the
    next side, so that none always runs first (or always after the same one); the first (warm-up)
    epoch of each run is left out.
    """
    epochs: dict[str, list[float]] = {side: [] for side in ("seqlab", "alone", "bare", "saving")}
    background_waits, synchronous_waits = [], []
    steps, checkpoint_mb = 0, 0.0
    trial_ratios: list[float] = []  # each trial's own ratio: how far the machine's noise moves it
    for trial in range(trials):
        with tempfile.TemporaryDirectory() as tmp:
            clock = Path(tmp) / "epochs.json"
            cfg = bench_config(Path(tmp), overrides, epoch_clock=clock)

            def seqlab_side() -> list[float]:
                nonlocal checkpoint_mb
                train(cfg)
                last = Path(cfg.callbacks.last_checkpoint.dirpath) / names.LAST_CHECKPOINT
                checkpoint_mb = last.stat().st_size / 2**20
                background, synchronous = checkpoint_waits(last)  # timed apart, after the epochs
                background_waits.extend(background)
                synchronous_waits.extend(synchronous)
                return epoch_seconds(clock)

            def bare_side() -> list[float]:
                """The bare loop's epochs without its saves; with them, into epochs["saving"]."""
                nonlocal steps
                run = train_bare(cfg, checkpoint_dir=Path(tmp) / "bare")
                steps = run.steps
                epochs["saving"] += run.seconds[1:]
                return [total - saving for total, saving in zip(run.seconds, run.saving)]

            sides = {"seqlab": seqlab_side, "alone": lambda: lightning_alone(cfg, Path(tmp)), "bare": bare_side}
            order = list(sides)[trial % len(sides):] + list(sides)[:trial % len(sides)]
            this_trial = {side: sides[side]()[1:] for side in order}
            for side, seconds in this_trial.items():
                epochs[side] += seconds
            trial_ratios.append(statistics.median(this_trial["seqlab"]) / statistics.median(this_trial["bare"]))
    seqlab_epochs, bare_epochs = epochs["seqlab"], epochs["bare"]
    seqlab_s, bare_s = statistics.median(seqlab_epochs), statistics.median(bare_epochs)
    saving_s, alone_s = statistics.median(epochs["saving"]), statistics.median(epochs["alone"])
    extra_ms = (seqlab_s - bare_s) / steps * 1000
    print(f"overhead: {' '.join(overrides)}, batch {cfg.task.batch_size}, on {training_device(cfg)}, median s/epoch "
          f"over {len(bare_epochs)} epochs each")
    print(f"  seqlab (Lightning + MLflow/SQLite): {seqlab_s:.3f} s/epoch  {['%.3f' % s for s in seqlab_epochs]}")
    print(f"  Lightning alone (no logger, no checkpoints, no seqlab callbacks): {alone_s:.3f} s/epoch, "
          f"{(alone_s - bare_s) / steps * 1000:+.2f} ms per step over the bare loop")
    print(f"  bare PyTorch loop, its saves not counted: {bare_s:.3f} s/epoch  {['%.3f' % s for s in bare_epochs]}")
    print(f"  ratio {seqlab_s / bare_s:.3f}; difference {seqlab_s - bare_s:+.3f} s/epoch (Lightning's parity test allows "
          f"0.05 s), {extra_ms:+.2f} ms per training step ({steps} steps + validation an epoch; per-epoch costs such "
          f"as checkpoints included); bare epoch / steps {bare_s / steps * 1000:.2f} ms; within {TARGET:.0%} from "
          f"{max(extra_ms, 0) / TARGET:.0f} ms per step")
    print(f"  each trial's own ratio (its medians): {' '.join('%.3f' % r for r in trial_ratios)}; a spread of "
          f"{max(trial_ratios) - min(trial_ratios):.3f} between trials of the same code is this machine's noise")
    print(f"  the same bare epochs with their saves (last and best, torch.save on the training thread): {saving_s:.3f} "
          f"s/epoch; like for like, seqlab / it: {seqlab_s / saving_s:.3f}")
    print(f"  saving a checkpoint ({checkpoint_mb:.1f} MB; best and last in an improving epoch): the training "
          f"thread waits {statistics.median(background_waits) * 1000:.1f} ms with seqlab's background writer, "
          f"{statistics.median(synchronous_waits) * 1000:.1f} ms writing it itself (medians of {len(background_waits)} saves)")
    return seqlab_s, bare_s, saving_s


WORKLOADS = {  # name -> (overrides, quick-mode overrides)
    "small LSTM, adding task": (
        ["task=adding", "cell=lstm", "trainer.max_epochs=8"],
        ["trainer.max_epochs=3", "task.n_train=512", "task.n_val=128", "task.n_test=128"],
    ),
    "chung2014_jsb LSTM (20k parameters)": (
        ["experiment=chung2014_jsb", "cell=lstm", "seed=0", "trainer.max_epochs=10"],
        ["trainer.max_epochs=2", "trainer.limit_train_batches=3"],
    ),
    "bai2018_jsb LSTM (300k parameters)": (
        ["experiment=bai2018_jsb", "cell=lstm", "seed=0", "trainer.max_epochs=10"],
        ["trainer.max_epochs=2", "trainer.limit_train_batches=3"],
    ),
    "bai2018_nottingham LSTM (1M parameters)": (
        ["experiment=bai2018_nottingham", "cell=lstm", "seed=0", "trainer.max_epochs=3"],
        ["trainer.max_epochs=2", "trainer.limit_train_batches=3", "trainer.limit_val_batches=2"],
    ),
}
REPORTED = "bai2018_jsb LSTM (300k parameters)"


def run(quick: bool, accelerator: str = "cpu") -> float:
    ratios, like_for_like = {}, {}
    for name, (overrides, quick_overrides) in WORKLOADS.items():
        overrides = [*overrides, *(quick_overrides if quick else []), f"trainer.accelerator={accelerator}"]
        seqlab_s, bare_s, saving_s = compare(overrides, trials=1 if quick else 3)
        ratios[name], like_for_like[name] = seqlab_s / bare_s, seqlab_s / saving_s
    print("overhead ratios: " + "; ".join(f"{name} {ratio:.3f}" for name, ratio in ratios.items()))
    print("like-for-like ratios (the bare loop saves last and best each epoch too): "
          + "; ".join(f"{name} {ratio:.3f}" for name, ratio in like_for_like.items()))
    print(f"reported: {REPORTED} (target {1 + TARGET:.2f}); the small models show the fixed per-step cost above")
    return report("overhead", ratios[REPORTED])
