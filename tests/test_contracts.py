"""Every option of every config group composes, validates and trains a few batches, without MLflow.

The options are the YAML files found in conf/ when the tests are collected, so a new cell, norm, loss,
task, optimizer, scheduler or experiment preset is covered the day its file is added, with no test edit.
"""

import importlib
import math
from pathlib import Path

import lightning as L
import pytest
import torch
from conftest import compose_config
from omegaconf import DictConfig, open_dict

from seqlab import names
from seqlab.config import validate
from seqlab.errors import ConfigError, DataError
from seqlab.tasks.download import FILES
from seqlab.train import build

CONF = Path(importlib.import_module("seqlab.conf").__file__).parent  # what Hydra composes from


def options(group: str) -> list[str]:
    return sorted(path.stem for path in (CONF / group).glob("*.yaml"))


TASKS = options("task")

# Small enough for a few batches in a second or two; set only where the task has the option.
SMALL_TASK = {"n_train": 64, "n_val": 32, "n_test": 32, "batch_size": 16}
SMALL_MODEL = {"hidden_size": 8}


def write_series(path: Path, rows: int = 120) -> Path:
    lines = ["time,load,temp"] + [f"{i},{math.sin(i / 5):.4f},{math.cos(i / 7):.4f}" for i in range(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def compose_case(overrides: list[str], tmp_path: Path) -> DictConfig:
    """The config `seqlab <overrides>` composes; a task reading the user's file (task.path) gets a CSV."""
    cfg = compose_config(overrides)
    if cfg.task.get("path", "") is None:
        csv = write_series(tmp_path / "series.csv")
        cfg = compose_config([*overrides, f"task.path={csv}", "task.target=load"])
    return cfg


def fitting_task(overrides: list[str], tmp_path: Path) -> DictConfig:
    """The config with the default task if it validates, else with the first conf/task option that does."""
    refusals = []
    for task in [None, *TASKS]:
        cfg = compose_case([*overrides, *([f"task={task}"] if task else [])], tmp_path)
        try:
            validate(cfg)
        except ConfigError as refused:
            refusals.append(f"task={task or 'default'}: {refused}")
            continue
        return cfg
    raise AssertionError(f"{' '.join(overrides)} fits no task in conf/task:\n" + "\n".join(refusals))


def shrink(cfg: DictConfig) -> DictConfig:
    """Fewer samples and a narrower model where the config allows it; a parameter budget is kept."""
    with open_dict(cfg):
        for key, value in SMALL_TASK.items():
            if key in cfg.task:
                cfg.task[key] = value
        if cfg.model.param_budget is None:
            cfg.model.update(SMALL_MODEL)
    validate(cfg)  # what is trained is valid too
    return cfg


def build_with_data(cfg: DictConfig, data_cache):
    """build(cfg) reading data only from the seeded cache: a file missing there skips, or fails under CI."""
    cache = data_cache()
    try:
        return build(cfg)
    except DataError as error:
        missing = [name for name in FILES if name in str(error) and not (cache / name).exists()]
        if not missing:
            raise
        data_cache(*missing)
        raise


def train_a_few_batches(cfg: DictConfig, data_cache, tmp_path: Path) -> None:
    """Two training steps, one validation and one test batch: every loss finite, and the weights moved."""
    task, module = build_with_data(cfg, data_cache)
    before = [p.detach().clone() for p in module.parameters()]
    trainer = L.Trainer(
        max_steps=2,
        limit_train_batches=2,
        limit_val_batches=1,
        limit_test_batches=1,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        gradient_clip_val=cfg.trainer.gradient_clip_val,
        default_root_dir=tmp_path,
    )
    trainer.fit(module, datamodule=task)
    losses = {key: float(trainer.callback_metrics[key]) for key in (names.TRAIN_LOSS, names.VAL_LOSS)}
    trainer.test(module, datamodule=task, verbose=False)
    losses[names.TEST_LOSS] = float(trainer.callback_metrics[names.TEST_LOSS])
    assert all(math.isfinite(value) for value in losses.values()), losses
    moved = [not torch.equal(old, new) for old, new in zip(before, module.parameters(), strict=True)]
    assert any(moved), "two optimizer steps left every weight as it was"


def cases(group: str) -> list:
    return [pytest.param(option, id=f"{group}={option}") for option in options(group)]


@pytest.mark.parametrize("option", cases("cell"))
def test_every_cell_trains(option, data_cache, tmp_path):
    train_a_few_batches(shrink(fitting_task([f"cell={option}"], tmp_path)), data_cache, tmp_path)


@pytest.mark.parametrize("option", cases("norm"))
def test_every_norm_trains_on_a_task_it_fits(option, data_cache, tmp_path):
    train_a_few_batches(shrink(fitting_task([f"norm={option}"], tmp_path)), data_cache, tmp_path)


@pytest.mark.parametrize("option", cases("loss"))
def test_every_loss_trains_on_a_task_it_fits(option, data_cache, tmp_path):
    train_a_few_batches(shrink(fitting_task([f"loss={option}"], tmp_path)), data_cache, tmp_path)


@pytest.mark.parametrize("option", cases("task"))
def test_every_task_trains_with_its_default_loss(option, data_cache, tmp_path):
    cfg = compose_case([f"task={option}"], tmp_path)
    validate(cfg)
    train_a_few_batches(shrink(cfg), data_cache, tmp_path)


@pytest.mark.parametrize("option", cases("optimizer"))
def test_every_optimizer_trains(option, data_cache, tmp_path):
    train_a_few_batches(shrink(fitting_task([f"optimizer={option}"], tmp_path)), data_cache, tmp_path)


@pytest.mark.parametrize("option", cases("scheduler"))
def test_every_scheduler_steps(option, data_cache, tmp_path):
    # The epoch ends with the second step, so a scheduler that watches val/loss gets it.
    train_a_few_batches(shrink(fitting_task([f"scheduler={option}"], tmp_path)), data_cache, tmp_path)


@pytest.mark.parametrize("option", cases("experiment"))
def test_every_experiment_preset_trains_as_published(option, data_cache, tmp_path):
    cfg = compose_case([f"experiment={option}"], tmp_path)
    validate(cfg)
    train_a_few_batches(shrink(cfg), data_cache, tmp_path)
