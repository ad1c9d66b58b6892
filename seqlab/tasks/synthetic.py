"""Seeded synthetic tasks, generated whole in tensors (no per-sample Python)."""

import math

import torch

from seqlab.tasks.base import Task, TaskKind, TaskSpec, seeded_generator
from seqlab.tasks.batching import TensorSplit


def _split(n_train: int, n_val: int, n_test: int, **tensors: torch.Tensor) -> dict[str, TensorSplit]:
    """Cut tensors generated in one go into consecutive train/val/test parts."""
    bounds = {"train": (0, n_train), "val": (n_train, n_train + n_val), "test": (n_train + n_val, n_train + n_val + n_test)}
    return {s: TensorSplit(**{k: t[a:b] for k, t in tensors.items()}) for s, (a, b) in bounds.items()}


class SineTask(Task):
    """Forecast the next `horizon` values of a noisy sine of random frequency and phase."""

    name = "sine"
    kind = TaskKind.REGRESSION
    default_loss = "mse"

    def __init__(
        self,
        window: int = 40,
        horizon: int = 1,
        n_train: int = 2000,
        n_val: int = 400,
        n_test: int = 400,
        min_period: float = 8.0,
        max_period: float = 40.0,
        noise: float = 0.05,
        batch_size: int = 64,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size=batch_size, seed=seed)
        self.window, self.horizon = window, horizon
        self.n_train, self.n_val, self.n_test = n_train, n_val, n_test
        self.min_period, self.max_period, self.noise = min_period, max_period, noise

    def build(self):
        g = seeded_generator(self.seed)
        n = self.n_train + self.n_val + self.n_test
        steps = torch.arange(self.window + self.horizon, dtype=torch.float32)  # (T,)
        period = self.min_period + (self.max_period - self.min_period) * torch.rand(n, 1, generator=g)
        phase = 2 * math.pi * torch.rand(n, 1, generator=g)
        series = torch.sin(2 * math.pi * steps / period + phase)  # (N, T)
        series = series + self.noise * torch.randn(series.shape, generator=g)
        x = series[:, : self.window].unsqueeze(-1)  # (N, window, 1)
        y = series[:, self.window :]  # (N, horizon)
        return _split(self.n_train, self.n_val, self.n_test, x=x, y=y)

    def spec(self) -> TaskSpec:
        return TaskSpec(kind=self.kind, input_size=1, output_size=self.horizon)


class AddingTask(Task):
    """Hochreiter & Schmidhuber's adding problem: sum the two marked values of a long sequence.

    Each step carries (value ~ U(0, 1), marker in {0, 1}); one marker falls in each half of the
    sequence. Predicting the mean sum (1.0) scores an MSE of about 0.167: the chance line.
    """

    name = "adding"
    kind = TaskKind.REGRESSION
    default_loss = "mse"

    def __init__(
        self,
        length: int = 50,
        n_train: int = 4000,
        n_val: int = 500,
        n_test: int = 500,
        batch_size: int = 64,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size=batch_size, seed=seed)
        self.length = length
        self.n_train, self.n_val, self.n_test = n_train, n_val, n_test

    def build(self):
        g = seeded_generator(self.seed)
        n, half = self.n_train + self.n_val + self.n_test, self.length // 2
        values = torch.rand(n, self.length, generator=g)
        first = torch.randint(0, half, (n,), generator=g)
        second = torch.randint(half, self.length, (n,), generator=g)
        markers = torch.zeros(n, self.length)
        rows = torch.arange(n)
        markers[rows, first] = 1.0
        markers[rows, second] = 1.0
        x = torch.stack([values, markers], dim=-1)  # (N, T, 2)
        y = (values[rows, first] + values[rows, second]).unsqueeze(-1)  # (N, 1)
        return _split(self.n_train, self.n_val, self.n_test, x=x, y=y)

    def spec(self) -> TaskSpec:
        return TaskSpec(kind=self.kind, input_size=2, output_size=1)
