"""Window normalization: forecast each input window relative to itself (model.window_norm).

A network trained on globally scaled values of a trending series meets test windows at levels it never saw
in training, and a trivial forecast (repeat the last value) beats it. The standard remedy normalizes each
input window by its own statistics and maps the forecast back: `last` subtracts the window's last value
(a forecast of changes), `revin` divides by the window's own mean and standard deviation with a learned
affine map (Kim et al. 2022, "Reversible Instance Normalization"). Both need a forecasting task whose
outputs continue input features (TaskSpec.target_inputs).
"""

import torch
from torch import nn

from seqlab.errors import ConfigError
from seqlab.spec import TaskSpec

EPS = 1e-5  # keeps a constant window's standard deviation away from zero


class NoWindowNorm(nn.Module):
    """Inputs and outputs as they are."""

    def __init__(self, spec: TaskSpec) -> None:
        super().__init__()

    def normalize(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        return x, ()

    def denormalize(self, out: torch.Tensor, stats: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return out


class _WindowNorm(nn.Module):
    targets: torch.Tensor  # (n,) the input features the outputs continue

    def __init__(self, spec: TaskSpec) -> None:
        super().__init__()
        targets = spec.target_inputs
        if not targets or spec.per_step or spec.vocab_size:
            raise ConfigError(
                "model.window_norm needs a forecasting task whose outputs continue its input features "
                "(sine, mackey_glass, ett, csv with the target among the inputs); this task's outputs are "
                "not future values of its inputs. Use model.window_norm=none."
            )
        self.register_buffer("targets", torch.tensor(list(targets)), persistent=False)
        self.n_targets = len(targets)

    def _per_target(self, out: torch.Tensor) -> torch.Tensor:
        return out.view(out.shape[0], -1, self.n_targets)  # (B, horizon * n) -> (B, horizon, n)


class LastValue(_WindowNorm):
    """Forecast changes from the window's last value: x - x_T in, out + x_T back."""

    def normalize(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        last = x[:, -1:, :]  # (B, 1, F)
        return x - last, (last.index_select(-1, self.targets),)  # (B, 1, n)

    def denormalize(self, out: torch.Tensor, stats: tuple[torch.Tensor, ...]) -> torch.Tensor:
        (last,) = stats
        return (self._per_target(out) + last).flatten(1)


class RevIN(_WindowNorm):
    """Each window scaled by its own mean and standard deviation per feature, then a learned affine map;
    the forecast goes back through the inverse of both (Kim et al. 2022)."""

    def __init__(self, spec: TaskSpec) -> None:
        super().__init__(spec)
        self.weight = nn.Parameter(torch.ones(spec.input_size))
        self.bias = nn.Parameter(torch.zeros(spec.input_size))

    def normalize(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        mean = x.mean(dim=1, keepdim=True)  # (B, 1, F)
        std = (x.var(dim=1, keepdim=True, unbiased=False) + EPS).sqrt()
        return (x - mean) / std * self.weight + self.bias, (mean, std)

    def denormalize(self, out: torch.Tensor, stats: tuple[torch.Tensor, ...]) -> torch.Tensor:
        mean, std = (s.index_select(-1, self.targets) for s in stats)  # (B, 1, n)
        weight, bias = self.weight[self.targets], self.bias[self.targets]
        scaled = (self._per_target(out) - bias) / (weight + EPS)
        return (scaled * std + mean).flatten(1)
