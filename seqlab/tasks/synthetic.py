"""Seeded synthetic tasks, generated whole in tensors (no per-sample Python)."""

import math

import torch
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy

from seqlab.checks import at_least
from seqlab.errors import ConfigError
from seqlab.spec import TaskKind, TaskSpec
from seqlab.tasks.base import Task, seeded_generator
from seqlab.tasks.batching import TensorSplit
from seqlab.tasks.windows import forecast_splits, zscore


def _split(n_train: int, n_val: int, n_test: int, **tensors: torch.Tensor) -> dict[str, TensorSplit]:
    """Cut tensors generated in one go into consecutive train/val/test parts."""
    bounds = {
        "train": (0, n_train),
        "val": (n_train, n_train + n_val),
        "test": (n_train + n_val, n_train + n_val + n_test),
    }
    return {s: TensorSplit(**{k: t[a:b] for k, t in tensors.items()}) for s, (a, b) in bounds.items()}


class SineTask(Task):
    """Forecast the next `horizon` values of a noisy sine of random frequency and phase."""

    name = "sine"
    kind = TaskKind.REGRESSION

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
        return TaskSpec(kind=self.kind, input_size=1, output_size=self.horizon, target_inputs=(0,))


class AddingTask(Task):
    """Hochreiter & Schmidhuber's adding problem: sum the two marked values of a long sequence.

    Each step carries (value ~ U(0, 1), marker in {0, 1}); one marker falls in each half of the
    sequence. Predicting the mean sum (1.0) scores an MSE of about 0.167: the chance line.
    """

    name = "adding"
    kind = TaskKind.REGRESSION

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


BLANK = 0  # the copy task's blank symbol and target


class CopyTask(Task):
    """Copy memory (Hochreiter & Schmidhuber 1997; Arjovsky et al. 2016): recall symbols after a delay.

    Input: `n_symbols` random symbols from 1..`alphabet`, `delay` blanks (0), a recall marker
    (alphabet + 1), then `n_symbols` blanks. Target: blanks everywhere except the last `n_symbols` steps,
    which must repeat the symbols. Accuracy counts the recalled symbols only (blank targets are ignored),
    so chance is 1 / alphabet.
    """

    name = "copy"
    ignored_label = BLANK
    kind = TaskKind.CLASSIFICATION
    per_step = True

    def __init__(
        self,
        delay: int = 10,
        n_symbols: int = 3,
        alphabet: int = 8,
        n_train: int = 8000,
        n_val: int = 1000,
        n_test: int = 1000,
        batch_size: int = 64,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size=batch_size, seed=seed)
        self.delay, self.n_symbols, self.alphabet = delay, n_symbols, alphabet
        self.n_train, self.n_val, self.n_test = n_train, n_val, n_test

    @classmethod
    def check(cls, options) -> None:
        at_least("task.delay", options.get("delay"), 0)
        at_least("task.n_symbols", options.get("n_symbols"), 1)
        if not isinstance(options.get("alphabet"), int) or options.get("alphabet") < 2:
            raise ConfigError(
                f"Invalid task.alphabet={options.get('alphabet')!r}: it must be an integer >= 2."
            )

    def build(self):
        g = seeded_generator(self.seed)
        n, k = self.n_train + self.n_val + self.n_test, self.n_symbols
        length = k + self.delay + 1 + k
        symbols = torch.randint(1, self.alphabet + 1, (n, k), generator=g)
        x = torch.zeros(n, length, dtype=torch.long)
        x[:, :k] = symbols
        x[:, k + self.delay] = self.alphabet + 1  # the recall marker
        y = torch.zeros(n, length, dtype=torch.long)
        y[:, -k:] = symbols
        return _split(self.n_train, self.n_val, self.n_test, x=x, y=y)

    def spec(self) -> TaskSpec:
        vocab = self.alphabet + 2  # blank, the symbols, the marker
        return TaskSpec(
            kind=self.kind, input_size=1, output_size=self.alphabet + 1, vocab_size=vocab, per_step=True
        )

    def metrics(self) -> MetricCollection:
        accuracy = MulticlassAccuracy(self.alphabet + 1, average="micro", ignore_index=BLANK)
        return MetricCollection({"accuracy": accuracy})


def mackey_glass(
    n: int,
    tau: float = 17.0,
    beta: float = 0.2,
    gamma: float = 0.1,
    power: float = 10.0,
    dt: float = 0.1,
    warmup: int = 1000,
    x0: float = 1.2,
) -> torch.Tensor:
    """n samples (one per time unit) of dx/dt = beta x(t-tau) / (1 + x(t-tau)^power) - gamma x(t).

    Integrated with Euler steps of `dt` from a constant history x0; the first `warmup` samples (the
    transient) are dropped. A delay equation is sequential by nature: a plain loop, run once per build.
    """
    per_unit = round(1 / dt)
    lag = round(tau / dt)
    total = (n + warmup) * per_unit
    history = [x0] * (lag + 1) + [0.0] * total
    for t in range(lag, lag + total):
        delayed = history[t - lag]
        history[t + 1] = history[t] + dt * (beta * delayed / (1 + delayed**power) - gamma * history[t])
    samples = history[lag + warmup * per_unit :: per_unit][:n]
    return torch.tensor(samples, dtype=torch.float32)


class MackeyGlassTask(Task):
    """Forecast the chaotic Mackey-Glass series (tau=17): `horizon` values from the last `window`.

    One long series, cut chronologically into train/val/test rows; examples are windows over it
    (index arithmetic, see windows.py). Values are z-scored with the training rows' statistics, so
    predicting the mean scores an MSE of about 1: the chance line.
    """

    name = "mackey_glass"
    kind = TaskKind.REGRESSION

    def __init__(
        self,
        window: int = 50,
        horizon: int = 1,
        tau: float = 17.0,
        n_train: int = 4000,
        n_val: int = 1000,
        n_test: int = 1000,
        batch_size: int = 64,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size=batch_size, seed=seed)
        self.window, self.horizon, self.tau = window, horizon, tau
        self.n_train, self.n_val, self.n_test = n_train, n_val, n_test

    def build(self):
        g = seeded_generator(self.seed)
        x0 = 0.5 + float(torch.rand(1, generator=g))  # the seed picks the initial history
        rows = self.n_train + self.n_val + self.n_test
        series = mackey_glass(rows, tau=self.tau, x0=x0).unsqueeze(-1)  # (rows, 1)
        series, _, _ = zscore(series, slice(0, self.n_train))
        val_end = self.n_train + self.n_val
        return forecast_splits(series, series, self.n_train, val_end, rows, self.window, self.horizon)

    def spec(self) -> TaskSpec:
        return TaskSpec(kind=self.kind, input_size=1, output_size=self.horizon, target_inputs=(0,))


class PairAccuracy(Metric):
    """Share of pairs judged right: "same" when their distance is below `threshold` (half the hinge
    margin)."""

    full_state_update = False
    higher_is_better = True

    def __init__(self, threshold: float = 0.5) -> None:
        super().__init__()
        self.threshold = threshold
        self.add_state("correct", default=torch.tensor(0), dist_reduce_fx="sum")
        self.add_state("total", default=torch.tensor(0), dist_reduce_fx="sum")

    correct: torch.Tensor  # states added in __init__; torchmetrics' __getattr__ types them loosely
    total: torch.Tensor

    def update(self, distance: torch.Tensor, y: torch.Tensor) -> None:
        same = distance < self.threshold
        self.correct += (same == (y > 0)).sum()
        self.total += y.numel()

    def compute(self) -> torch.Tensor:
        return self.correct.float() / self.total


class SimilarityTask(Task):
    """Are two sequences of the same class? Pairs for a siamese encoder trained with hinge_embedding.

    A class is a frequency band: a sequence is a sine of random phase and amplitude with its class's
    period (jittered), plus noise. Half the pairs share a class (target +1), half do not (-1); the
    network embeds both with the same weights and the loss acts on their Euclidean distance.
    Chance accuracy is 50%.
    """

    name = "similarity"
    kind = TaskKind.SIMILARITY

    def __init__(
        self,
        length: int = 40,
        n_classes: int = 5,
        embedding_size: int = 16,
        threshold: float = 0.5,
        noise: float = 0.3,
        n_train: int = 4000,
        n_val: int = 500,
        n_test: int = 500,
        batch_size: int = 64,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size=batch_size, seed=seed)
        self.length, self.n_classes, self.embedding_size = length, n_classes, embedding_size
        self.threshold, self.noise = threshold, noise
        self.n_train, self.n_val, self.n_test = n_train, n_val, n_test

    def _sequences(self, labels: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        n = labels.shape[0]
        periods = 4.0 * 1.5 ** labels.float().unsqueeze(1)  # 4, 6, 9, 13.5, ... steps
        periods = periods * (1 + 0.05 * torch.randn(n, 1, generator=g))
        phase = 2 * math.pi * torch.rand(n, 1, generator=g)
        amplitude = 0.5 + torch.rand(n, 1, generator=g)
        steps = torch.arange(self.length, dtype=torch.float32)
        waves = amplitude * torch.sin(2 * math.pi * steps / periods + phase)
        return (waves + self.noise * torch.randn(waves.shape, generator=g)).unsqueeze(-1)  # (N, T, 1)

    def build(self):
        g = seeded_generator(self.seed)
        n = self.n_train + self.n_val + self.n_test
        first = torch.randint(0, self.n_classes, (n,), generator=g)
        same = torch.rand(n, generator=g) < 0.5
        shift = torch.randint(1, self.n_classes, (n,), generator=g)  # another class, uniformly
        second = torch.where(same, first, (first + shift) % self.n_classes)
        y = torch.where(same, 1.0, -1.0)
        x, x2 = self._sequences(first, g), self._sequences(second, g)
        return _split(self.n_train, self.n_val, self.n_test, x=x, x2=x2, y=y)

    def spec(self) -> TaskSpec:
        return TaskSpec(kind=self.kind, input_size=1, output_size=self.embedding_size)

    def metrics(self) -> MetricCollection:
        return MetricCollection({"accuracy": PairAccuracy(self.threshold)})
