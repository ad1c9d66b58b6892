"""Framework overhead: one seqlab run (Lightning + MLflow on SQLite) against the bare loop, same everything.

Lightning's cost is a fixed ~2 ms a training step and some per epoch, so the ratio depends on how much
work a step and an epoch hold. Two workloads: a small LSTM on the adding task (the ratio this benchmark
reports) and, for context, the chung2014_jsb preset's LSTM, a real experiment whose 20k-parameter model
makes short epochs (15 steps), so per-epoch costs (checkpoints, validation metrics) weigh more.
"""

import statistics
import tempfile
from pathlib import Path

from seqlab.bench.bare_loop import train_bare
from seqlab.bench.harness import bench_config, epoch_seconds, report
from seqlab.train import train


def compare(overrides: list[str], trials: int) -> tuple[float, float, int]:
    """Median seconds per epoch of seqlab and of the bare loop, and training steps per epoch.

    The two alternate, so that a busy moment of the machine hits both; the first (warm-up) epoch of
    each run is left out.
    """
    seqlab_epochs, bare_epochs = [], []
    for _ in range(trials):
        with tempfile.TemporaryDirectory() as tmp:
            clock = Path(tmp) / "epochs.json"
            cfg = bench_config(Path(tmp), overrides, epoch_clock=clock)
            train(cfg)
            seqlab_epochs += epoch_seconds(clock)[1:]
            bare, steps = train_bare(cfg)
            bare_epochs += bare[1:]
    seqlab_s, bare_s = statistics.median(seqlab_epochs), statistics.median(bare_epochs)
    print(f"overhead: {' '.join(overrides)}, batch {cfg.task.batch_size}, median s/epoch over {len(bare_epochs)} epochs each")
    print(f"  seqlab (Lightning + MLflow/SQLite): {seqlab_s:.3f} s/epoch  {['%.3f' % s for s in seqlab_epochs]}")
    print(f"  bare PyTorch loop:                 {bare_s:.3f} s/epoch  {['%.3f' % s for s in bare_epochs]}")
    print(f"  ratio {seqlab_s / bare_s:.3f}; difference {seqlab_s - bare_s:+.3f} s/epoch (Lightning's parity test allows "
          f"0.05 s), {(seqlab_s - bare_s) / steps * 1000:+.2f} ms per training step ({steps} steps + validation an "
          f"epoch; per-epoch costs such as checkpoints included); bare epoch / steps {bare_s / steps * 1000:.2f} ms")
    return seqlab_s, bare_s, steps


def run(quick: bool) -> float:
    small = ["task=adding", "cell=lstm", f"trainer.max_epochs={3 if quick else 8}"]
    preset = ["experiment=chung2014_jsb", "cell=lstm", "seed=0", f"trainer.max_epochs={2 if quick else 10}"]
    if quick:
        small += ["task.n_train=512", "task.n_val=128", "task.n_test=128"]
        preset += ["trainer.limit_train_batches=3"]
    seqlab_s, bare_s, _ = compare(small, trials=1 if quick else 3)
    compare(preset, trials=1 if quick else 3)  # for context: a real experiment's steps
    return report("overhead", seqlab_s / bare_s)
