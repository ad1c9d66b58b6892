"""Framework overhead: one seqlab run (Lightning + MLflow on SQLite) against the bare loop, same everything."""

import statistics
import tempfile
from pathlib import Path

from seqlab.bench.bare_loop import train_bare
from seqlab.bench.harness import bench_config, epoch_seconds, report
from seqlab.tasks.batching import EpochBatchSampler
from seqlab.train import train


def run(quick: bool) -> float:
    epochs = 3 if quick else 8
    overrides = ["task=adding", "cell=lstm", f"trainer.max_epochs={epochs}"]
    if quick:
        overrides += ["task.n_train=512", "task.n_val=128", "task.n_test=128"]
    seqlab_epochs, bare_epochs = [], []
    for trial in range(1 if quick else 3):  # alternate the two, so a busy moment of the machine hits both
        with tempfile.TemporaryDirectory() as tmp:
            clock = Path(tmp) / "epochs.json"
            cfg = bench_config(Path(tmp), overrides, epoch_clock=clock)
            train(cfg)
            seqlab_epochs += epoch_seconds(clock)[1:]  # without the warm-up epoch
            bare_epochs += train_bare(cfg)[1:]
    seqlab_s, bare_s = statistics.median(seqlab_epochs), statistics.median(bare_epochs)
    steps = len(EpochBatchSampler(cfg.task.n_train, cfg.task.batch_size, shuffle=True, seed=0))  # batches an epoch
    print(f"overhead: {' '.join(overrides)}, batch {cfg.task.batch_size}, median s/epoch over {len(bare_epochs)} epochs each")
    print(f"  seqlab (Lightning + MLflow/SQLite): {seqlab_s:.3f} s/epoch  {['%.3f' % s for s in seqlab_epochs]}")
    print(f"  bare PyTorch loop:                 {bare_s:.3f} s/epoch  {['%.3f' % s for s in bare_epochs]}")
    print(f"  difference: {seqlab_s - bare_s:+.3f} s/epoch (Lightning's parity test allows 0.05 s), "
          f"{(seqlab_s - bare_s) / steps * 1000:+.2f} ms per training step ({steps} steps + validation "
          f"an epoch; per-epoch costs such as checkpoints included), bare epoch / steps {bare_s / steps * 1000:.2f} ms")
    return report("overhead", seqlab_s / bare_s)
