"""Cell throughput: training steps per second of the tanh RNN, the GRU and the LSTM at equal parameter
budgets.

"Which cell?" is also "which cell for my compute": at the same parameter budget the cells get different
widths (model.param_budget), and their kernels differ in cost. Each cell here takes real training steps
of seqlab's own network, loss and optimizer (from `seqlab.train.build`) on one fixed batch of the adding
task, at the budgets of the reproduced papers (20k: Chung et al. 2014; 300k: Bai et al. 2018).

With --accelerator gpu (never required; `python -m benchmarks all` adds it where torch sees a GPU) it runs on
the GPU, where nn.RNN/LSTM/GRU all run cuDNN's fused kernels. On a CPU only the LSTM has a fused kernel
(oneDNN's); the GRU and the tanh RNN step through ATen's cell loop, so the ranking can differ between
the two and the device is printed. On a CPU it also times the LSTM with oneDNN off, to show how much of
the LSTM's lead is that kernel. Deterministic algorithms are off here (trainer.deterministic=false):
this measures the cells' speed, with the kernels torch would pick when nothing asks for exact reruns.

Ratio: the slowest cell's step time over the fastest's at the 300k budget, what the choice costs in time.
"""

import statistics
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.bare_loop import to_device, train_step, training_device
from benchmarks.clocks import synchronize
from benchmarks.harness import bench_config, report
from seqlab.train import build

CELLS = ("rnn", "gru", "lstm")  # conf/cell/<name>.yaml, composed as cell=<name>
BUDGETS = (20_000, 300_000)
REPORTED_BUDGET = 300_000


class Steps:
    """The bare loop's training steps (forward, loss, backward, clipping at 1, optimizer step) of seqlab's
    network for one workload, on one fixed batch, timed one by one."""

    def __init__(self, overrides: list[str]) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            cfg = bench_config(Path(tmp), [*overrides, "trainer.deterministic=false"])
            task, module = build(cfg)
        device = self.device = training_device(cfg)
        self.cell = cfg.cell.name  # the name the run and its params show, as the config gives it
        self.batch_size = cfg.task.batch_size
        module.to(device)  # the loss too: a loss with weights holds them as buffers
        self.net, self.loss = module.net.train(), module.loss
        self.optimizer = module.make_optimizer(self.net.parameters())
        self.batch = to_device(task.splits["train"][torch.arange(self.batch_size)], device)
        self.seconds: list[float] = []

    def take(self, steps: int, warmup: int = 2) -> None:
        for i in range(warmup + steps):
            synchronize(self.device)  # time each step's kernels, not their queueing
            started = time.perf_counter()
            train_step(self.net, self.loss, self.optimizer, self.batch, clip=1.0)  # as the presets clip
            synchronize(self.device)
            if i >= warmup:
                self.seconds.append(time.perf_counter() - started)


def workload(cell: str, budget: int, length: int, accelerator: str) -> list[str]:
    return [
        "task=adding",
        f"task.length={length}",
        "task.n_train=256",
        f"cell={cell}",
        f"model.param_budget={budget}",
        f"trainer.accelerator={accelerator}",
    ]


def run(quick: bool, accelerator: str = "cpu") -> float:
    length, rounds, steps = (20, 1, 3) if quick else (100, 5, 10)
    runs = {
        (budget, cell, True): Steps(workload(cell, budget, length, accelerator))
        for budget in BUDGETS
        for cell in CELLS
    }
    device = next(iter(runs.values())).device
    if device.type == "cpu":  # the LSTM without its fused oneDNN kernel, as the GRU and the RNN run
        runs |= {
            (budget, "lstm", False): Steps(workload("lstm", budget, length, accelerator))
            for budget in BUDGETS
        }
        threads = torch.get_num_threads()
        where = f"CPU ({threads} thread{'s' if threads != 1 else ''})"
    else:
        where = f"{torch.cuda.get_device_name(device)} (cuDNN {torch.backends.cudnn.version()})"
    print(
        f"cells: training steps on one batch of the adding task (length {length}), {rounds} rounds of "
        f"{steps} steps per workload taking turns, median step, on {where}"
    )
    for _ in range(rounds):  # taking turns: a slow moment of the machine hits every workload
        for (_, _, fused), steps_of in runs.items():
            with torch.backends.mkldnn.flags(enabled=fused):
                steps_of.take(steps)
    at_reported: dict[str, float] = {}
    for (budget, _, fused), steps_of in runs.items():
        seconds = statistics.median(steps_of.seconds)
        if not fused:
            print(
                f"  {budget:>7,} budget  lstm without oneDNN (torch.backends.mkldnn off): "
                f"{seconds * 1000:8.2f} ms a step"
            )
            continue
        if budget == REPORTED_BUDGET:
            at_reported[steps_of.cell] = seconds
        parameters = sum(p.numel() for p in steps_of.net.parameters())
        print(
            f"  {budget:>7,} budget  {steps_of.cell:4s} {steps_of.net.hidden_size:4d} units, "
            f"{parameters:>7,} parameters: "
            f"{seconds * 1000:8.2f} ms a step, {steps_of.batch_size / seconds:9.0f} sequences/s"
        )
    slowest, fastest = max(at_reported, key=at_reported.get), min(at_reported, key=at_reported.get)
    print(
        f"  at {REPORTED_BUDGET:,} parameters the {slowest} step takes "
        f"{at_reported[slowest] / at_reported[fastest]:.2f}x "
        f"the {fastest} step"
    )
    return report("cells", at_reported[slowest] / at_reported[fastest])
