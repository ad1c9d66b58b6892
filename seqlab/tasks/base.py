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
from seqlab.errors import ConfigError, DataError
from seqlab.spec import TaskKind, TaskSpec
from seqlab.tasks import baselines
from seqlab.tasks.batching import TensorSplit, batch_loader, batches_of
from seqlab.tasks.download import sha256_of
from seqlab.tasks.windows import InDataUnits, Scaling


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
    ignored_label: ClassVar[int | None] = None  # a target class the metrics skip (copy's blank)
    season: int | None = None  # forecasting: the season length of the seasonal naive baseline (task.season)

    def __init__(self, batch_size: int = 64, seed: int = 0) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.seed = seed
        self.splits: dict[str, TensorSplit] | None = None
        # How build() standardized the data, where it did: metrics and the served model undo it
        self.scaling: Scaling | None = None

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

    @property
    def label(self) -> str:
        """The task in run names; a task with user data adds what tells its runs apart (the file)."""
        return self.name

    def resolved_config(self) -> dict[str, Any]:
        """Task options as the task resolved them (a relative path made absolute), for the run to log in
        place of what was given, so that the logged config means the same from any folder."""
        return {}

    def extra_params(self) -> dict[str, str]:
        """Params beside the config that say what the task made of its data (the columns it used)."""
        return {}

    def verify_files(self, expected: str) -> None:
        """Refuse to train on data files whose bytes differ from those a run read, before training.

        `expected` is that run's names.DATA_SHA256 tag: a `<sha256>  <file>` line per file. A file is
        matched by its path, else by its name (a run may have logged a relative path); a file the run did
        not read (another data option) is not checked.
        """
        logged: dict[str, str] = {}
        for line in expected.splitlines():
            logged_digest, _, file = line.partition("  ")
            if file:
                logged[file] = logged_digest
        for path in self.data_files():
            digest = logged.get(str(path))
            if digest is None:
                by_name = [d for f, d in logged.items() if Path(f).name == path.name]
                digest = by_name[0] if len(by_name) == 1 else None
            if digest is None:
                continue
            found = sha256_of(path) if path.is_file() else None
            if found != digest:
                now = f"its SHA-256 is now {found}" if found else "it no longer exists"
                raise DataError(
                    f"{path} is not the file the run read: {now}, the run read SHA-256 {digest} (tag "
                    f"{names.DATA_SHA256}). Training on other data would not repeat the run; restore the "
                    "file the run read."
                )

    def baselines(self, split: str) -> dict[str, float]:
        """Trivial baselines scored on `split` ("val" or "test") as the metrics score the model: the same
        examples, masks and units (seqlab/tasks/baselines.py). Chosen by the task's kind and spec; a task
        whose data needs another way (padded music) overrides it."""
        splits = self.prepare()
        spec, scored = self.spec(), _whole(splits[split])
        train_y = torch.cat(
            [splits["train"][rows]["y"] for rows in torch.arange(len(splits["train"])).split(4096)]
        )
        unscale = self.scaling.unscale_targets if self.scaling is not None else None
        if self.kind is TaskKind.REGRESSION and spec.target_inputs:
            return baselines.forecast(
                scored["x"], scored["y"], train_y, spec.target_inputs, self.season, unscale
            )
        if self.kind is TaskKind.REGRESSION:
            return baselines.mean(scored["y"], train_y, unscale)
        if self.kind is TaskKind.CLASSIFICATION:
            return baselines.classes(scored["y"], train_y, spec.output_size, self.ignored_label)
        if self.kind is TaskKind.SIMILARITY:
            return baselines.pairs(scored["y"], train_y)
        return {}

    def metrics(self) -> MetricCollection:
        """The task's metrics (torchmetrics), keyed by their short names ("mse", "accuracy", ...); a task
        that standardized its data adds each in the data's units ("mse_original")."""
        metrics = default_metrics(self.kind, self.spec())
        if self.scaling is not None:
            metrics.add_metrics(
                {
                    f"{k}{names.DATA_UNITS_SUFFIX}": InDataUnits(m.clone(), self.scaling)
                    for k, m in list(metrics.items())
                }
            )
        return metrics

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


def _whole(split: Any) -> dict[str, torch.Tensor]:
    """Every example of a split in one gather."""
    return split[torch.arange(len(split))]


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
