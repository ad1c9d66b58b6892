"""Losses: which task kinds each fits, and what the network must emit for it."""

import inspect
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F
from torchmetrics import Metric

from seqlab.tasks.base import TaskKind


@dataclass(frozen=True)
class LossSpec:
    criterion: type[nn.Module]
    kinds: frozenset[TaskKind]
    output: str  # the network's last activation: identity | log_softmax | sigmoid


LOSSES: dict[str, LossSpec] = {
    "mse": LossSpec(nn.MSELoss, frozenset({TaskKind.REGRESSION}), "identity"),
    "l1": LossSpec(nn.L1Loss, frozenset({TaskKind.REGRESSION}), "identity"),
    "huber": LossSpec(nn.HuberLoss, frozenset({TaskKind.REGRESSION}), "identity"),
    "cross_entropy": LossSpec(nn.CrossEntropyLoss, frozenset({TaskKind.CLASSIFICATION}), "identity"),
    "nll": LossSpec(nn.NLLLoss, frozenset({TaskKind.CLASSIFICATION}), "log_softmax"),
    "bce": LossSpec(nn.BCELoss, frozenset({TaskKind.MULTILABEL}), "sigmoid"),
    "bce_with_logits": LossSpec(nn.BCEWithLogitsLoss, frozenset({TaskKind.MULTILABEL}), "identity"),
    "hinge_embedding": LossSpec(nn.HingeEmbeddingLoss, frozenset({TaskKind.SIMILARITY}), "identity"),
}


def losses_for(kind: TaskKind) -> list[str]:
    return [name for name, spec in LOSSES.items() if kind in spec.kinds]


def criterion_options(name: str) -> set[str]:
    """Keyword options the loss takes in its config (e.g. huber's delta), besides `name`."""
    params = inspect.signature(LOSSES[name].criterion).parameters
    return {p for p in params if p not in {"size_average", "reduce", "reduction"}}


class Loss(nn.Module):
    """A torch.nn loss chosen by name, applied to the steps a mask keeps.

    `align` flattens per-step outputs and drops padded steps, so losses and metrics see the same
    elements: classification as (N, C) scores and (N,) labels, other kinds as (N, ...) pairs.
    """

    def __init__(self, name: str, **options: float) -> None:
        super().__init__()
        self.name = name
        self.spec = LOSSES[name]
        self.criterion = self.spec.criterion(**options)

    @property
    def output(self) -> str:
        return self.spec.output

    def align(
        self, out: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if mask is not None:  # (B, T) bool: keep real steps only
            out, y = out[mask], y[mask]
        if TaskKind.CLASSIFICATION in self.spec.kinds and out.dim() > 2:
            out, y = out.reshape(-1, out.shape[-1]), y.reshape(-1)
        return out, y

    def forward(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.criterion(out, y)


def bernoulli_nll(out: torch.Tensor, y: torch.Tensor, from_logits: bool, reduction: str = "none") -> torch.Tensor:
    """The Bernoulli NLL of each label (or their sum), from logits or from probabilities."""
    if from_logits:
        return F.binary_cross_entropy_with_logits(out, y, reduction=reduction)
    return F.binary_cross_entropy(out.clamp(1e-7, 1 - 1e-7), y, reduction=reduction)


class BernoulliNLL(Metric):
    """Negative log-likelihood per time step of multi-label (piano-roll) outputs, as music papers report it.

    The sum of the per-label Bernoulli NLLs of a step, averaged over every step seen (not over labels, not
    per sequence). `from_logits` follows the loss: bce_with_logits trains on logits, bce on probabilities.
    """

    full_state_update = False

    def __init__(self, from_logits: bool = True) -> None:
        super().__init__()
        self.from_logits = from_logits
        self.add_state("total", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("steps", default=torch.tensor(0), dist_reduce_fx="sum")

    def update(self, out: torch.Tensor, y: torch.Tensor) -> None:  # (N steps, labels)
        self.total += bernoulli_nll(out, y, self.from_logits, reduction="sum").double()
        self.steps += out.shape[0]

    def compute(self) -> torch.Tensor:
        return self.total / self.steps
