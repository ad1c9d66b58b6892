"""The network's building blocks, in plain torch: shapes, readouts, norms, front-end, outputs."""

import copy
import itertools
import subprocess
import sys

import pytest
import torch
from network_parts import CELLS, parts
from torchmetrics import MeanSquaredError, MetricCollection

from seqlab.models import cells, losses, norms
from seqlab.models.module import SequenceModule
from seqlab.models.network import count_parameters
from seqlab.models.options import READOUTS, NetworkOptions
from seqlab.spec import TaskKind, TaskSpec

SEQ = TaskSpec(kind=TaskKind.REGRESSION, input_size=3, output_size=2)
STEP = TaskSpec(kind=TaskKind.CLASSIFICATION, input_size=1, output_size=5, vocab_size=7, per_step=True)


def SequenceNet(spec, output_layer=None, **options):  # noqa: N802
    """The network as the configs build it, with cells and norms picked by their option names."""
    from seqlab.models.network import SequenceNet as Net

    cell, norm, shape = parts(**options)
    return Net(spec, cell, norm, shape, output_layer)


@pytest.mark.parametrize(
    "cell,readout,bidirectional,norm",
    list(itertools.product(CELLS, READOUTS, [False, True], ["none", "batch", "layer", "group"])),
)
def test_sequence_to_vector_shapes(cell, readout, bidirectional, norm):
    net = SequenceNet(
        SEQ,
        cell=cell,
        hidden_size=8,
        num_layers=2,
        dropout=0.1,
        readout=readout,
        attention_heads=2,
        bidirectional=bidirectional,
        norm=norm,
        num_groups=2,
    )
    out = net(torch.randn(4, 11, 3))
    assert out.shape == (4, 2)
    out.sum().backward()
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)


def test_bidirectional_last_readout_uses_each_direction_where_it_ends():
    net = SequenceNet(SEQ, cell="gru", hidden_size=4, bidirectional=True).eval()
    x = torch.randn(2, 9, 3)
    h = net.encode(x)
    pooled = net.pool(h)
    assert torch.equal(pooled[:, :4], h[:, -1, :4])  # forward direction: last step
    assert torch.equal(pooled[:, 4:], h[:, 0, 4:])  # backward direction: first step


@pytest.mark.parametrize("pool", ["none", "max", "avg"])
def test_conv_frontend_downsamples_time(pool):
    net = SequenceNet(
        SEQ, frontend="conv1d", conv_channels=6, conv_kernel=3, pool=pool, pool_size=2, hidden_size=8
    )
    x = torch.randn(2, 10, 3)
    steps = net.frontend(x).shape[1]
    assert steps == (10 if pool == "none" else 5)
    assert net(x).shape == (2, 2)


def test_symbols_go_through_an_embedding_and_per_step_tasks_predict_every_step():
    net = SequenceNet(STEP, hidden_size=8, embedding_dim=4)
    assert isinstance(net.embed, torch.nn.Embedding) and net.embed.num_embeddings == 7
    out = net(torch.randint(0, 7, (3, 12)))
    assert out.shape == (3, 12, 5)


def test_output_matches_what_the_loss_expects():
    x = torch.randn(2, 5, 3)
    spec = TaskSpec(kind=TaskKind.CLASSIFICATION, input_size=3, output_size=4)
    log_probs = SequenceNet(spec, output_layer=losses.NLL.output_layer())(x)
    assert torch.allclose(log_probs.exp().sum(-1), torch.ones(2))
    multi = TaskSpec(kind=TaskKind.MULTILABEL, input_size=3, output_size=4)
    torch.manual_seed(0)
    probs = SequenceNet(multi, output_layer=losses.BCE.output_layer())(x)
    assert ((probs > 0) & (probs < 1)).all()
    torch.manual_seed(0)
    logits = SequenceNet(multi, output_layer=losses.BCEWithLogits.output_layer())(x)
    assert torch.allclose(torch.sigmoid(logits), probs)
    # what a likelihood metric reads: logits either way
    assert torch.allclose(losses.BCE().logits(probs), logits, atol=1e-4)


def test_loss_align_flattens_steps_and_drops_padding():
    loss = losses.CrossEntropy()
    out, y = torch.randn(2, 4, 5), torch.randint(0, 5, (2, 4))
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]], dtype=torch.bool)
    flat_out, flat_y = loss.align(out, y, mask)
    assert flat_out.shape == (5, 5) and flat_y.shape == (5,)
    assert torch.equal(flat_y, y[mask])


def test_rnn_nonlinearity_reaches_torch():
    assert SequenceNet(SEQ, cell="rnn", nonlinearity="relu").rnn.nonlinearity == "relu"


def test_count_parameters_counts_trainable_only():
    net = SequenceNet(SEQ, hidden_size=8)
    total = count_parameters(net)
    net.head[-1].weight.requires_grad_(False)
    assert count_parameters(net) == total - net.head[-1].weight.numel()


def test_head_hidden_zero_is_a_linear_read_out_and_the_budget_goes_to_the_cell():
    from seqlab.models.budget import fit_budget

    spec = TaskSpec(kind=TaskKind.REGRESSION, input_size=88, output_size=88, per_step=True)
    linear = SequenceNet(spec, cell="rnn", hidden_size=100, head_hidden=0)
    # Chung et al. 2014's tanh-RNN: 88 inputs, 100 units, 88 outputs straight from the state
    assert count_parameters(linear) == 88 * 100 + 100 * 100 + 2 * 100 + 100 * 88 + 88
    assert [type(m).__name__ for m in linear.head] == ["Dropout", "Linear"]
    mlp = SequenceNet(spec, cell="rnn", hidden_size=100)
    assert count_parameters(mlp) == count_parameters(linear) + 100 * 100 + 100
    sizes = {
        head: fit_budget(20000, spec, cells.RNN, norms.NoNorm, NetworkOptions(head_hidden=head)).hidden_size
        for head in (0, None)
    }
    assert sizes[0] > sizes[None]  # without the hidden layer, more of the budget is the recurrent state


@pytest.mark.parametrize(
    "norm,looks_ahead", [("none", False), ("layer", False), ("batch", False), ("group", True)]
)
def test_which_norms_let_a_step_see_later_steps(norm, looks_ahead):
    """Why causal tasks refuse norm=group: its statistics span the whole sequence, so an earlier step's
    output moves when a later input does (batch norm evaluates with running statistics, layer norm per
    step)."""
    torch.manual_seed(0)
    net = SequenceNet(STEP, cell="gru", hidden_size=8, norm=norm, num_groups=2).eval()
    x = torch.randint(0, 7, (1, 20))
    later = x.clone()
    later[0, 15] = (later[0, 15] + 1) % 7
    with torch.no_grad():
        moved = (net(x)[0, :10] - net(later)[0, :10]).abs().max().item()
    assert (moved > 1e-6) == looks_ahead


MUSIC = TaskSpec(kind=TaskKind.MULTILABEL, input_size=6, output_size=6, per_step=True)


def padded(pieces: list[torch.Tensor], steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A music-style batch: pieces zero-padded to `steps`, and the (B, T) mask of their real steps."""
    x = torch.zeros(len(pieces), steps, pieces[0].shape[-1])
    mask = torch.zeros(len(pieces), steps, dtype=torch.bool)
    for i, piece in enumerate(pieces):
        x[i, : len(piece)], mask[i, : len(piece)] = piece, True
    return x, mask


def test_batch_norm_takes_its_statistics_over_the_real_steps_of_a_padded_batch():
    """How much a batch is padded must not move a real step's output or the running statistics: without the
    mask, BatchNorm's mean and variance (and so every output) shift with the padded steps' outputs."""
    torch.manual_seed(0)
    pieces = [torch.rand(5, 6), torch.rand(12, 6)]
    fresh = SequenceNet(MUSIC, cell="gru", hidden_size=8, norm="batch", head_hidden=0)
    runs = {}
    for steps in (12, 30):
        net = copy.deepcopy(fresh)
        x, mask = padded(pieces, steps)
        runs[steps] = (net(x, mask)[mask], net.norm.norm.running_mean, net.norm.norm.running_var)
    for short, long in zip(runs[12], runs[30], strict=False):
        assert torch.allclose(short, long, atol=1e-6)

    # and the statistics are exactly those of the real steps: BatchNorm1d over h[mask]
    net = SequenceNet(MUSIC, cell="gru", hidden_size=8, norm="batch")
    x, mask = padded(pieces, 30)
    h, _ = net.rnn(x)
    reference = torch.nn.BatchNorm1d(8)
    encoded = net.encode(x, mask)
    assert torch.allclose(encoded[mask], reference(h[mask].detach()), atol=1e-5)
    assert torch.allclose(net.norm.norm.running_var, reference.running_var, atol=1e-6)
    assert torch.equal(encoded[~mask], h[~mask])  # padded steps pass through, unnormalized
    # the keys of checkpoints written before the mask existed (BatchNorm1d as `norm.norm`) still load
    assert {"norm.norm.weight", "norm.norm.running_mean", "norm.norm.running_var"} <= set(net.state_dict())


def test_batch_norm_without_a_mask_normalizes_every_step_and_evaluates_per_step():
    """No mask means every step is real (fixed-length tasks); at evaluation the running statistics make the
    masked and unmasked outputs of real steps the same, so served models and reports need no mask."""
    torch.manual_seed(0)
    net = SequenceNet(MUSIC, cell="lstm", hidden_size=8, norm="batch")
    x, mask = padded([torch.rand(7, 6), torch.rand(9, 6)], 9)
    h = net.encode(x)
    flat = h.reshape(-1, 8)
    assert torch.allclose(flat.mean(0), torch.zeros(8), atol=1e-5)  # normalized over all B x T steps
    net(x, mask)  # running statistics move
    net.eval()
    with torch.no_grad():
        assert torch.equal(net(x, mask)[mask], net(x)[mask])


def test_the_lightning_module_hands_the_batch_mask_to_the_network():
    """What training and evaluation see (SequenceModule._outputs): the padded steps neither reach the loss
    nor, through batch norm, the real steps' outputs."""
    torch.manual_seed(0)
    pieces = [torch.rand(4, 6), torch.rand(10, 6)]
    fresh = SequenceModule(
        SequenceNet(MUSIC, cell="lstm", hidden_size=8, norm="batch"),
        losses.BCEWithLogits(),
        optimizer=torch.optim.Adam,
        metrics=MetricCollection([MeanSquaredError()]),
    )
    outputs = []
    for steps in (10, 25):
        x, mask = padded(pieces, steps)
        outputs.append(copy.deepcopy(fresh)._outputs({"x": x, "y": (x > 0.5).float(), "mask": mask}))
    assert outputs[0][0].shape == (14, 6)
    assert torch.allclose(outputs[0][0], outputs[1][0], atol=1e-6) and torch.equal(
        outputs[0][1], outputs[1][1]
    )


BATCH_NORM_KEYS = {
    f"norm.norm.{k}" for k in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
}


@pytest.mark.parametrize(
    "norm,keys", [("none", set()), ("layer", {"norm.weight", "norm.bias"}), ("batch", BATCH_NORM_KEYS)]
)
def test_every_norm_takes_the_mask_and_keeps_its_checkpoint_keys(norm, keys):
    # encode hands the mask to whichever norm there is; only batch norm reads it, and in evaluation every
    # norm's real steps come out the same with or without it. Keys as before the mask, so old checkpoints
    # load.
    net = SequenceNet(MUSIC, cell="gru", hidden_size=8, norm=norm).eval()
    x = torch.rand(2, 6, 6)
    mask = torch.tensor([[True] * 6, [True] * 3 + [False] * 3])
    assert torch.equal(net(x, mask)[mask], net(x)[mask])
    assert {k for k in net.state_dict() if k.startswith("norm.")} == keys


def test_the_network_module_imports_torch_only():
    """seqlab.models.network is pure torch.nn: served models and other code load it without Lightning,
    Hydra, torchmetrics or MLflow."""
    code = (
        "import sys, seqlab.models.network, seqlab.models.cells, seqlab.models.norms; "
        "print(sorted(m for m in "
        "('lightning', 'hydra', 'omegaconf', 'torchmetrics', 'mlflow', 'seqlab.config') "
        "if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "[]"


def test_tasks_import_neither_hydra_nor_the_config():
    code = (
        "import sys, seqlab.tasks.synthetic, seqlab.tasks.ett, seqlab.tasks.music, seqlab.tasks.csvfile; "
        "print(sorted(m for m in ('hydra', 'omegaconf', 'seqlab.config', 'mlflow') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "[]"


def test_a_likelihood_metric_scores_the_same_whatever_the_network_emits():
    """bce trains a network ending in a sigmoid, bce_with_logits one emitting logits: the music NLL must be
    the same number for the same predictions, computed as the papers do, and building a module must leave
    the task's metric objects as the task made them (the module once switched their from_logits)."""
    from seqlab.tasks.music import BernoulliNLL

    metrics = MetricCollection({"nll": BernoulliNLL()})
    given = {k: v for k, v in vars(metrics["nll"]).items() if isinstance(v, bool | int | float | str)}
    torch.manual_seed(0)
    x, mask = padded([torch.rand(5, 6), torch.rand(9, 6)], 9)
    y = (torch.rand(x.shape) > 0.7).float()
    scores = {}
    for loss in (losses.BCE(), losses.BCEWithLogits()):
        torch.manual_seed(1)  # the same weights: the two networks differ in their output layer only
        net = SequenceNet(MUSIC, cell="gru", hidden_size=8, output_layer=loss.output_layer())
        module = SequenceModule(net, loss, optimizer=torch.optim.Adam, metrics=metrics)
        module._step("val", {"x": x, "y": y, "mask": mask}, module.val_metrics)
        scores[type(loss).__name__] = float(module.val_metrics.compute()["val/nll"])
    assert {k: v for k, v in vars(metrics["nll"]).items() if isinstance(v, bool | int | float | str)} == given
    torch.manual_seed(1)
    p = torch.sigmoid(SequenceNet(MUSIC, cell="gru", hidden_size=8)(x))[mask]  # (steps, 88)
    expected = float(-(y[mask] * p.log() + (1 - y[mask]) * (1 - p).log()).sum() / mask.sum())
    assert scores["BCE"] == pytest.approx(expected, rel=1e-4)
    assert scores["BCEWithLogits"] == pytest.approx(expected, rel=1e-5)
