"""Every published-result preset composes, validates, and trains a few batches into MLflow."""

import pytest

from seqlab import names
from seqlab.train import train

from conftest import REPO, runs_of

PRESETS = sorted(p.stem for p in (REPO / "conf" / "experiment").glob("*.yaml"))
DATA_FILE = {"jsb": "JSB_Chorales.mat", "nottingham": "Nottingham.mat", "musedata": "MuseData.mat",
             "pianomidi": "Piano_midi.mat", "ETTh1": "ETTh1.csv"}


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_composes_and_trains_a_few_batches(preset, make_cfg, client, data_cache):
    cfg = make_cfg(f"experiment={preset}", "trainer.limit_train_batches=1", "trainer.limit_val_batches=1",
                   "trainer.limit_test_batches=1", "task.batch_size=4")
    data_cache(DATA_FILE[cfg.task.dataset])
    train(cfg)
    [run] = runs_of(client, cfg.tracking.experiment)
    assert run.info.status == "FINISHED"
    assert names.TEST_LOSS in run.data.metrics
    budget = cfg.model.param_budget
    if budget is not None:  # the preset's parameter budget is what the run got, within 2%
        assert abs(int(run.data.params[names.N_PARAMS]) - budget) <= 0.02 * budget
