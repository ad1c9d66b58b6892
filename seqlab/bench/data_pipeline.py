"""Data pipeline: seqlab's windows (one gather per batch) against a per-sample Dataset + DataLoader, on ETTm1.

The baseline is the usual hand-written pattern: `__getitem__(i)` slices one window and the DataLoader's
default collate stacks 32 of them. Same windows, same batch size, same shuffled order.
"""

import tempfile
import time
from pathlib import Path

import torch
from hydra.utils import instantiate
from torch.utils.data import DataLoader, Dataset

from seqlab.bench.harness import bench_config, report
from seqlab.tasks.windows import WindowSplit


class PerSampleWindows(Dataset):
    """The baseline: one Python call and two slices per window."""

    def __init__(self, split: WindowSplit) -> None:
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        first = self.split.start + i
        x = self.split.inputs[first : first + self.split.window]
        y = self.split.targets[first + self.split.window : first + self.split.window + self.split.horizon]
        return {"x": x, "y": y.flatten()}


def _batches_per_second(loader, limit: int) -> tuple[float, int]:
    started, n = time.perf_counter(), 0
    for n, batch in enumerate(loader, start=1):
        batch["x"].sum()  # touch the data, as a training step would
        if n >= limit:
            break
    return n / (time.perf_counter() - started), n


def run(quick: bool) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = bench_config(Path(tmp), ["task=ett", "task.dataset=ETTm1", "task.features=M", "task.batch_size=32"])
    task = instantiate(cfg.task)
    task.prepare()
    split: WindowSplit = task.splits["train"]
    limit = 100 if quick else 10**9

    seqlab_rate, n = _batches_per_second(task.train_dataloader(), limit)
    generator = torch.Generator().manual_seed(0)
    baseline = DataLoader(PerSampleWindows(split), batch_size=task.batch_size, shuffle=True, generator=generator)
    baseline_rate, _ = _batches_per_second(baseline, limit)

    series_mb = (split.inputs.nbytes + (split.targets.nbytes if split.targets.data_ptr() != split.inputs.data_ptr() else 0)) / 2**20
    window_bytes = split.window * split.inputs.shape[1] * split.inputs.element_size()
    copies_mb = len(split) * window_bytes / 2**20
    print(f"data: ETTm1 (M: 7 columns), window {split.window}, horizon {split.horizon}, batch {task.batch_size}, "
          f"{len(split)} training windows, {n} batches timed")
    print(f"  seqlab (index arithmetic, one gather per batch): {seqlab_rate:9.0f} batches/s")
    print(f"  per-sample Dataset.__getitem__ + DataLoader:     {baseline_rate:9.0f} batches/s")
    print(f"  memory: the series the windows view {series_mb:.1f} MiB; materialized input windows would take {copies_mb:.1f} MiB")
    return report("data", seqlab_rate / baseline_rate)
