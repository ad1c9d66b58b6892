"""The one small interface every task implements: build tensors once, declare what they are."""

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import lightning as L
import torch
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy
from torchmetrics.regression import MeanAbsoluteError, MeanSquaredError

from seqlab import names
from seqlab.errors import ConfigError
from seqlab.spec import TaskKind, TaskSpec
from seqlab.tasks.batching import TensorSplit, batch_loader, batches_of


class Task(L.LightningDataModule):
    """A LightningDataModule whose splits are tensors built once, batched by index arithmetic.

    A new task is one subclass (set the class attributes, implement `build`) and one `conf/task/*.yaml`.
    Batches are dicts: "x" the input, "y" the target, and optionally "mask" (B, T) for padded steps.
    """

    # The config option, task=<name>; used in run names. Not a ClassVar: LightningDataModule declares
    # `name` as an instance attribute, which a class attribute of each task still sets.
    name: str
    # Which losses fit (each loss declares its kinds); the YAML sets the default loss.
    kind: ClassVar[TaskKind]
    per_step: ClassVar[bool] = False  # predictions at every time step (no readout, no pooling)
    causal: ClassVar[bool] = False  # next-step prediction: step t must not see inputs after t

    def __init__(self, batch_size: int = 64, seed: int = 0) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.seed = seed
        self.splits: dict[str, TensorSplit] | None = None

    @classmethod
    def check(cls, options: Mapping[str, Any]) -> None:
        """Config-level checks of the task's keys (raise ConfigError); `validate` runs them before any job."""

    def build(self) -> dict[str, TensorSplit]:
        """Generate or load the data: return the "train", "val" and "test" splits."""
        raise NotImplementedError

    def spec(self) -> TaskSpec:
        """Describe the built tensors to the network."""
        raise NotImplementedError

    def data_files(self) -> list[Path]:
        """Files the task read (for their SHA-256 in the run's provenance); none for generated data."""
        return []

    def metrics(self) -> MetricCollection:
        """The task's metrics (torchmetrics), keyed by their short names ("mse", "accuracy", ...)."""
        return default_metrics(self.kind, self.spec())

    def prepare(self) -> dict[str, TensorSplit]:
        """Build the splits once; called before any MLflow run exists, so bad data never starts a run."""
        if self.splits is None:
            self.splits = self.build()
        return self.splits

    def split_sizes(self) -> dict[str, int]:
        splits = self.prepare()
        return {
            names.N_TRAIN: len(splits["train"]),
            names.N_VAL: len(splits["val"]),
            names.N_TEST: len(splits["test"]),
        }

    def batch_counts(self) -> dict[str, int]:
        """Batches an epoch of each split, as the loaders' samplers count them."""
        return {split: batches_of(len(data), self.batch_size) for split, data in self.prepare().items()}

    def setup(self, stage: str) -> None:
        self.prepare()

    def batch_lengths(self, split: str) -> torch.Tensor | None:
        """Per-example sequence lengths to batch similar lengths together; None batches at random."""
        return None

    def _loader(self, split: str, shuffle: bool):
        lengths = self.batch_lengths(split)
        return batch_loader(
            self.prepare()[split], self.batch_size, shuffle=shuffle, seed=self.seed, lengths=lengths
        )

    def train_dataloader(self):
        return self._loader("train", shuffle=True)

    def val_dataloader(self):
        return self._loader("val", shuffle=False)

    def test_dataloader(self):
        return self._loader("test", shuffle=False)


def check_split_fractions(val: Any, test: Any) -> None:
    """Fractions of the examples for validation and test; the rest trains."""
    if not (
        isinstance(val, float | int)
        and isinstance(test, float | int)
        and 0 < val < 1
        and 0 < test < 1
        and val + test < 1
    ):
        raise ConfigError(
            f"Invalid task.val_fraction={val} / task.test_fraction={test}: each must be in (0, 1) and "
            "their sum below 1 (the rest is the training split)."
        )


def default_metrics(kind: TaskKind, spec: TaskSpec) -> MetricCollection:
    """Regression: MSE and MAE; classification: accuracy. Other kinds define their own."""
    if kind is TaskKind.REGRESSION:
        return MetricCollection({"mse": MeanSquaredError(), "mae": MeanAbsoluteError()})
    if kind is TaskKind.CLASSIFICATION:
        return MetricCollection({"accuracy": MulticlassAccuracy(spec.output_size, average="micro")})
    return MetricCollection({})


def seeded_generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)
