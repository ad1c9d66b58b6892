"""Gradient flow through time: how strongly the loss at a sequence's last step still reaches back k steps.

For each sequence b of a fixed batch and each distance k, the norm of d(loss at b's last real step) /
d(input of the recurrent cell at step last_b - k), where the cell's input is the network's input after
its window norm, embedding and front-end (the embedded input for symbols). Averaged over the sequences
that reach k steps back. Vanishing gradients (Bengio et al. 1994; Pascanu et al. 2013) show as a curve
that falls fast on a log scale; a cell that keeps the gradient flows further back.

The gradient horizon is the number of steps back over which the curve stays at or above `fraction` of
its value at the last step (k = 0): the largest H with relative(k) >= fraction for every k <= H. Here
relative(k) is the summed norm at k over the summed norm at k = 0 of the same sequences, so a padded
batch whose shorter sequences drop out of the far end does not bend the curve. A linear recurrence
h_t = w h_{t-1} + x_t has relative(k) = |w|^k exactly, so its horizon is floor(log(fraction) / log|w|).

Pure torch: one forward and one backward pass on the network in eval mode (no dropout, norms on their
running statistics), with a hook on the cell's input that lives only during that pass.
"""

import math
from dataclasses import dataclass
from typing import Protocol, cast

import torch
from torch import nn

from seqlab.models.losses import Loss

FRACTION = 0.01  # the default share of the last step's gradient norm the horizon counts down to
CSV_HEADER = ("steps_back", "gradient_norm", "relative", "sequences")


class Model(Protocol):
    """What the measurement needs of a trained model (seqlab's SequenceModule is one)."""

    net: nn.Module
    loss: Loss

    def pair_distance(self, x: torch.Tensor, x2: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class GradientFlow:
    """The curve: index k is k steps back from each sequence's last real step."""

    norms: torch.Tensor  # (K,) mean gradient norm over the sequences that reach k steps back
    relative: torch.Tensor  # (K,) sum of norms at k / sum of the same sequences' norms at k = 0
    sequences: torch.Tensor  # (K,) how many sequences reach k steps back
    fraction: float = FRACTION

    @property
    def horizon(self) -> float:
        """Steps back while relative(k) >= fraction (nan where the last step has no gradient at all); equal
        to len - 1 when the curve never falls below the fraction within the sequences."""
        if not self.relative.numel() or not math.isfinite(float(self.relative[0])):
            return math.nan
        below = (self.relative < self.fraction).nonzero()
        return float(below[0, 0] - 1) if len(below) else float(len(self.relative) - 1)

    def rows(self) -> list[tuple[int, float, float, int]]:
        return [
            (k, float(n), float(r), int(s))
            for k, (n, r, s) in enumerate(zip(self.norms, self.relative, self.sequences, strict=True))
        ]

    def to_csv(self) -> str:
        lines = [",".join(CSV_HEADER)] + [f"{k},{n:.6g},{r:.6g},{s}" for k, n, r, s in self.rows()]
        return "\n".join(lines) + "\n"


def why_not_measured(net: nn.Module) -> str | None:
    """Why the loss at the last step is not a measure of gradient flow through time for this network, or
    None where it is: the loss must reach earlier steps through the recurrence only."""
    if getattr(net, "bidirectional", False):
        return (
            "model.bidirectional=true: the backward direction carries the loss from the last step to every "
            "step directly, so the gradient at a step says nothing about flow through time"
        )
    spec, readout = getattr(net, "spec", None), getattr(net, "readout", "last")
    if spec is not None and not spec.per_step and readout != "last":
        return (
            f"model.readout={readout}: the read-out sees every step directly, not through the recurrence; "
            "gradient flow is measured with model.readout=last"
        )
    if not hasattr(net, "rnn"):
        return "the network has no recurrent cell (`rnn`) whose input the gradient is taken at"
    return None


def measure(model: Model, batch: dict[str, torch.Tensor], fraction: float = FRACTION) -> GradientFlow:
    """The gradient flow of `model` on `batch` ("x", "y", and "mask" (B, T) for padded per-step batches,
    or "x2" for siamese pairs, whose two sequences each count as one)."""
    net = model.net
    reason = why_not_measured(net)
    if reason is not None:
        raise ValueError(f"gradient flow does not apply: {reason}")
    captured: list[torch.Tensor] = []

    def take_cell_input(module: nn.Module, args: tuple) -> tuple:
        inputs = args[0].detach().requires_grad_(True)  # (B, T, F): the leaf the gradient is taken at
        captured.append(inputs)
        return (inputs, *args[1:])

    was_training = net.training
    hook = cast(nn.Module, net.rnn).register_forward_pre_hook(take_cell_input)
    # cuDNN's recurrent backward refuses eval mode; the native kernels give the same numbers.
    try:
        with torch.enable_grad(), torch.backends.cudnn.flags(enabled=False):
            net.eval()
            loss = _last_step_loss(model, batch)
            (grad,) = torch.autograd.grad(loss, captured[0])
    finally:
        hook.remove()
        net.train(was_training)
    norms = grad.norm(dim=-1)  # (B', T): B' sequences (2B for pairs)
    lengths = torch.full((norms.shape[0],), norms.shape[1], device=norms.device)
    mask = batch.get("mask")
    if mask is not None and mask.shape[1] == norms.shape[1]:
        lengths = mask.sum(dim=1)
    return _by_distance(norms, lengths, fraction)


def _last_step_loss(model: Model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The loss at each sequence's last real step, times the batch size: the criterion averages over the
    batch, and undoing that gives each sequence the gradient of its own loss whatever the batch size."""
    net, loss_fn = model.net, model.loss
    x, y, mask = batch["x"], batch["y"], batch.get("mask")
    # siamese pairs: (B,) distances; else (B, out) or (B, T, out)
    out = model.pair_distance(x, batch["x2"]) if "x2" in batch else net(x, mask)
    if out.dim() == 3 and y.dim() >= 2 and y.shape[1] == out.shape[1]:  # per step: keep the last real one
        rows = torch.arange(out.shape[0], device=out.device)
        last = (mask.sum(dim=1).long() if mask is not None else torch.full_like(rows, out.shape[1])) - 1
        out, y = out[rows, last], y[rows, last]  # (B, out), (B, ...)
    out, y = loss_fn.align(out, y)
    return loss_fn(out, y) * y.shape[0]


def _by_distance(norms: torch.Tensor, lengths: torch.Tensor, fraction: float) -> GradientFlow:
    """(B, T) norms and each sequence's real length -> the curve over k = 0 .. T-1 steps back."""
    n_steps = norms.shape[1]
    back = torch.arange(n_steps, device=norms.device)  # (K,)
    step = lengths.long().unsqueeze(1) - 1 - back  # (B, K): the step k back from each sequence's end
    reaches = step >= 0
    at = norms.gather(1, step.clamp(min=0)) * reaches  # (B, K)
    counts = reaches.sum(dim=0)  # (K,)
    at_last = (norms.gather(1, (lengths.long() - 1).unsqueeze(1)) * reaches).sum(dim=0)  # (K,)
    summed = at.sum(dim=0)
    mean = summed / counts.clamp(min=1)
    relative = torch.where(at_last > 0, summed / at_last, torch.full_like(summed, math.nan))
    keep = counts > 0
    return GradientFlow(
        mean[keep].detach().cpu(), relative[keep].detach().cpu(), counts[keep].cpu(), fraction
    )
