"""The recurrent network: (embedding | conv front-end) -> cell -> norm -> readout -> head -> output layer.

Pure torch.nn, no Lightning, no Hydra: the same module is trained by seqlab and served from MLflow. The cell
and the norm are passed in as factories (conf/cell, conf/norm), the output layer by the loss.
"""

from collections.abc import Callable

import torch
from torch import nn

from seqlab.models import window_norm
from seqlab.models.options import ACTIVATIONS, POOLS, WINDOW_NORMS, NetworkOptions
from seqlab.spec import TaskSpec

CellFactory = Callable[..., nn.Module]  # (input_size, hidden_size, num_layers=, bidirectional=, dropout=)
NormFactory = Callable[[int], nn.Module]  # (width); forward(h, mask)


def _activation(name: str) -> nn.Module:
    return getattr(nn, ACTIVATIONS[name])()


class ConvFrontend(nn.Module):
    """Conv1d over time with an activation and optional pooling that shortens the sequence."""

    def __init__(self, in_size: int, channels: int, kernel: int, activation: str, pool: str, pool_size: int):
        super().__init__()
        self.conv = nn.Conv1d(in_size, channels, kernel, padding=kernel // 2)
        self.act = _activation(activation)
        pool_layer = POOLS[pool]
        self.pool = getattr(nn, pool_layer)(pool_size) if pool_layer else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, F) -> (B, T', C)
        h = self.act(self.conv(x.transpose(1, 2)))  # (B, C, T)
        return self.pool(h).transpose(1, 2)


class SequenceNet(nn.Module):
    def __init__(
        self,
        spec: TaskSpec,
        cell: CellFactory,
        norm: NormFactory,
        options: NetworkOptions | None = None,
        output_layer: nn.Module | None = None,
    ) -> None:
        super().__init__()
        options = options or NetworkOptions()
        self.spec, self.options, self.readout = spec, options, options.readout
        self.hidden_size, self.bidirectional = options.hidden_size, options.bidirectional

        in_size = spec.input_size
        self.window_norm = getattr(window_norm, WINDOW_NORMS[options.window_norm])(spec)
        self.embed = nn.Embedding(spec.vocab_size, options.embedding_dim) if spec.vocab_size else None
        if self.embed is not None:
            in_size = options.embedding_dim
        self.frontend = None
        if options.frontend == "conv1d":
            self.frontend = ConvFrontend(
                in_size,
                options.conv_channels,
                options.conv_kernel,
                options.activation,
                options.pool,
                options.pool_size,
            )
            in_size = options.conv_channels

        self.rnn = cell(
            in_size,
            options.hidden_size,
            num_layers=options.num_layers,
            bidirectional=options.bidirectional,
            dropout=options.dropout,
        )
        width = options.width
        self.norm = norm(width)
        self.attention = None
        if options.readout == "attention" and not spec.per_step:
            self.query = nn.Parameter(torch.randn(1, 1, width) / width**0.5)
            self.attention = nn.MultiheadAttention(width, options.attention_heads, batch_first=True)
        head_hidden = options.hidden_size if options.head_hidden is None else options.head_hidden
        self.head_hidden = head_hidden
        if head_hidden == 0:  # a linear read-out, as in Chung et al. 2014: the budget goes to the cell
            self.head = nn.Sequential(nn.Dropout(options.dropout), nn.Linear(width, spec.output_size))
        else:
            self.head = nn.Sequential(
                nn.Dropout(options.dropout),
                nn.Linear(width, head_hidden),
                _activation(options.activation),
                nn.Linear(head_hidden, spec.output_size),
            )
        # what the loss needs the network to emit (log-probabilities, probabilities, or the raw scores)
        self.output_layer = output_layer if output_layer is not None else nn.Identity()

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
            assert self.attention is not None  # built in __init__ whenever readout is "attention"
            query = self.query.expand(h.shape[0], -1, -1)  # (B, 1, D)
            return self.attention(query, h, h, need_weights=False)[0].squeeze(1)
        if self.bidirectional:  # forward direction ends at the last step, backward at the first
            return torch.cat([h[:, -1, : self.hidden_size], h[:, 0, self.hidden_size :]], dim=-1)
        return h[:, -1]

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x, stats = self.window_norm.normalize(x)  # each window relative to itself (model.window_norm)
        h = self.encode(x, mask)
        if not self.spec.per_step:
            h = self.pool(h)
        out = self.window_norm.denormalize(self.head(h), stats)
        return self.output_layer(out)  # (B, out) or (B, T, out)


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters() if p.requires_grad)
