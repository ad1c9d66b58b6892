"""Every published-result preset composes, validates, and trains a few batches into MLflow."""

import pytest
from conftest import REPO, compose_config, runs_of
from omegaconf import OmegaConf

from seqlab import names
from seqlab.reports.compare import published_for
from seqlab.tracking.params import flatten
from seqlab.train import train

PRESETS = sorted(p.stem for p in (REPO / "conf" / "experiment").glob("*.yaml"))
DATA_FILE = {
    "jsb": "JSB_Chorales.mat",
    "nottingham": "Nottingham.mat",
    "musedata": "MuseData.mat",
    "pianomidi": "Piano_midi.mat",
    "ETTh1": "ETTh1.csv",
}


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_composes_and_trains_a_few_batches(preset, make_cfg, client, data_cache):
    cfg = make_cfg(
        f"experiment={preset}",
        "trainer.limit_train_batches=1",
        "trainer.limit_val_batches=1",
        "trainer.limit_test_batches=1",
        "task.batch_size=4",
    )
    if "dataset" in cfg.task:  # a real dataset's file, seeded into the cache (a synthetic task has none)
        data_cache(DATA_FILE[cfg.task.dataset])
    train(cfg)
    [run] = runs_of(client, cfg.tracking.experiment)
    assert run.info.status == "FINISHED"
    assert names.TEST_LOSS in run.data.metrics
    budget = cfg.model.param_budget
    if budget is not None:  # the preset's parameter budget is what the run got, within 2%
        assert abs(int(run.data.params[names.N_PARAMS]) - budget) <= 0.02 * budget
    if cfg.published is not None and cfg.published.numbers:  # seqlab-compare finds the paper's number for it
        number, why_not = published_for(run, cfg.published.metric)
        assert why_not == "" and number == cfg.published.numbers[str(OmegaConf.select(cfg, cfg.published.by))]
        assert cfg.published.metric in run.data.metrics


SWEPT = {"cell.name": ["gru", "lstm", "rnn"], "task.horizon": ["168", "24", "336", "48", "720"]}


# the presets that carry a paper's numbers (a shared base, or a preset such as memory_horizon, has none)
PAPER_PRESETS = [
    p for p in PRESETS if OmegaConf.select(compose_config([f"experiment={p}"]), "published.numbers")
]


@pytest.mark.parametrize("preset", PAPER_PRESETS)
def test_each_paper_preset_carries_the_papers_number_for_every_job_of_its_sweep(preset):
    cfg = compose_config([f"experiment={preset}"])
    assert cfg.published.source and cfg.published.metric.startswith("test/")
    assert sorted(cfg.published.numbers) == SWEPT[cfg.published.by]
    # the preset runs in the paper's setting, so its own runs are compared with the paper (compared as
    # seqlab-compare compares them: the logged params, strings)
    setting = flatten(OmegaConf.to_container(cfg.published.setting))
    assert setting and {key: str(OmegaConf.select(cfg, key)) for key in setting} == setting
