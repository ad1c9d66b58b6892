"""The recurrent cells a config can choose (conf/cell/*.yaml), each torch's own layer with seqlab's call.

A cell is any class called as `cell(input_size, hidden_size, num_layers=, bidirectional=, dropout=)` whose
module maps batch-first inputs (B, T, F) to `(outputs (B, T, directions x hidden_size), state)`. These are
subclasses, not wrappers, so the weights keep torch's names (rnn.weight_ih_l0, ...) in every checkpoint.
"""

from collections.abc import Mapping
from typing import Any

from torch import nn

from seqlab.checks import one_of

NONLINEARITIES = ("tanh", "relu")


def _layers(num_layers: int, bidirectional: bool, dropout: float) -> dict[str, Any]:
    """torch's keyword arguments for seqlab's call: batch-first, and dropout only where torch applies it
    (between stacked layers; with one layer torch would warn and ignore it)."""
    return {
        "num_layers": num_layers,
        "batch_first": True,
        "bidirectional": bidirectional,
        "dropout": dropout if num_layers > 1 else 0.0,
    }


class RNN(nn.RNN):
    """Elman's RNN: h_t = nonlinearity(W x_t + U h_{t-1} + b)."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        nonlinearity: str = "tanh",
    ) -> None:
        layers = _layers(num_layers, bidirectional, dropout)
        super().__init__(input_size, hidden_size, nonlinearity=nonlinearity, **layers)

    @classmethod
    def check(cls, options: Mapping[str, Any]) -> None:
        one_of("cell.nonlinearity", options.get("nonlinearity", "tanh"), NONLINEARITIES)


class LSTM(nn.LSTM):
    """Hochreiter & Schmidhuber's LSTM, with forget gates (torch's)."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(input_size, hidden_size, **_layers(num_layers, bidirectional, dropout))


class GRU(nn.GRU):
    """Cho et al.'s gated recurrent unit (torch's)."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(input_size, hidden_size, **_layers(num_layers, bidirectional, dropout))
