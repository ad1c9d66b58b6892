"""A cell, a task and a loss defined outside seqlab, as a user would write them (tests/test_extension.py)."""

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from seqlab.errors import ConfigError
from seqlab.models.losses import Loss
from seqlab.spec import TaskKind, TaskSpec
from seqlab.tasks.base import Task, seeded_generator
from seqlab.tasks.batching import TensorSplit


class ScaledGRU(nn.Module):
    """A GRU whose outputs are multiplied by `gain`: any module with seqlab's cell call fits."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        gain: float = 1.0,
    ) -> None:
        super().__init__()
        self.gru = nn.GRU(
            input_size, hidden_size, num_layers=num_layers, batch_first=True, bidirectional=bidirectional
        )
        self.gain = gain

    @classmethod
    def check(cls, options: Mapping[str, Any]) -> None:
        if not options.get("gain", 1.0) > 0:
            raise ConfigError(f"Invalid cell.gain={options.get('gain')!r}: it must be > 0.")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, state = self.gru(x)
        return h * self.gain, state


class ParityTask(Task):
    """Is the number of ones in a random bit sequence odd? (classification, 2 classes)"""

    name = "parity"
    kind = TaskKind.CLASSIFICATION

    def __init__(
        self,
        length: int = 6,
        n_train: int = 256,
        n_val: int = 64,
        n_test: int = 64,
        batch_size: int = 32,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size=batch_size, seed=seed)
        self.length, self.sizes = length, (n_train, n_val, n_test)

    def build(self) -> dict[str, TensorSplit]:
        bits = torch.randint(0, 2, (sum(self.sizes), self.length), generator=seeded_generator(self.seed))
        x, y = bits.float().unsqueeze(-1), bits.sum(1) % 2
        a, b = self.sizes[0], self.sizes[0] + self.sizes[1]
        return {
            "train": TensorSplit(x=x[:a], y=y[:a]),
            "val": TensorSplit(x=x[a:b], y=y[a:b]),
            "test": TensorSplit(x=x[b:], y=y[b:]),
        }

    def spec(self) -> TaskSpec:
        return TaskSpec(kind=self.kind, input_size=1, output_size=2)


class FocalLoss(Loss):
    """Cross-entropy that down-weights easy examples (Lin et al. 2017)."""

    kinds = frozenset({TaskKind.CLASSIFICATION})

    def __init__(self, gamma: float = 2.0) -> None:
        super().__init__(nn.CrossEntropyLoss(reduction="none"))
        self.gamma = gamma

    def forward(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        ce = self.criterion(out, y)
        return ((1 - torch.exp(-ce)) ** self.gamma * ce).mean()
