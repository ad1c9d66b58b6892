"""Framework overhead: one seqlab run (Lightning + MLflow on SQLite) against the bare loop, same everything.

seqlab's cost is a fixed ~1-3 ms a training step on this 2-core CPU (Lightning's hooks, closure and
batch bookkeeping, seqlab's callbacks) plus a little per epoch (checkpoint, validation metrics, logging),
whatever the model. So the ratio says how big the model's steps are as much as how lean seqlab is, and one
run measures four workloads, each trained by both sides:

- a small LSTM on the adding task (~3 ms steps): the fixed cost at its most visible;
- the chung2014_jsb preset's LSTM (20k parameters, ~4 ms steps, 15 steps an epoch);
- the bai2018_jsb preset's LSTM (300k parameters, ~20-25 ms steps): the reported ratio, a model of the size
  the papers seqlab reproduces train;
- the bai2018_nottingham preset's LSTM (1M parameters, ~50 ms steps, the largest preset): where the fixed
  cost should fade, measured rather than extrapolated (3 epochs a trial: its epochs take seconds).

seqlab's run takes turns with a bare loop epoch by epoch in one process (`benchmarks.lockstep`), and so
does Lightning alone, so that each seqlab epoch has a bare epoch run a moment before or after it; the
ratio is the median of these pairs' ratios, with a 95% interval that says whether 5% is met, missed or
beyond what this machine's noise lets one run resolve. Each line also shows the difference per epoch
(Lightning's parity test allows 0.05 s) and per step, and the step time from which the fixed cost stays
under 5%. The bare loop saves last and best each epoch, as seqlab does, with torch.save on the training
thread as a hand-written loop would, and times its saves apart: the reported ratio is against its epochs
without the saves (a loop that saves nothing), the like-for-like ratio against the same epochs with
them, so that the checkpoints a resume needs are not counted as the machinery's cost. On the reported
workload two more Lightning sides, seqlab without its checkpoints and Lightning in its barebones mode
(Trainer(barebones=True), Lightning's own tool for timing its overhead), split seqlab's cost four ways:
the least Lightning's loop costs, Lightning with seqlab's Trainer settings, seqlab's tracking and
callbacks, the checkpoints; and on each workload Lightning alone's cost is split in two, its validation
and its training steps.
"""

import statistics
import tempfile
import time
from pathlib import Path

import torch
from hydra.utils import instantiate
from lightning.pytorch.plugins.io import TorchCheckpointIO
from omegaconf import DictConfig

from benchmarks.bare_loop import BareLoop, training_device
from benchmarks.harness import bench_config, report, train_with
from benchmarks.lockstep import TARGET, Lockstep, median_interval, verdict
from seqlab import names
from seqlab.models.module import SequenceModule
from seqlab.reproduce.checkpoint import BackgroundCheckpointIO
from seqlab.train import build

WITHOUT_CHECKPOINTS = [
    "callbacks.model_checkpoint=null",
    "callbacks.last_checkpoint=null",
]  # seqlab saving none


class UnloggedModule(SequenceModule):
    """seqlab's module as Lightning's barebones mode can train it: that mode refuses self.log, so here
    logging does nothing; the steps, losses and metric updates are seqlab's own."""

    def log(self, *args, **kwargs) -> None:
        pass

    def log_dict(self, *args, **kwargs) -> None:
        pass


def lightning_alone(cfg: DictConfig, workdir: Path, lockstep: Lockstep, barebones: bool = False) -> None:
    """The same module under the same Trainer settings, but with no logger, no checkpoints and none of
    seqlab's callbacks (only the lockstep that times it): what Lightning's loop costs by itself.

    With `barebones`, in Lightning's barebones mode, which it offers "to facilitate analyzing the Trainer
    overhead" (all it can switch off is off, self.log included): the least Lightning's loop costs. It
    differs from the side above only in the step-logging check (log_every_n_steps=0) and the epoch's
    self.log calls, so the two should read alike, and say whether seqlab's settings cost Lightning anything.
    """
    task, module = build(cfg)
    if barebones:  # the module build() made, so the weights are the same; only its logging goes
        module.__class__ = UnloggedModule
    barebones_settings = {"barebones": True, "log_every_n_steps": 0} if barebones else {}
    trainer = instantiate(
        cfg.trainer,
        logger=False,
        enable_checkpointing=False,
        default_root_dir=str(workdir),
        callbacks=[lockstep],
        **barebones_settings,
    )
    trainer.fit(module, datamodule=task)


def checkpoint_waits(checkpoint: Path, repeats: int = 20) -> tuple[list[float], list[float]]:
    """Seconds the training thread spends saving a run's own last checkpoint, each time: handing it to
    seqlab's background writer (the default) and writing it itself (Lightning's default CheckpointIO)."""
    state = torch.load(checkpoint, weights_only=True)
    waits: tuple[list[float], list[float]] = ([], [])
    for plugin, times in zip(
        (BackgroundCheckpointIO(TorchCheckpointIO()), TorchCheckpointIO()), waits, strict=True
    ):
        for i in range(repeats):
            started = time.perf_counter()
            plugin.save_checkpoint(state, checkpoint.with_name(f"timed-{i % 2}.ckpt"))
            times.append(time.perf_counter() - started)
            time.sleep(0.02)  # as between epochs: the previous write has had time to finish
        plugin.teardown()
    return waits


def compare(overrides: list[str], trials: int, breakdown: bool = False) -> tuple[float, float]:
    """The median ratio of seqlab's epochs to the bare loop's, paired epoch by epoch, without and with the
    bare loop's saves.

    In each trial seqlab's run and then Lightning alone (and, with `breakdown`, seqlab without its
    checkpoints between them and Lightning's barebones mode after) each take turns with a bare loop of
    their own, epoch by epoch (`benchmarks.lockstep`); the bare epoch runs after the other's in even
    trials and before it in odd ones, and the Lightning sides run in the reverse order in odd trials, so
    that no side always runs first. The first (warm-up) epoch of each run is left out.
    """
    sides = [
        "seqlab",
        *(["without checkpoints"] if breakdown else []),
        "alone",
        *(["barebones"] if breakdown else []),
    ]
    pairs: dict[str, list[tuple[float, float, float]]] = {
        side: [] for side in sides
    }  # (side, bare, bare saving)
    background_waits, synchronous_waits = [], []
    steps, checkpoint_mb = 0, 0.0
    trial_ratios: list[float] = []  # each trial's own median ratio: how far the machine's noise moves it
    alone_validation: list[float] = []  # of Lightning alone's difference per epoch, the part in validation
    for trial in range(trials):
        with tempfile.TemporaryDirectory() as tmp:
            cfg = bench_config(Path(tmp), overrides)
            this_trial: list[float] = []
            for side in sides if trial % 2 == 0 else sides[::-1]:
                # the bare loop is built first: train_with() and lightning_alone() seed again as they
                # build, so both start from the weights they would start from alone
                bare = BareLoop(cfg, checkpoint_dir=Path(tmp) / f"bare-{side}")
                lockstep = Lockstep(bare, bare_first=trial % 2 == 1)
                if side == "seqlab":
                    train_with(cfg, lockstep)
                    last = Path(cfg.callbacks.last_checkpoint.dirpath) / names.LAST_CHECKPOINT
                    checkpoint_mb = last.stat().st_size / 2**20
                    background, synchronous = checkpoint_waits(last)  # timed apart, after the epochs
                    background_waits.extend(background)
                    synchronous_waits.extend(synchronous)
                elif side == "without checkpoints":
                    (workdir := Path(tmp) / "without-checkpoints").mkdir()
                    train_with(bench_config(workdir, [*overrides, *WITHOUT_CHECKPOINTS]), lockstep)
                else:
                    lightning_alone(cfg, Path(tmp), lockstep, barebones=side == "barebones")
                steps = bare.steps
                side_pairs = [
                    (seconds, total - saving, total)
                    for seconds, total, saving in zip(
                        lockstep.seconds, bare.seconds, bare.saving, strict=True
                    )
                ][1:]
                pairs[side] += side_pairs
                if side == "alone":  # paired as side_pairs are, the first epoch left out
                    alone_validation += [
                        v - b for v, b in zip(lockstep.validating[1:], bare.validating[1:], strict=True)
                    ]
                if side == "seqlab":
                    this_trial = [seconds / bare_s for seconds, bare_s, _ in side_pairs]
            trial_ratios.append(statistics.median(this_trial))
    ratio, interval = median_interval([s / b for s, b, _ in pairs["seqlab"]])
    like, like_interval = median_interval([s / b for s, _, b in pairs["seqlab"]])
    alone, alone_interval = median_interval([s / b for s, b, _ in pairs["alone"]])
    seqlab_s = statistics.median(s for s, _, _ in pairs["seqlab"])
    bare_s = statistics.median(b for _, b, _ in pairs["seqlab"])
    extra_s = statistics.median(s - b for s, b, _ in pairs["seqlab"])
    alone_extra_s = statistics.median(s - b for s, b, _ in pairs["alone"])
    extra_ms = extra_s / steps * 1000
    print(
        f"overhead: {' '.join(overrides)}, batch {cfg.task.batch_size}, on {training_device(cfg)}, "
        f"{len(pairs['seqlab'])} epochs of each side, each paired with a bare epoch run beside it"
    )
    print(
        f"  seqlab (Lightning + MLflow/SQLite): median {seqlab_s:.3f} s/epoch  "
        f"{[f'{s:.3f}' for s, _, _ in pairs['seqlab']]}"
    )
    print(
        f"  bare PyTorch loop beside it, its saves not counted: median {bare_s:.3f} s/epoch  "
        f"{[f'{b:.3f}' for _, b, _ in pairs['seqlab']]}"
    )
    print(f"  ratio (median of the pairs' ratios) {ratio:.3f}; {verdict(interval)}")
    print(
        f"  difference (median of the pairs') {extra_s:+.3f} s/epoch (Lightning's parity test allows 0.05 "
        f"s), {extra_ms:+.2f} ms per training step ({steps} steps + validation an epoch; per-epoch costs "
        f"such as checkpoints included); bare epoch / steps {bare_s / steps * 1000:.2f} ms; within "
        f"{TARGET:.0%} from {max(extra_ms, 0) / TARGET:.0f} ms per step"
    )
    print(
        f"  Lightning alone (no logger, no checkpoints, no seqlab callbacks) against its own bare loop: "
        f"ratio {alone:.3f} ({verdict(alone_interval)}), {alone_extra_s / steps * 1000:+.2f} ms per step"
    )
    print(
        f"  Lightning alone's difference per epoch, split (medians of the pairs', 95% interval): in "
        f"validation {spread_ms(alone_validation)}; in the {steps} training steps and the epoch's edges "
        f"{spread_ms([s - b - v for (s, b, _), v in zip(pairs['alone'], alone_validation, strict=True)])}"
    )
    if breakdown:
        barebones, barebones_interval = median_interval([s / b for s, b, _ in pairs["barebones"]])
        print(
            "  Lightning in its barebones mode (Trainer(barebones=True): the least its loop costs) against "
            f"its own bare loop: ratio {barebones:.3f} ({verdict(barebones_interval)})"
        )
        without, without_interval = median_interval([s / b for s, b, _ in pairs["without checkpoints"]])
        print(
            f"  seqlab without its checkpoints ({' '.join(WITHOUT_CHECKPOINTS)}) against its own bare loop: "
            f"ratio {without:.3f} ({verdict(without_interval)})"
        )
        print(
            "  seqlab's time over the bare loop, built up one layer at a time (each side's median difference "
            "per epoch, 95% interval): "
            + "; ".join(
                f"{label} {spread_ms([s - b for s, b, _ in pairs[side]])}"
                for label, side in (
                    ("Lightning barebones", "barebones"),
                    ("Lightning alone", "alone"),
                    ("with seqlab's tracking and callbacks", "without checkpoints"),
                    ("with its checkpoints too, all of seqlab", "seqlab"),
                )
            )
        )
    print(
        f"  each trial's own ratio (its medians): {' '.join(f'{r:.3f}' for r in trial_ratios)}; a spread of "
        f"{max(trial_ratios) - min(trial_ratios):.3f} between trials of the same code is this machine's noise"
    )
    print(
        f"  the bare epochs with their saves (last and best, torch.save on the training thread): median "
        f"{statistics.median(b for _, _, b in pairs['seqlab']):.3f} s/epoch; like for like, seqlab / it: "
        f"{like:.3f} ({verdict(like_interval)})"
    )
    print(
        f"  saving a checkpoint ({checkpoint_mb:.1f} MB; best and last in an improving epoch): the training "
        f"thread waits {statistics.median(background_waits) * 1000:.1f} ms with seqlab's background writer, "
        f"{statistics.median(synchronous_waits) * 1000:.1f} ms writing it itself (medians of "
        f"{len(background_waits)} saves)"
    )
    return ratio, like


def spread_ms(differences: list[float]) -> str:
    """The median of differences in seconds, in ms, with its 95% interval."""
    median, interval = median_interval([d * 1000 for d in differences])
    return f"{median:+.0f} ms" + (f" ({interval[0]:+.0f} to {interval[1]:+.0f})" if interval else "")


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
        ratios[name], like_for_like[name] = compare(
            overrides, trials=1 if quick else 3, breakdown=name == REPORTED
        )
    print("overhead ratios: " + "; ".join(f"{name} {ratio:.3f}" for name, ratio in ratios.items()))
    print(
        "like-for-like ratios (the bare loop saves last and best each epoch too): "
        + "; ".join(f"{name} {ratio:.3f}" for name, ratio in like_for_like.items())
    )
    print(
        f"reported: {REPORTED} (target {1 + TARGET:.2f}); the small models show the fixed per-step cost above"
    )
    return report("overhead", ratios[REPORTED])
