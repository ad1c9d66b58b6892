"""The synthetic tasks: their data means what their docstrings say, and each trains in the real pipeline."""

import pytest
import torch
from conftest import compose_config, runs_of

from seqlab import names
from seqlab.config import validate
from seqlab.errors import ConfigError
from seqlab.tasks.digits import DigitsTask
from seqlab.tasks.synthetic import BLANK, CopyTask, MackeyGlassTask, SimilarityTask, mackey_glass
from seqlab.tasks.windows import WindowSplit
from seqlab.train import train

SMALL = {
    "copy": ["task.delay=5", "task.n_train=256", "task.n_val=64", "task.n_test=64"],
    "mackey_glass": ["task.n_train=400", "task.n_val=150", "task.n_test=150", "task.window=20"],
    "similarity": ["task.n_train=256", "task.n_val=64", "task.n_test=64", "task.length=20"],
    "digits": [],
}
METRIC = {"copy": "accuracy", "mackey_glass": "mse", "similarity": "accuracy", "digits": "accuracy"}


@pytest.mark.parametrize("task", ["copy", "mackey_glass", "similarity", "digits", "digits-pixelwise"])
def test_each_synthetic_task_trains_and_logs_its_metrics(task, make_cfg, client):
    name, *variant = task.split("-")
    overrides = SMALL[name] + (["task.pixelwise=true"] if variant else [])
    cfg = make_cfg(f"task={name}", "model.hidden_size=16", *overrides)
    train(cfg)
    [run] = runs_of(client, cfg.tracking.experiment)
    assert run.info.status == "FINISHED"
    metrics, params = run.data.metrics, run.data.params
    for key in (names.VAL_LOSS, names.TEST_LOSS, f"val/{METRIC[name]}", f"test/{METRIC[name]}"):
        assert key in metrics, f"{key} not logged: {sorted(metrics)}"
    assert int(params[names.N_TRAIN]) > 0 and int(params[names.N_VAL]) > 0 and int(params[names.N_TEST]) > 0


def test_copy_targets_repeat_the_symbols_after_the_delay():
    task = CopyTask(delay=7, n_symbols=3, alphabet=4, n_train=50, n_val=5, n_test=5)
    batch = task.build()["train"][torch.arange(50)]
    x, y = batch["x"], batch["y"]
    assert x.shape == y.shape == (50, 3 + 7 + 1 + 3)
    assert torch.equal(y[:, -3:], x[:, :3])  # recall the symbols
    assert (y[:, :-3] == BLANK).all()
    assert (x[:, 3 + 7] == 5).all() and (x[:, 3:10] == BLANK).all()  # blanks, then the marker
    assert x[:, :3].min() >= 1 and x[:, :3].max() <= 4
    spec = task.spec()
    assert spec.per_step and spec.vocab_size == 6 and spec.output_size == 5


def test_copy_accuracy_counts_recalled_symbols_only():
    task = CopyTask(delay=4, n_symbols=2, alphabet=4, n_train=10, n_val=1, n_test=1)
    y = torch.tensor([[0, 0, 0, 0, 0, 0, 0, 3, 1]])
    always_blank = torch.nn.functional.one_hot(torch.zeros_like(y), 5).float()  # right on 7 of 9 steps
    metric = task.metrics()["accuracy"]
    metric.update(always_blank.reshape(-1, 5), y.reshape(-1))
    assert metric.compute() == 0.0


def test_windows_are_the_rows_they_claim():
    series = torch.arange(100, dtype=torch.float32).reshape(50, 2)
    split = WindowSplit(series, series[:, :1], start=10, stop=40, window=5, horizon=3)
    assert len(split) == 30 - 5 - 3 + 1
    batch = split[torch.tensor([0, 22])]
    assert torch.equal(batch["x"][0], series[10:15]) and torch.equal(batch["x"][1], series[32:37])
    assert torch.equal(batch["y"][1], series[37:40, 0])  # the last window ends on row stop - 1


def test_mackey_glass_series_is_chaotic_and_windows_cover_each_split():
    series = mackey_glass(2000)
    assert 0.2 < series.min() < 0.6 and 1.1 < series.max() < 1.5  # the attractor's known range for tau=17
    assert not torch.allclose(series[500:600], series[1500:1600], atol=0.05)  # not periodic
    task = MackeyGlassTask(window=30, horizon=2, n_train=500, n_val=200, n_test=200)
    splits = task.build()
    assert len(splits["train"]) == 500 - 30 - 2 + 1
    assert len(splits["val"]) == len(splits["test"]) == 200 - 2 + 1  # windows start in the previous split
    train_targets = splits["train"][torch.arange(len(splits["train"]))]["y"]
    assert abs(float(train_targets.mean())) < 0.1  # z-scored with the training rows


def test_similarity_pairs_are_balanced_and_labelled_by_class():
    task = SimilarityTask(length=30, n_train=2000, n_val=10, n_test=10, noise=0.0)
    split = task.build()["train"]
    batch = split[torch.arange(2000)]
    assert batch["x"].shape == batch["x2"].shape == (2000, 30, 1)
    assert set(batch["y"].unique().tolist()) == {-1.0, 1.0}
    assert 0.45 < float((batch["y"] > 0).float().mean()) < 0.55
    metric = task.metrics()["accuracy"]
    metric.update(torch.tensor([0.1, 0.9, 0.1, 0.9]), torch.tensor([1.0, -1.0, -1.0, 1.0]))
    assert metric.compute() == 0.5


def test_digits_splits_are_fixed_disjoint_and_cover_the_set():
    rows, pixels = DigitsTask(seed=0).build(), DigitsTask(pixelwise=True, seed=3).build()
    sizes = {s: len(split) for s, split in rows.items()}
    assert sum(sizes.values()) == 1797 and sizes["test"] == sizes["val"] == 270
    first = rows["test"][torch.arange(3)]["x"]
    assert first.shape == (3, 8, 8)
    assert torch.equal(pixels["test"][torch.arange(3)]["x"], first.reshape(3, 64, 1))  # same split, any seed


@pytest.mark.parametrize(
    "overrides, match",
    [
        (["task=copy", "task.delay=-1"], "task.delay=-1"),
        (["task=digits", "task.val_fraction=0.6", "task.test_fraction=0.5"], "task.val_fraction=0.6"),
        (["task=copy", "loss=mse"], "loss=mse does not fit task=copy"),
        (["task=similarity", "loss=cross_entropy"], "hinge_embedding"),
    ],
)
def test_bad_synthetic_options_are_refused_by_validate(overrides, match):
    with pytest.raises(ConfigError, match=match):
        validate(compose_config(overrides))
