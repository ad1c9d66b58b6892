"""Normalizations of the recurrent outputs a config can choose (conf/norm/*.yaml).

A norm is any class called as `norm(width)` whose module maps (B, T, width) outputs and the (B, T) mask of a
padded batch's real steps (None: all real) to normalized outputs of the same shape. Two optional class
attributes tell seqlab what it cannot see from outside: `width_multiple(**options)`, the number the width
must be a multiple of (a parameter budget then picks such widths), and `mixes_steps`, whether a step's
output depends on later steps (next-step tasks refuse such a norm).
"""

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import nn

from seqlab.checks import at_least


class NoNorm(nn.Identity):
    """The recurrent outputs as they are."""

    mixes_steps: ClassVar[bool] = False

    def __init__(self, width: int) -> None:
        super().__init__()

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return h


class StepLayerNorm(nn.LayerNorm):
    """LayerNorm over each step's features (a subclass, so checkpoints keep the keys norm.weight/bias)."""

    mixes_steps: ClassVar[bool] = False

    def __init__(self, width: int) -> None:
        super().__init__(width)

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return super().forward(h)


class StepBatchNorm(nn.Module):
    """BatchNorm1d over the real time steps of (B, T, C) recurrent outputs.

    In a padded batch (music: pieces of different lengths) the outputs past a piece's end are not data;
    statistics over all B x T steps would let the amount of padding move the normalization and the
    running statistics that evaluation uses. Given a (B, T) mask, only the real steps count; the padded
    ones pass through unnormalized (the loss never sees them). At evaluation it uses running statistics,
    so a step never depends on later ones.
    """

    mixes_steps: ClassVar[bool] = False

    def __init__(self, width: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(width)

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is None:  # every step is real
            return self.norm(h.reshape(-1, h.shape[-1])).reshape(h.shape)
        return h.masked_scatter(mask.unsqueeze(-1), self.norm(h[mask]))


class StepGroupNorm(nn.Module):
    """GroupNorm over (B, C, T): each sequence's statistics over all its steps, per group of channels."""

    mixes_steps: ClassVar[bool] = True

    def __init__(self, width: int, num_groups: int = 1) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(num_groups, width)

    @staticmethod
    def width_multiple(num_groups: int = 1) -> int:
        return num_groups

    @classmethod
    def check(cls, options: Mapping[str, Any]) -> None:
        at_least("norm.num_groups", options.get("num_groups", 1), 1)

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.norm(h.transpose(1, 2)).transpose(1, 2)  # (B, T, C) -> (B, C, T) and back


def width_multiple(norm: Any) -> int:
    """What the recurrent output width must be a multiple of for `norm` (a class or a functools.partial)."""
    cls, options = getattr(norm, "func", norm), getattr(norm, "keywords", {})
    multiple = getattr(cls, "width_multiple", None)
    return int(multiple(**options)) if multiple is not None else 1


def mixes_steps(norm: Any) -> bool:
    """Whether `norm` (a class or a functools.partial) lets a step's output depend on later steps."""
    return bool(getattr(getattr(norm, "func", norm), "mixes_steps", False))
