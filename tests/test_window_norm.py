"""model.window_norm: each forecast made relative to its own input window (seqlab/models/window_norm.py)."""

import math

import pytest
import torch
from network_parts import parts

from seqlab.errors import ConfigError
from seqlab.models.network import SequenceNet, count_parameters
from seqlab.spec import TaskKind, TaskSpec
from seqlab.tasks.windows import forecast_splits, zscore

UNIVARIATE = TaskSpec(kind=TaskKind.REGRESSION, input_size=1, output_size=3, target_inputs=(0,))
# three inputs, the outputs continue the third then the first, two steps ahead: (B, 2 * 2) time-major
MULTI = TaskSpec(kind=TaskKind.REGRESSION, input_size=3, output_size=4, target_inputs=(2, 0))


def net(spec: TaskSpec, window_norm: str, **options) -> SequenceNet:
    torch.manual_seed(0)
    options = {"hidden_size": 8} | options
    return SequenceNet(spec, *parts(cell="gru", window_norm=window_norm, **options))


def silenced(model: SequenceNet) -> SequenceNet:
    """The head emits zeros, so what comes out is what the window normalization adds back."""
    with torch.no_grad():
        for p in model.head.parameters():
            p.zero_()
    return model


def test_last_adds_back_each_targets_last_value():
    x = torch.randn(5, 7, 3)
    out = silenced(net(MULTI, "last"))(x).view(5, 2, 2)  # (B, horizon, targets)
    expected = x[:, -1, [2, 0]].unsqueeze(1).expand(5, 2, 2)
    assert torch.allclose(out, expected)


def test_revin_maps_a_zero_forecast_back_to_each_windows_mean():
    x = 10 + 3 * torch.randn(5, 7, 3)
    out = silenced(net(MULTI, "revin"))(x).view(5, 2, 2)
    assert torch.allclose(out, x.mean(dim=1)[:, [2, 0]].unsqueeze(1).expand(5, 2, 2), atol=1e-4)


def test_revin_is_invariant_to_each_windows_level_and_scale():
    model = net(UNIVARIATE, "revin").eval()
    x = torch.randn(4, 9, 1)
    with torch.no_grad():
        assert torch.allclose(model(5 + 2 * x), 5 + 2 * model(x), atol=1e-4)


def test_revin_parameters_count_toward_the_budget():
    plain, revin = net(UNIVARIATE, "none"), net(UNIVARIATE, "revin")
    assert count_parameters(revin) == count_parameters(plain) + 2 * UNIVARIATE.input_size


@pytest.mark.parametrize(
    "spec",
    [
        TaskSpec(kind=TaskKind.REGRESSION, input_size=2, output_size=1),  # adding: not a forecast
        TaskSpec(kind=TaskKind.MULTILABEL, input_size=88, output_size=88, per_step=True),
    ],
)
def test_a_task_whose_outputs_do_not_continue_its_inputs_is_refused(spec):
    with pytest.raises(ConfigError, match=r"model\.window_norm needs a forecasting task"):
        net(spec, "last")
    net(spec, "none")  # the default works everywhere


def trending_series(n: int = 1200) -> torch.Tensor:
    """A CO2-like series: a trend, a 12-step season and noise; its test rows lie above every training row."""
    t = torch.arange(n, dtype=torch.float32)
    noise = 0.2 * torch.randn(n, generator=torch.Generator().manual_seed(0))
    return (0.02 * t + torch.sin(2 * math.pi * t / 12) + noise).unsqueeze(-1)


def test_on_a_trending_series_window_norm_beats_persistence_where_none_does_not():
    """Scaled with the training rows' statistics, as seqlab's forecasting tasks are, a network without window
    normalization meets test levels it never saw and loses to repeating the last value; revin does not."""
    series, _, _ = zscore(trending_series(), slice(0, 800))
    splits = forecast_splits(series, series, 800, 1000, 1200, 24, 1)
    test = splits["test"][torch.arange(len(splits["test"]))]
    persistence = float(((test["x"][:, -1, :] - test["y"]) ** 2).mean())
    spec = TaskSpec(kind=TaskKind.REGRESSION, input_size=1, output_size=1, target_inputs=(0,))
    scores = {}
    for window_norm in ("none", "last", "revin"):
        model = net(spec, window_norm, hidden_size=16)
        optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
        batches = torch.Generator().manual_seed(1)
        for _ in range(300):
            batch = splits["train"][torch.randint(0, len(splits["train"]), (64,), generator=batches)]
            loss = ((model(batch["x"]) - batch["y"]) ** 2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            scores[window_norm] = float(((model(test["x"]) - test["y"]) ** 2).mean())
    assert scores["none"] > 5 * persistence, scores
    assert scores["revin"] < persistence, scores
    assert scores["last"] < scores["none"] / 5, scores
