"""Parameter-matched cells: the hidden size whose network has about N trainable parameters.

Comparing an RNN, an LSTM and a GRU at the same hidden size gives the LSTM four times the recurrent
weights of the RNN; a fair comparison holds the parameter count fixed instead (Chung et al. 2014:
~20k each). The count is taken exactly, by building the whole network on the meta device (no memory,
no random numbers drawn), so it is right for any num_layers, direction, readout, norm, head and task.
"""

import math

import torch

from seqlab.models.network import SequenceNet, count_parameters
from seqlab.tasks.base import TaskSpec


def hidden_size_step(bidirectional: bool, norm: str, num_groups: int, readout: str, attention_heads: int) -> int:
    """The smallest hidden size whose multiples give a width GroupNorm and attention heads can split."""
    directions = 2 if bidirectional else 1
    divisors = [num_groups] if norm == "group" else []
    if readout == "attention":
        divisors.append(attention_heads)
    width_multiple = math.lcm(*divisors) if divisors else 1
    return width_multiple // math.gcd(width_multiple, directions)


def count_for_hidden_size(spec: TaskSpec, hidden_size: int, **options) -> int:
    """Trainable parameters of the network with this hidden size (built on the meta device)."""
    with torch.device("meta"):
        return count_parameters(SequenceNet(spec, hidden_size=hidden_size, **options))


def hidden_size_for_budget(budget: int, spec: TaskSpec, **options) -> int:
    """The hidden size whose parameter count is closest to `budget` (ties: the smaller network).

    The count grows strictly with the hidden size, so a binary search over multiples of the step
    finds the last size at or under the budget; the answer is it or the next one, whichever is closer.
    """
    options = {k: v for k, v in options.items() if k != "hidden_size"}
    step = hidden_size_step(
        options.get("bidirectional", False),
        options.get("norm", "none"),
        options.get("num_groups", 1),
        options.get("readout", "last"),
        options.get("attention_heads", 1),
    )

    def count(k: int) -> int:
        return count_for_hidden_size(spec, k * step, **options)

    if count(1) >= budget:
        return step
    low, high = 1, 2  # invariant: count(low) < budget; find high with count(high) >= budget
    while count(high) < budget:
        low, high = high, high * 2
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if count(mid) < budget else (low, mid)
    best = low if budget - count(low) <= count(high) - budget else high
    return best * step
