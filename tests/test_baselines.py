"""The trivial baselines (seqlab/tasks/baselines.py), on hand-made data whose answers are known."""

import math
from collections.abc import Callable
from typing import Any

import lightning as L
import pytest
import torch
from conftest import compose_config

from seqlab.tasks import baselines
from seqlab.train import build


def test_persistence_repeats_each_targets_last_value_over_the_horizon():
    # two windows of 3 steps, 2 features; the outputs continue feature 1 for 2 steps (time-major)
    x = torch.tensor([[[0.0, 1.0], [0.0, 2.0], [0.0, 3.0]], [[0.0, 5.0], [0.0, 5.0], [0.0, 4.0]]])
    y = torch.tensor([[3.0, 5.0], [4.0, 4.0]])  # window 0 misses by 0 then 2; window 1 is exact
    scores = baselines.forecast(x, y, train_y=torch.zeros(4, 2), targets=(1,))
    assert scores["persistence_mse"] == pytest.approx((0 + 4 + 0 + 0) / 4)
    assert scores["persistence_mae"] == pytest.approx((0 + 2 + 0 + 0) / 4)
    assert scores["mean_mse"] == pytest.approx((9 + 25 + 16 + 16) / 4)  # the training mean is 0


def test_seasonal_naive_repeats_the_value_one_season_back():
    season = 4
    wave = torch.tensor([1.0, -1.0, 2.0, 0.5]).repeat(5)  # a pure 4-step season: seasonal naive is exact
    x, y = wave[:12].view(1, 12, 1), wave[12:18].view(1, 6)
    scores = baselines.forecast(x, y, train_y=y, targets=(0,), season=season)
    assert scores["seasonal_naive_mse"] == 0.0
    assert scores["persistence_mse"] > 1.0


def test_mean_and_multiple_targets_keep_the_time_major_order():
    x = torch.zeros(1, 2, 3)
    x[0, -1] = torch.tensor([10.0, 20.0, 30.0])
    y = torch.tensor([[30.0, 10.0, 31.0, 11.0]])  # targets (2, 0), two steps: exact, then off by one each
    scores = baselines.forecast(x, y, train_y=torch.zeros(5, 4), targets=(2, 0))
    assert scores["persistence_mse"] == pytest.approx(0.5)


def test_the_majority_class_and_chance():
    train = torch.tensor([1, 1, 1, 2, 0])
    scores = baselines.classes(torch.tensor([1, 2, 1, 0]), train, n_classes=3)
    assert scores == {"majority_accuracy": 0.5, "chance_accuracy": pytest.approx(1 / 3)}


def test_copy_blanks_count_neither_in_training_nor_in_scoring():
    blank = 0
    train = torch.tensor([[0, 0, 3, 3], [0, 0, 3, 1]])  # mostly blanks; among symbols 3 is the majority
    test = torch.tensor([[0, 0, 3, 2]])
    scores = baselines.classes(test, train, n_classes=9, ignore=blank)  # blank + 8 symbols
    assert scores == {"majority_accuracy": 0.5, "chance_accuracy": 1 / 8}


def test_pairs_majority_and_chance():
    scores = baselines.pairs(torch.tensor([1.0, -1.0, -1.0, -1.0]), torch.tensor([-1.0, -1.0, 1.0]))
    assert scores == {"majority_accuracy": 0.75, "chance_accuracy": 0.5}


def test_note_frequencies_nll_counts_real_steps_only():
    p = torch.tensor([0.5, 0.25])
    y = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])  # the third step is padding
    mask = torch.tensor([[True, True, False]])
    scores = baselines.note_frequencies(p, [{"y": y, "mask": mask}])
    step0 = -(math.log(0.5) + math.log(0.75))
    step1 = -(math.log(0.5) + math.log(0.25))
    assert scores["note_frequencies_nll"] == pytest.approx((step0 + step1) / 2)


# --- each task's baselines score as its metrics score a model: the same examples, masks and units ---------


def scored_like_a_model(overrides: list[str], shape: Callable[[Any, Any], None]) -> tuple[dict, Any]:
    """The task's test metrics of a network whose output `shape(net, task)` fixes to a baseline's, scored by
    Lightning's real test loop, and the task."""
    cfg = compose_config(overrides)
    task, module = build(cfg)
    with torch.no_grad():
        shape(module.net, task)
    trainer = L.Trainer(
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    [scores] = trainer.test(module, datamodule=task, verbose=False)
    return scores, task


def silence_head(net: Any, task: Any) -> None:
    for p in net.head.parameters():
        p.zero_()


def test_persistence_is_what_a_model_repeating_the_last_value_scores():
    # window_norm=last with a silent head forecasts the window's last value: persistence itself
    scores, task = scored_like_a_model(
        ["task=sine", "model.window_norm=last", "task.horizon=3"], silence_head
    )
    expected = task.baselines("test")
    assert scores["test/mse"] == pytest.approx(expected["persistence_mse"], rel=1e-5)
    assert scores["test/mae"] == pytest.approx(expected["persistence_mae"], rel=1e-5)


def test_persistence_in_the_data_units_on_ett(data_cache):
    data_cache("ETTh1.csv")
    overrides = ["task=ett", "model.window_norm=last", "task.features=MS", "task.horizon=4", "task.season=24"]
    scores, task = scored_like_a_model(overrides, silence_head)
    expected = task.baselines("test")
    assert scores["test/mse"] == pytest.approx(expected["persistence_mse"], rel=1e-5)
    assert scores["test/mse_original"] == pytest.approx(expected["persistence_mse_original"], rel=1e-5)
    assert {"seasonal_naive_mse", "mean_mse"} <= set(expected)


def test_the_majority_class_is_what_a_model_always_answering_it_scores():
    def answer_the_majority(net: Any, task: Any) -> None:
        train_y = task.prepare()["train"][torch.arange(len(task.prepare()["train"]))]["y"]
        symbols = train_y[train_y != task.ignored_label]
        silence_head(net, task)
        net.head[-1].bias[torch.bincount(symbols).argmax()] = 10.0

    scores, task = scored_like_a_model(["task=copy", "task.n_train=500"], answer_the_majority)
    assert scores["test/accuracy"] == pytest.approx(task.baselines("test")["majority_accuracy"], rel=1e-6)


def test_note_frequencies_are_what_a_model_emitting_them_scores(data_cache):
    data_cache("JSB_Chorales.mat")

    def emit_the_frequencies(net: Any, task: Any) -> None:
        silence_head(net, task)
        p = task.prepare()["train"].target_frequencies().clamp(1e-7, 1 - 1e-7)
        net.head[-1].bias.copy_(torch.logit(p).float())

    scores, task = scored_like_a_model(["task=music", "model.head_hidden=0"], emit_the_frequencies)
    assert scores["test/nll"] == pytest.approx(task.baselines("test")["note_frequencies_nll"], rel=1e-4)
