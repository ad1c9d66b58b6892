"""The trivial baselines (seqlab/tasks/baselines.py), on hand-made data whose answers are known."""

import math

import pytest
import torch

from seqlab.tasks import baselines


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
