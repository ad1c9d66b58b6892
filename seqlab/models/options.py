"""The network's options: every `model.*` key, its default and its allowed values, declared once.

Plain Python (no torch), so the config schema extends it without loading torch.
"""

from dataclasses import dataclass

from seqlab.checks import at_least, one_of, probability

# option value -> the torch.nn class it builds
ACTIVATIONS = {
    "relu": "ReLU",
    "tanh": "Tanh",
    "sigmoid": "Sigmoid",
    "leaky_relu": "LeakyReLU",
    "elu": "ELU",
    "selu": "SELU",
    "gelu": "GELU",
}
POOLS: dict[str, str | None] = {"none": None, "max": "MaxPool1d", "avg": "AvgPool1d"}
READOUTS = ("last", "mean", "max", "attention")
# option value -> the seqlab.models.window_norm class it builds
WINDOW_NORMS = {"none": "NoWindowNorm", "last": "LastValue", "revin": "RevIN"}
FRONTENDS = ("none", "conv1d")


@dataclass
class NetworkOptions:
    """The network's shape: every `model.*` key but model.param_budget (the config schema extends this)."""

    hidden_size: int = 64  # units per direction and layer of the cell
    num_layers: int = 1  # stacked recurrent layers
    bidirectional: bool = False  # a second direction reading the sequence from its end
    dropout: float = 0.0  # between stacked recurrent layers and before the head
    activation: str = "relu"  # the head's hidden activation (and the conv front-end's)
    readout: str = "last"  # how a sequence becomes one vector: last | mean | max | attention
    attention_heads: int = 1  # heads of the attention readout
    head_hidden: int | None = None  # width of the head's hidden layer; None: hidden_size; 0: a linear head
    frontend: str = "none"  # none | conv1d: a convolution over time before the cell
    conv_channels: int = 32
    conv_kernel: int = 3
    pool: str = "none"  # conv1d downsampling: none | max | avg
    pool_size: int = 2
    embedding_dim: int = 16  # tasks with discrete symbols feed them through nn.Embedding
    window_norm: str = (
        "none"  # forecasting: none | last | revin, each window relative to itself (window_norm.py)
    )

    @property
    def width(self) -> int:
        """The recurrent output width the norm, the readout and the head see."""
        return self.hidden_size * (2 if self.bidirectional else 1)

    def check(self) -> None:
        """Refuse values the network cannot be built with, naming the model.* key (config.validate calls
        it)."""
        at_least("model.hidden_size", self.hidden_size, 1, " (e.g. model.hidden_size=64)")
        at_least("model.num_layers", self.num_layers, 1)
        probability("model.dropout", self.dropout)
        one_of("model.activation", self.activation, ACTIVATIONS)
        one_of("model.readout", self.readout, READOUTS)
        one_of("model.frontend", self.frontend, FRONTENDS)
        one_of("model.pool", self.pool, POOLS)
        one_of("model.window_norm", self.window_norm, WINDOW_NORMS)
        for key in ("attention_heads", "conv_channels", "conv_kernel", "pool_size", "embedding_dim"):
            at_least(f"model.{key}", getattr(self, key), 1)
        if self.head_hidden is not None:
            at_least("model.head_hidden", self.head_hidden, 0)
