"""A run's params are the experiment's choices: paths go to tags, unset values are left out; sweep names
tell sweeps apart; the end-of-command summary never prints a credential."""

import os

from mlflow import MlflowClient
from omegaconf import open_dict

from seqlab import names


def test_params_hold_no_path_and_no_none_and_the_tags_hold_the_paths(make_cfg, tracking_uri):
    from seqlab.tracking.run import tracked_run

    cfg = make_cfg()
    with open_dict(cfg):
        cfg.task.seed = None  # an unset option
    with tracked_run(cfg, "paths", {names.TORCH_THREADS: 3, names.N_PARAMS: 10}) as run:
        pass
    logged = MlflowClient(tracking_uri).get_run(run.run_id).data
    assert not [k for k, v in logged.params.items() if os.path.isabs(v) or cfg.paths.output_dir in v]
    assert "None" not in logged.params.values()
    assert logged.params[names.TORCH_THREADS] == "3"  # the thread count changes results: a choice
    assert "task.seed" not in logged.params
    assert "paths.output_dir" not in logged.params and "trainer.default_root_dir" not in logged.params
    tags = logged.tags
    assert tags[f"{names.PATH_TAG_PREFIX}paths.output_dir"] == cfg.paths.output_dir
    assert tags[f"{names.PATH_TAG_PREFIX}trainer.default_root_dir"] == cfg.paths.output_dir
    dirpath = f"{names.PATH_TAG_PREFIX}callbacks.last_checkpoint.dirpath"
    assert tags[dirpath] == f"{cfg.paths.output_dir}/checkpoints"


def test_an_input_file_keeps_its_name_as_a_param_and_its_path_as_a_tag(make_cfg):
    from seqlab.tracking.run import run_params, run_path_tags

    cfg = make_cfg()
    with open_dict(cfg):
        cfg.task.path = "/srv/data/sales.csv"
    assert run_params(cfg, {})["task.path"] == "sales.csv"
    assert run_path_tags(cfg)[f"{names.PATH_TAG_PREFIX}task.path"] == "/srv/data/sales.csv"


def test_two_sweeps_with_different_fixed_overrides_get_different_names():
    from seqlab.tracking.sweep import sweep_name

    first = sweep_name(["cell=rnn,gru", "seed=0,1", "task=adding", "trainer.max_epochs=8"])
    second = sweep_name(["cell=rnn,gru", "seed=0,1", "task=copy", "trainer.max_epochs=8"])
    assert first == "sweep cell=rnn,gru seed=0,1 | task=adding max_epochs=8"
    assert first != second
    named = sweep_name(["cell=rnn,gru", "task=csv", "task.path=/a/long/folder/of/exports/sales_2024.csv"])
    assert named == "sweep cell=rnn,gru | task=csv path=sales_2024.csv"
    secret = sweep_name(["seed=0,1", "task.url=https://bob:pw1234@example.org/x"])
    assert "pw1234" not in secret
    assert "tracking" not in sweep_name(["seed=0,1", "tracking.uri=http://bob:pw1234@example.org"])


def test_the_summary_never_prints_the_stores_credentials(capsys):
    from omegaconf import OmegaConf

    from seqlab.tracking.hydra_callbacks import WhereRunsAre

    config = OmegaConf.create({"tracking": {"uri": "http://bob:pw1234@127.0.0.1:9", "experiment": "seqlab"}})
    WhereRunsAre()._report(config)
    out = capsys.readouterr()
    assert "could not list the runs" in out.out
    assert "pw1234" not in out.out + out.err
