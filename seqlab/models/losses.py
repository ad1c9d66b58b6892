"""Losses a config can choose (conf/loss/*.yaml): each class declares the task kinds it fits and the layer
the network must end with for it, beside the torch criterion it applies.

A new loss is a `Loss` subclass with `kinds` (and `output_layer` when it needs probabilities or
log-probabilities) plus one YAML; its constructor's parameters are the config's keys.
"""

from typing import ClassVar

import torch
from torch import nn

from seqlab.spec import TaskKind

PROBABILITY_EPS = 1e-7  # probabilities are clamped this far from 0 and 1 before a log


class Loss(nn.Module):
    """A torch criterion applied to the steps a mask keeps.

    `align` flattens per-step outputs and drops padded steps, so losses and metrics see the same
    elements: classification as (N, C) scores and (N,) labels, other kinds as (N, ...) pairs.
    """

    kinds: ClassVar[frozenset[TaskKind]]  # the task kinds this loss fits; others are refused at start-up

    def __init__(self, criterion: nn.Module) -> None:
        super().__init__()
        self.criterion = criterion

    @staticmethod
    def output_layer() -> nn.Module:
        """The network's last layer for this loss: raw scores (regression values, logits) by default."""
        return nn.Identity()

    def logits(self, out: torch.Tensor) -> torch.Tensor:
        """The network's output as scores a likelihood metric reads (logits where the output is a
        probability)."""
        return out

    def align(
        self, out: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if mask is not None:  # (B, T) bool: keep real steps only
            out, y = out[mask], y[mask]
        if TaskKind.CLASSIFICATION in self.kinds and out.dim() > 2:
            out, y = out.reshape(-1, out.shape[-1]), y.reshape(-1)
        return out, y

    def forward(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.criterion(out, y)


class MSE(Loss):
    kinds = frozenset({TaskKind.REGRESSION})

    def __init__(self) -> None:
        super().__init__(nn.MSELoss())


class L1(Loss):
    kinds = frozenset({TaskKind.REGRESSION})

    def __init__(self) -> None:
        super().__init__(nn.L1Loss())


class Huber(Loss):
    kinds = frozenset({TaskKind.REGRESSION})

    def __init__(self, delta: float = 1.0) -> None:
        super().__init__(nn.HuberLoss(delta=delta))


class CrossEntropy(Loss):
    """On raw scores: the softmax is inside the criterion."""

    kinds = frozenset({TaskKind.CLASSIFICATION})

    def __init__(self, label_smoothing: float = 0.0) -> None:
        super().__init__(nn.CrossEntropyLoss(label_smoothing=label_smoothing))


class NLL(Loss):
    """On log-probabilities: the network ends with a log-softmax."""

    kinds = frozenset({TaskKind.CLASSIFICATION})

    def __init__(self) -> None:
        super().__init__(nn.NLLLoss())

    @staticmethod
    def output_layer() -> nn.Module:
        return nn.LogSoftmax(dim=-1)


class BCE(Loss):
    """On probabilities: the network ends with a sigmoid."""

    kinds = frozenset({TaskKind.MULTILABEL})

    def __init__(self) -> None:
        super().__init__(nn.BCELoss())

    @staticmethod
    def output_layer() -> nn.Module:
        return nn.Sigmoid()

    def logits(self, out: torch.Tensor) -> torch.Tensor:
        return torch.logit(out, eps=PROBABILITY_EPS)


class BCEWithLogits(Loss):
    """On logits: the sigmoid is inside the criterion (more stable than BCE)."""

    kinds = frozenset({TaskKind.MULTILABEL})

    def __init__(self) -> None:
        super().__init__(nn.BCEWithLogitsLoss())


class HingeEmbedding(Loss):
    """On the distance between a pair's two encodings: small for same-class pairs, above `margin`
    otherwise."""

    kinds = frozenset({TaskKind.SIMILARITY})

    def __init__(self, margin: float = 1.0) -> None:
        super().__init__(nn.HingeEmbeddingLoss(margin=margin))
