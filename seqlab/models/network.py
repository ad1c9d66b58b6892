"""The recurrent network: (embedding | conv front-end) -> RNN/LSTM/GRU -> norm -> readout -> head.

Pure torch.nn, no Lightning: the same module is trained by seqlab, by the bare-loop benchmark, and
served from MLflow.
"""

import torch
from torch import nn

from seqlab.tasks.base import TaskSpec

CELLS: dict[str, type[nn.RNNBase]] = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
NONLINEARITIES = ("tanh", "relu")
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "selu": nn.SELU,
    "gelu": nn.GELU,
}
READOUTS = ("last", "mean", "max", "attention")
FRONTENDS = ("none", "conv1d")
POOLS: dict[str, type[nn.Module] | None] = {"none": None, "max": nn.MaxPool1d, "avg": nn.AvgPool1d}
NORMS = ("none", "batch", "layer", "group")
OUTPUTS = ("identity", "log_softmax", "sigmoid")


# Every norm takes the recurrent outputs and the (B, T) mask of a padded batch's real steps (None: all
# real). Only batch norm mixes steps of different sequences, so only it reads the mask; layer norm is per
# step, and tasks that pad refuse group norm.


class ChannelNorm(nn.Module):
    """Apply a (B, C, T) normalization (GroupNorm) to (B, T, C) recurrent outputs."""

    def __init__(self, norm: nn.Module) -> None:
        super().__init__()
        self.norm = norm

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.norm(h.transpose(1, 2)).transpose(1, 2)


class StepLayerNorm(nn.LayerNorm):
    """LayerNorm over each step's features (a subclass, so checkpoints keep the keys norm.weight/bias)."""

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return super().forward(h)


class NoNorm(nn.Identity):
    def forward(self, h: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return h


class StepBatchNorm(nn.Module):
    """BatchNorm1d over the real time steps of (B, T, C) recurrent outputs.

    In a padded batch (music: pieces of different lengths) the outputs past a piece's end are not data;
    statistics over all B x T steps would let the amount of padding move the normalization and the
    running statistics that evaluation uses. Given a (B, T) mask, only the real steps count; the padded
    ones pass through unnormalized (the loss never sees them).
    """

    def __init__(self, width: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(width)  # named as in earlier versions: checkpoints keep their keys

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is None:  # every step is real
            return self.norm(h.reshape(-1, h.shape[-1])).reshape(h.shape)
        return h.masked_scatter(mask.unsqueeze(-1), self.norm(h[mask]))


def make_norm(name: str, width: int, num_groups: int) -> nn.Module:
    if name == "batch":
        return StepBatchNorm(width)
    if name == "group":
        return ChannelNorm(nn.GroupNorm(num_groups, width))
    if name == "layer":
        return StepLayerNorm(width)
    return NoNorm()


class ConvFrontend(nn.Module):
    """Conv1d over time with an activation and optional pooling that shortens the sequence."""

    def __init__(self, in_size: int, channels: int, kernel: int, activation: str, pool: str, pool_size: int):
        super().__init__()
        self.conv = nn.Conv1d(in_size, channels, kernel, padding=kernel // 2)
        self.act = ACTIVATIONS[activation]()
        pool_cls = POOLS[pool]
        self.pool = pool_cls(pool_size) if pool_cls else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, F) -> (B, T', C)
        h = self.act(self.conv(x.transpose(1, 2)))  # (B, C, T)
        return self.pool(h).transpose(1, 2)


class SequenceNet(nn.Module):
    def __init__(
        self,
        spec: TaskSpec,
        cell: str = "lstm",
        nonlinearity: str = "tanh",
        hidden_size: int = 64,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        activation: str = "relu",
        readout: str = "last",
        attention_heads: int = 1,
        head_hidden: int | None = None,
        frontend: str = "none",
        conv_channels: int = 32,
        conv_kernel: int = 3,
        pool: str = "none",
        pool_size: int = 2,
        embedding_dim: int = 16,
        norm: str = "none",
        num_groups: int = 1,
        output: str = "identity",
    ) -> None:
        super().__init__()
        self.spec, self.readout, self.output = spec, readout, output
        self.hidden_size, self.bidirectional = hidden_size, bidirectional

        in_size = spec.input_size
        self.embed = nn.Embedding(spec.vocab_size, embedding_dim) if spec.vocab_size else None
        if self.embed is not None:
            in_size = embedding_dim
        self.frontend = None
        if frontend == "conv1d":
            self.frontend = ConvFrontend(in_size, conv_channels, conv_kernel, activation, pool, pool_size)
            in_size = conv_channels

        rnn_options = {"nonlinearity": nonlinearity} if cell == "rnn" else {}
        self.rnn = CELLS[cell](
            in_size,
            hidden_size,
            num_layers=num_layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout if num_layers > 1 else 0.0,  # torch applies it between stacked layers only
            **rnn_options,
        )
        width = hidden_size * (2 if bidirectional else 1)
        self.norm = make_norm(norm, width, num_groups)
        self.attention = None
        if readout == "attention" and not spec.per_step:
            self.query = nn.Parameter(torch.randn(1, 1, width) / width**0.5)
            self.attention = nn.MultiheadAttention(width, attention_heads, batch_first=True)
        head_hidden = hidden_size if head_hidden is None else head_hidden
        self.head_hidden = head_hidden
        if head_hidden == 0:  # a linear read-out, as in Chung et al. 2014: the budget goes to the cell
            self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(width, spec.output_size))
        else:
            self.head = nn.Sequential(
                nn.Dropout(dropout),
                nn.Linear(width, head_hidden),
                ACTIVATIONS[activation](),
                nn.Linear(head_hidden, spec.output_size),
            )

    def encode(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, F) floats or (B, T) symbols -> (B, T', D) normalized recurrent outputs; `mask` (B, T):
        the real steps of a padded batch, for the norm."""
        if self.embed is not None:
            x = self.embed(x)  # (B, T, E)
        if self.frontend is not None:
            x = self.frontend(x)  # (B, T', C)
        h, _ = self.rnn(x)  # (B, T', D)
        return self.norm(h, mask)

    def pool(self, h: torch.Tensor) -> torch.Tensor:
        """(B, T, D) -> (B, D): how a whole sequence becomes one vector."""
        if self.readout == "mean":
            return h.mean(dim=1)
        if self.readout == "max":
            return h.amax(dim=1)
        if self.readout == "attention":
            query = self.query.expand(h.shape[0], -1, -1)  # (B, 1, D)
            return self.attention(query, h, h, need_weights=False)[0].squeeze(1)
        if self.bidirectional:  # forward direction ends at the last step, backward at the first
            return torch.cat([h[:, -1, : self.hidden_size], h[:, 0, self.hidden_size :]], dim=-1)
        return h[:, -1]

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        h = self.encode(x, mask)
        if not self.spec.per_step:
            h = self.pool(h)
        out = self.head(h)  # (B, out) or (B, T, out)
        if self.output == "log_softmax":
            return torch.log_softmax(out, dim=-1)
        if self.output == "sigmoid":
            return torch.sigmoid(out)
        return out


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


def build_network(spec: TaskSpec, param_budget: int | None = None, **options) -> SequenceNet:
    """The `_target_` of the model config: builds the network for a task.

    With a param_budget the hidden size (and if needed the head's width) is chosen to match it
    (seqlab.models.budget) and the given hidden_size is ignored, so any code instantiating a logged model config gets the same net.
    """
    if param_budget is not None:
        from seqlab.models.budget import fit_budget

        options |= fit_budget(param_budget, spec, **options)
    return SequenceNet(spec, **options)
