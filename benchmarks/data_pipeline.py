"""Data pipeline: seqlab's windows (one gather per batch) against a per-sample Dataset + DataLoader, on ETTm1.

The baseline is the usual hand-written pattern: `__getitem__(i)` slices one window and the DataLoader's
default collate stacks 32 of them. Same windows, same batch size, same shuffled order. The two take turns
over several epochs and the medians are compared: a seqlab epoch takes ~40 ms, which one slow moment of
the machine can halve (one epoch each read 2.1 instead of 3.1 once).
"""

import statistics
import tempfile
import time
from pathlib import Path

import torch
from hydra.utils import instantiate
from torch.utils.data import DataLoader, Dataset

from benchmarks.harness import bench_config, report
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


def run(quick: bool, accelerator: str = "cpu") -> float:
    assert accelerator == "cpu", (
        "batches are built on the CPU whatever trains on them (benchmarks.cli.ON_GPU)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        cfg = bench_config(
            Path(tmp), ["task=ett", "task.dataset=ETTm1", "task.features=M", "task.batch_size=32"]
        )
    task = instantiate(cfg.task)
    task.prepare()
    split: WindowSplit = task.splits["train"]
    limit, rounds = (100, 1) if quick else (10**9, 5)
    generator = torch.Generator().manual_seed(0)
    baseline = DataLoader(
        PerSampleWindows(split), batch_size=task.batch_size, shuffle=True, generator=generator
    )

    rates: dict[str, list[float]] = {"seqlab": [], "baseline": []}
    for round_ in range(rounds):  # taking turns, each round starting with the other side
        for side in ["seqlab", "baseline"] if round_ % 2 == 0 else ["baseline", "seqlab"]:
            rate, n = _batches_per_second(task.train_dataloader() if side == "seqlab" else baseline, limit)
            rates[side].append(rate)
    seqlab_rate, baseline_rate = statistics.median(rates["seqlab"]), statistics.median(rates["baseline"])

    series_mb = (
        split.inputs.nbytes
        + (split.targets.nbytes if split.targets.data_ptr() != split.inputs.data_ptr() else 0)
    ) / 2**20
    window_bytes = split.window * split.inputs.shape[1] * split.inputs.element_size()
    copies_mb = len(split) * window_bytes / 2**20
    print(
        f"data: ETTm1 (M: 7 columns), window {split.window}, horizon {split.horizon}, batch "
        f"{task.batch_size}, {len(split)} training windows, {n} batches an epoch, median of {rounds} epochs "
        "each"
    )
    print(
        f"  seqlab (index arithmetic, one gather per batch): {seqlab_rate:9.0f} batches/s  "
        f"{[round(r) for r in rates['seqlab']]}"
    )
    print(
        f"  per-sample Dataset.__getitem__ + DataLoader:     {baseline_rate:9.0f} batches/s  "
        f"{[round(r) for r in rates['baseline']]}"
    )
    print(
        f"  memory: the series the windows view {series_mb:.1f} MiB; materialized input windows would take "
        f"{copies_mb:.1f} MiB"
    )
    return report("data", seqlab_rate / baseline_rate)
