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


def _closest(budget: int, count, low: int) -> int:
    """The k >= low whose count(k) is closest to budget, for a count that grows with k (ties: smaller)."""
    if count(low) >= budget:
        return low
    high = low * 2  # invariant: count(low) < budget <= count(high) once found
    while count(high) < budget:
        low, high = high, high * 2
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if count(mid) < budget else (low, mid)
    return low if budget - count(low) <= count(high) - budget else high


def hidden_size_for_budget(budget: int, spec: TaskSpec, **options) -> int:
    """The hidden size whose parameter count is closest to `budget` (ties: the smaller network).

    The count grows strictly with the hidden size, so a binary search over multiples of the step
    finds the last size under the budget; the answer is it or the next one, whichever is closer.
    """
    options = {k: v for k, v in options.items() if k != "hidden_size"}
    step = hidden_size_step(
        options.get("bidirectional", False),
        options.get("norm", "none"),
        options.get("num_groups", 1),
        options.get("readout", "last"),
        options.get("attention_heads", 1),
    )
    return step * _closest(budget, lambda k: count_for_hidden_size(spec, k * step, **options), 1)


HEAD_TUNING_TOLERANCE = 0.01  # beyond this miss, the head's hidden layer closes the gap


def fit_budget(budget: int, spec: TaskSpec, **options) -> dict[str, int]:
    """hidden_size (and, when needed and not set by the user, head_hidden) matching `budget`.

    A step of the hidden size changes a deep or bidirectional net by several percent at 10k
    parameters; one unit of the head's hidden layer changes it by width + outputs + 1, so when the
    hidden size alone misses by more than 1% the head (head_hidden unset: it follows hidden_size)
    is resized to land within 2%.
    """
    hidden = hidden_size_for_budget(budget, spec, **options)
    options = {k: v for k, v in options.items() if k != "hidden_size"}
    missed = abs(count_for_hidden_size(spec, hidden, **options) - budget) > HEAD_TUNING_TOLERANCE * budget
    if not missed or options.get("head_hidden") is not None:
        return {"hidden_size": hidden}
    step = hidden_size_step(
        options.get("bidirectional", False), options.get("norm", "none"), options.get("num_groups", 1),
        options.get("readout", "last"), options.get("attention_heads", 1),
    )
    under = hidden if count_for_hidden_size(spec, hidden, **options) <= budget else max(step, hidden - step)

    def count(head: int) -> int:
        return count_for_hidden_size(spec, under, **(options | {"head_hidden": head}))

    return {"hidden_size": under, "head_hidden": _closest(budget, count, 1)}
