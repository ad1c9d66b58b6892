"""scikit-learn's 8x8 handwritten digits (shipped offline with it), read as sequences."""

import torch

from seqlab.spec import TaskKind, TaskSpec
from seqlab.tasks.base import Task, check_split_fractions, seeded_generator
from seqlab.tasks.batching import TensorSplit

SPLIT_SEED = 0  # one fixed split for every run, so cells and seeds compare on the same test images


class DigitsTask(Task):
    """Classify a 1,797-image digit set: 8 steps of 8 pixels (row by row) or 64 steps of 1 (pixelwise).

    Pixel by pixel is the small cousin of sequential MNIST: the class depends on steps 60 apart.
    Chance accuracy is about 10%.
    """

    name = "digits"
    kind = TaskKind.CLASSIFICATION

    def __init__(
        self,
        pixelwise: bool = False,
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        batch_size: int = 32,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size=batch_size, seed=seed)
        self.pixelwise, self.val_fraction, self.test_fraction = pixelwise, val_fraction, test_fraction

    @classmethod
    def check(cls, options) -> None:
        check_split_fractions(options.get("val_fraction"), options.get("test_fraction"))

    def build(self):
        from sklearn.datasets import load_digits

        digits = load_digits()
        images = torch.tensor(digits.images, dtype=torch.float32) / 16.0  # (N, 8, 8) in [0, 1]
        labels = torch.tensor(digits.target, dtype=torch.long)
        x = images.reshape(-1, 64, 1) if self.pixelwise else images  # (N, T, F)
        order = torch.randperm(len(labels), generator=seeded_generator(SPLIT_SEED))
        n_val, n_test = round(len(order) * self.val_fraction), round(len(order) * self.test_fraction)
        parts = {
            "test": order[:n_test],
            "val": order[n_test : n_test + n_val],
            "train": order[n_test + n_val :],
        }
        return {split: TensorSplit(x=x[idx], y=labels[idx]) for split, idx in parts.items()}

    def spec(self) -> TaskSpec:
        return TaskSpec(kind=self.kind, input_size=1 if self.pixelwise else 8, output_size=10)
