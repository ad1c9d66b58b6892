"""Parameter-matched cells: the hidden size whose network has about N trainable parameters.

Comparing an RNN, an LSTM and a GRU at the same hidden size gives the LSTM four times the recurrent
weights of the RNN; a fair comparison holds the parameter count fixed instead (Chung et al. 2014:
~20k each). The count is taken exactly, by building the whole network on the meta device (no memory,
no random numbers drawn), so it is right for any cell, num_layers, direction, readout, norm, head and task.
"""

import math
from collections.abc import Callable
from dataclasses import replace

import torch
from torch import nn

from seqlab.models.network import CellFactory, NetworkOptions, NormFactory, SequenceNet, count_parameters
from seqlab.models.norms import width_multiple
from seqlab.spec import TaskSpec

HEAD_TUNING_TOLERANCE = 0.01  # beyond this miss, the head's hidden layer closes the gap


def build_network(
    spec: TaskSpec,
    cell: CellFactory,
    norm: NormFactory,
    output_layer: nn.Module | None = None,
    param_budget: int | None = None,
    **options,
) -> SequenceNet:
    """The `_target_` of the model config: the network for a task, sized to `param_budget` when one is given.

    With a budget the hidden size (and if needed the head's width) is chosen to match it and the given
    hidden_size is ignored, so any code instantiating a logged model config gets the same network.
    """
    shape = NetworkOptions(**options)
    if param_budget is not None:
        shape = fit_budget(param_budget, spec, cell, norm, shape)
    return SequenceNet(spec, cell, norm, shape, output_layer)


def hidden_size_step(options: NetworkOptions, norm: NormFactory) -> int:
    """The smallest hidden size whose multiples give a width the norm and the attention heads can split."""
    directions = 2 if options.bidirectional else 1
    width_step = width_multiple(norm)
    if options.readout == "attention":
        width_step = math.lcm(width_step, options.attention_heads)
    return width_step // math.gcd(width_step, directions)


def count_for(spec: TaskSpec, cell: CellFactory, norm: NormFactory, options: NetworkOptions) -> int:
    """Trainable parameters of the network with these options (built on the meta device)."""
    with torch.device("meta"):
        return count_parameters(SequenceNet(spec, cell, norm, options))


def _closest(budget: int, count: Callable[[int], int], low: int) -> int:
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


def hidden_size_for_budget(
    budget: int, spec: TaskSpec, cell: CellFactory, norm: NormFactory, options: NetworkOptions
) -> int:
    """The hidden size whose parameter count is closest to `budget` (ties: the smaller network).

    The count grows strictly with the hidden size, so a binary search over multiples of the step
    finds the last size under the budget; the answer is it or the next one, whichever is closer.
    """
    step = hidden_size_step(options, norm)
    return step * _closest(
        budget, lambda k: count_for(spec, cell, norm, replace(options, hidden_size=k * step)), 1
    )


def fit_budget(
    budget: int, spec: TaskSpec, cell: CellFactory, norm: NormFactory, options: NetworkOptions
) -> NetworkOptions:
    """`options` with hidden_size (and, when needed and not set by the user, head_hidden) matching `budget`.

    A step of the hidden size changes a deep or bidirectional net by several percent at 10k
    parameters; one unit of the head's hidden layer changes it by width + outputs + 1, so when the
    hidden size alone misses by more than 1% the head (head_hidden unset: it follows hidden_size)
    is resized to land within 2%.
    """
    hidden = hidden_size_for_budget(budget, spec, cell, norm, options)
    sized = replace(options, hidden_size=hidden)
    missed = abs(count_for(spec, cell, norm, sized) - budget) > HEAD_TUNING_TOLERANCE * budget
    if not missed or options.head_hidden is not None:
        return sized
    step = hidden_size_step(options, norm)
    under = hidden if count_for(spec, cell, norm, sized) <= budget else max(step, hidden - step)
    sized = replace(options, hidden_size=under)
    head = _closest(budget, lambda h: count_for(spec, cell, norm, replace(sized, head_hidden=h)), 1)
    return replace(sized, head_hidden=head)
