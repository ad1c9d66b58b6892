"""Gradient flow through time: exact on a linear recurrence for every task kind, and logged by real runs."""

import csv
import io
import math

import pytest
import torch
from torch import nn
from torchmetrics import MetricCollection

from seqlab import names
from seqlab.diagnostics.gradient_flow import measure, why_not_measured
from seqlab.models import losses, norms
from seqlab.models.module import SequenceModule
from seqlab.models.network import SequenceNet
from seqlab.models.options import NetworkOptions
from seqlab.spec import TaskKind, TaskSpec

T, B = 30, 6


class LinearRecurrence(nn.Module):
    """h_t = w h_{t-1} + U x_t: d h_T / d x_{T-k} = w^k U, so the gradient norm falls as |w|^k exactly."""

    def __init__(self, input_size, hidden_size, num_layers=1, bidirectional=False, dropout=0.0, w=0.8):
        super().__init__()
        self.w = w
        self.input = nn.Linear(input_size, hidden_size, bias=False)

    def forward(self, x):  # (B, T, F) -> (B, T, H)
        u, h, out = self.input(x), torch.zeros(x.shape[0], self.input.out_features), []
        for t in range(x.shape[1]):
            h = self.w * h + u[:, t]
            out.append(h)
        return torch.stack(out, dim=1), h


def linear_model(spec: TaskSpec, loss: losses.Loss, w: float, **options) -> SequenceModule:
    def cell(*args, **kwargs):
        return LinearRecurrence(*args, **kwargs, w=w)

    shape = NetworkOptions(hidden_size=4, head_hidden=0, embedding_dim=3, **options)
    net = SequenceNet(spec, cell, norms.NoNorm, shape, loss.output_layer())
    return SequenceModule(net, loss, torch.optim.SGD, MetricCollection({}))


def _regression():
    spec = TaskSpec(TaskKind.REGRESSION, input_size=2, output_size=1)
    return spec, losses.MSE(), {"x": torch.rand(B, T, 2), "y": torch.rand(B, 1) + 5}


def _per_step_symbols():
    spec = TaskSpec(TaskKind.CLASSIFICATION, input_size=1, output_size=5, vocab_size=7, per_step=True)
    batch = {"x": torch.randint(0, 7, (B, T)), "y": torch.randint(0, 5, (B, T))}
    return spec, losses.CrossEntropy(), batch


LENGTHS = torch.tensor([30, 12, 25, 5, 30, 18])  # padded music: each sequence ends at its own last step


def _padded_multilabel():
    spec = TaskSpec(TaskKind.MULTILABEL, input_size=6, output_size=6, per_step=True)
    mask = torch.arange(T) < LENGTHS.unsqueeze(1)
    x = torch.rand(B, T, 6) * mask.unsqueeze(-1)
    y = (torch.rand(B, T, 6) > 0.5).float() * mask.unsqueeze(-1)
    return spec, losses.BCEWithLogits(), {"x": x, "y": y, "mask": mask}


def _siamese_pairs():
    spec = TaskSpec(TaskKind.SIMILARITY, input_size=1, output_size=4)
    batch = {"x": torch.rand(B, T, 1), "x2": torch.rand(B, T, 1), "y": torch.tensor([1.0, -1] * (B // 2))}
    return (
        spec,
        losses.HingeEmbedding(margin=1e6),
        batch,
    )  # a margin no pair reaches: every pair has a gradient


KINDS = {
    "sequence-level regression": _regression,
    "per-step symbols (embedded)": _per_step_symbols,
    "padded per-step multi-label with a mask": _padded_multilabel,
    "siamese pairs": _siamese_pairs,
}


@pytest.mark.parametrize("w", [0.8, -0.6])
@pytest.mark.parametrize("kind", KINDS)
def test_a_linear_recurrence_falls_as_w_to_the_k_for_every_task_kind(kind, w):
    torch.manual_seed(0)
    spec, loss, batch = KINDS[kind]()
    flow = measure(linear_model(spec, loss, w), batch, fraction=0.01)

    expected = torch.tensor([abs(w) ** k for k in range(T)])
    assert torch.allclose(flow.relative, expected, rtol=1e-3, atol=1e-9), kind
    assert flow.horizon == math.floor(math.log(0.01) / math.log(abs(w)))  # 20 for 0.8, 9 for -0.6
    # how many sequences reach k steps back: all of them, or for the padded batch those at least k+1 long
    lengths = LENGTHS if "mask" in batch else torch.full((B,), T)
    sequences = 2 * B if "x2" in batch else B
    reach = [int((lengths > k).sum()) * sequences // B for k in range(T)]
    assert flow.sequences.tolist() == reach


def test_the_padded_batch_counts_back_from_each_sequences_own_last_step():
    # Not from the padded end: there the gradient is zero (the loss never sees padding), and the curve
    # would start at nothing. Here no sequence fills the padded length.
    torch.manual_seed(0)
    spec, loss, batch = _padded_multilabel()
    lengths = torch.tensor([20, 12, 25, 5, 28, 18])
    batch["mask"] = torch.arange(T) < lengths.unsqueeze(1)
    flow = measure(linear_model(spec, loss, 0.9), batch)
    assert flow.norms[0] > 0 and torch.allclose(flow.relative, 0.9 ** torch.arange(28.0), rtol=1e-3)
    assert flow.sequences.tolist() == [int((lengths > k).sum()) for k in range(28)]


def test_padding_changes_nothing_each_sequence_counts_as_if_measured_alone():
    torch.manual_seed(0)
    spec, loss, batch = _padded_multilabel()
    model = linear_model(spec, loss, 0.9)
    flow = measure(model, batch)
    alone = []
    for b, n in enumerate(LENGTHS.tolist()):
        one = {k: v[b : b + 1, :n] for k, v in batch.items()}
        alone.append(torch.nn.functional.pad(measure(model, one).norms, (0, T - n)))
    expected = torch.stack(alone).sum(0) / torch.tensor([int((k < LENGTHS).sum()) for k in range(T)])
    assert torch.allclose(flow.norms, expected, rtol=1e-4)


def test_the_horizon_is_the_whole_sequence_when_the_norm_never_falls_below_the_fraction():
    spec, loss, batch = _regression()
    flow = measure(linear_model(spec, loss, 1.0), batch, fraction=0.5)
    assert flow.horizon == T - 1


def test_the_curve_is_written_as_csv_with_one_row_per_distance():
    spec, loss, batch = _regression()
    flow = measure(linear_model(spec, loss, 0.5), batch)
    rows = list(csv.DictReader(io.StringIO(flow.to_csv())))
    assert [int(r["steps_back"]) for r in rows] == list(range(T))
    assert float(rows[3]["relative"]) == pytest.approx(0.125, rel=1e-3)


@pytest.mark.parametrize(
    "options,word", [({"bidirectional": True}, "bidirectional"), ({"readout": "mean"}, "readout=mean")]
)
def test_networks_whose_loss_sees_every_step_directly_are_not_measured(options, word):
    spec = TaskSpec(TaskKind.REGRESSION, input_size=2, output_size=1)
    from network_parts import parts

    cell, norm, shape = parts("gru", hidden_size=4, **options)
    net = SequenceNet(spec, cell, norm, shape)
    assert word in (why_not_measured(net) or "")
    with pytest.raises(ValueError, match=word):
        measure(SequenceModule(net, losses.MSE(), torch.optim.SGD, MetricCollection({})), _regression()[2])


def test_measuring_leaves_no_hook_and_the_training_mode_as_it_was():
    spec, loss, batch = _regression()
    model = linear_model(spec, loss, 0.5)
    model.train()
    measure(model, batch)
    assert model.net.training and not model.net.rnn._forward_pre_hooks


# --- real runs: the callback at the fit's end -------------------------------------------------------


@pytest.mark.parametrize("task", ["adding", "copy", "similarity"])
def test_a_run_logs_the_gradient_flow_plot_csv_and_horizon(task, make_cfg, client):
    from seqlab.train import train

    cfg = make_cfg(f"task={task}", "cell=gru", "model.hidden_size=8", f"task.n_val={B * 4}")
    train(cfg)
    (run,) = client.search_runs(
        [client.get_experiment_by_name(cfg.tracking.experiment).experiment_id], max_results=1
    )
    logged = {f.path for f in client.list_artifacts(run.info.run_id, names.PLOT_ARTIFACTS)}
    assert {f"plots/{names.GRADIENT_FLOW_PLOT}", f"plots/{names.GRADIENT_FLOW_CSV}"} <= logged
    horizon = run.data.metrics[names.GRADIENT_HORIZON]
    assert 0 <= horizon < 100 and "measured on" in run.data.tags[names.GRADIENT_FLOW_TAG]


def test_a_run_with_a_pooled_readout_says_why_it_has_no_gradient_flow(make_cfg, client):
    from seqlab.train import train

    cfg = make_cfg("task=adding", "model.readout=mean", "model.hidden_size=8")
    train(cfg)
    (run,) = client.search_runs(
        [client.get_experiment_by_name(cfg.tracking.experiment).experiment_id], max_results=1
    )
    assert run.data.tags[names.GRADIENT_FLOW_TAG].startswith("skipped: model.readout=mean")
    assert names.GRADIENT_HORIZON not in run.data.metrics
    assert names.GRADIENT_FLOW_PLOT not in {
        f.path.split("/")[-1] for f in client.list_artifacts(run.info.run_id, "plots")
    }


def test_music_measures_back_from_each_pieces_last_real_step(make_cfg, client, data_cache):
    data_cache("JSB_Chorales.mat")
    from seqlab.train import train

    cfg = make_cfg("task=music", "cell=gru", "model.hidden_size=8", "callbacks.gradient_flow.n_sequences=8")
    train(cfg)
    (run,) = client.search_runs(
        [client.get_experiment_by_name(cfg.tracking.experiment).experiment_id], max_results=1
    )
    assert names.GRADIENT_HORIZON in run.data.metrics


def test_a_bad_fraction_is_refused_at_start_up(make_cfg):
    from seqlab.config import validate
    from seqlab.errors import ConfigError

    with pytest.raises(ConfigError, match=r"callbacks.gradient_flow.fraction=1.5.*\(0, 1\)"):
        validate(make_cfg("callbacks.gradient_flow.fraction=1.5"))
