"""hydra/sweeper=tune before any trial: arms and search space from the command line, and every bad value
refused in one paragraph by preflight (the real configs, composed; no store, no run)."""

import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from seqlab.errors import ConfigError
from seqlab.preflight import preflight
from seqlab.tuning.options import tune_options
from seqlab.tuning.space import SINGLE_ARM, grid_of, hydra_value, plan_search, sample_points
from seqlab.tuning.study import storage_url, study_name

LR = "optimizer.lr=tag(log, interval(1e-4, 1e-2))"


def test_comma_lists_are_arms_and_sweep_functions_the_search_space():
    plan = plan_search(
        [
            "cell=rnn,gru",
            LR,
            "model.dropout=interval(0, 0.5)",
            "model.num_layers=range(1,3)",
            "trainer.max_epochs=2",
        ]
    )
    assert [a.name for a in plan.arms] == ["cell-rnn", "cell-gru"]
    assert [a.overrides for a in plan.arms] == [("cell=rnn",), ("cell=gru",)]
    space = {d.key: d.distribution for d in plan.space}
    assert space["optimizer.lr"] == FloatDistribution(1e-4, 1e-2, log=True)
    assert space["model.dropout"] == FloatDistribution(0.0, 0.5)
    # Hydra's range stops before its end, as the basic sweeper expands it: 1 and 2
    assert space["model.num_layers"] == IntDistribution(1, 2)
    assert plan.fixed == ("trainer.max_epochs=2",)


def test_without_a_comma_list_there_is_one_arm_and_choice_is_categorical():
    plan = plan_search(["norm=choice(none,layer)", "optimizer.lr=range(0.001,0.004,0.001)"])
    assert [a.name for a in plan.arms] == [SINGLE_ARM]
    space = {d.key: d.distribution for d in plan.space}
    assert space["norm"] == CategoricalDistribution(["none", "layer"])
    assert isinstance(space["optimizer.lr"], FloatDistribution) and space["optimizer.lr"].step == 0.001
    assert grid_of(plan.space)["norm"] == ["none", "layer"]


def test_an_experiment_presets_comma_lists_are_arms_too():
    plan = plan_search([LR], preset=["cell=rnn,gru,lstm"])
    assert [a.name for a in plan.arms] == ["cell-rnn", "cell-gru", "cell-lstm"]


@pytest.mark.parametrize("value", [1e-05, 0.1, 3, True, None, "layer", "a b", "1"])
def test_a_sampled_value_reads_back_as_itself_in_an_override(value):
    from seqlab.tracking.sweep import parse

    assert parse([f"k={hydra_value(value)}"])[0].value() == value


def test_sample_points_bound_the_space_and_try_every_choice():
    plan = plan_search(["model.dropout=interval(0, 0.5)", "norm=choice(none,layer,batch)"])
    points = sample_points(plan.space)
    assert {"model.dropout": 0.0, "norm": "none"} in points
    assert {"model.dropout": 0.5, "norm": "batch"} in points
    assert {"model.dropout": 0.0, "norm": "layer"} in points


@pytest.mark.parametrize("seed", ["seed=0,1,2", "seed=range(0,3)", "seed=interval(0,5)", "task.seed=1,2"])
def test_a_seed_sweep_is_refused_saying_where_seeds_go(seed):
    with pytest.raises(ConfigError) as err:
        plan_search([LR, seed])
    text = str(err.value)
    assert seed in text and "search_seeds" in text and "eval_seeds" in text and "\n" not in text


def test_the_command_line_replaces_the_presets_sweep_of_the_same_key():
    plan = plan_search([LR, "cell=gru", "seed=3"], preset=["cell=rnn,gru,lstm", "seed=0,1,2"])
    assert [a.name for a in plan.arms] == ["all"] and plan.fixed == ("cell=gru", "seed=3")


def test_a_presets_seed_list_is_refused_naming_how_to_leave_it_out():
    with pytest.raises(ConfigError, match=r"~hydra.sweeper.params.seed"):
        plan_search([LR], preset=["cell=rnn,gru", "seed=0,1,2"])


def test_the_storage_is_beside_a_sqlite_store_and_a_schema_of_a_postgresql_one(tmp_path):
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert storage_url(None, store) == f"sqlite:///{tmp_path / 'mlflow-optuna.db'}"
    assert storage_url("sqlite:///x.db", store) == "sqlite:///x.db"
    assert storage_url(None, "postgresql://u@h/db") == "postgresql://u@h/db?options=-csearch_path%3Doptuna"


def test_the_study_is_named_from_the_command_without_where_runs_are_stored():
    options = tune_options({})
    name = study_name(options, ["cell=rnn,gru", LR, "tracking.uri=sqlite:///a.db"])
    assert name == f"tune cell=rnn,gru {LR}"
    assert study_name(tune_options({"study_name": "mine"}), ["x=1"]) == "mine"


def test_the_tuning_sweeper_chooses_its_own_parent_run_and_a_plain_sweep_keeps_its_own():
    def parent_run(*overrides: str) -> str:
        GlobalHydra.instance().clear()
        with initialize_config_module(config_module="seqlab.conf", version_base="1.3"):
            cfg = compose("config", overrides=list(overrides), return_hydra_config=True)
        return cfg.hydra.callbacks.sweep_parent_run._target_

    assert parent_run("hydra/sweeper=tune") == "seqlab.tuning.parent_run.TuneParentRun"
    assert parent_run() == "seqlab.tracking.hydra_callbacks.SweepParentRun"


def _refused(*overrides: str) -> str:
    with pytest.raises(ConfigError) as err:
        preflight(["-m", "hydra/sweeper=tune", "task=adding", "cell=rnn,gru", *overrides])
    text = str(err.value)
    assert "\n" not in text  # one paragraph
    return text


@pytest.mark.parametrize(
    "overrides, named, allowed",
    [
        ([], "no search space", "interval()"),
        ([LR, "hydra.sweeper.n_trials=0"], "n_trials=0", "at least 1"),
        ([LR, "hydra.sweeper.sampler=bayes"], "sampler='bayes'", "tpe, random, cmaes, grid"),
        ([LR, "hydra.sweeper.pruner=asha"], "pruner='asha'", "none, median, hyperband"),
        ([LR, "hydra.sweeper.direction=down"], "direction='down'", "minimize, maximize"),
        ([LR, "hydra.sweeper.metric=test/loss"], "test/loss", "val/loss"),
        ([LR, "hydra.sweeper.eval_seeds=[1,2]", "hydra.sweeper.search_seeds=[2]"], "[2]", "never saw"),
        (["model.dropoutt=interval(0, 0.5)"], "model.dropoutt", "model.dropout"),
        (["model.num_layers=interval(1, 3)"], "model.num_layers=1.0", "Integer"),
        (["model.dropout=interval(0, 2)"], "model.dropout", "dropout"),
        (["optimizer.lr=tag(log, interval(0, 1))"], "interval(0, 1)", "above 0"),
        ([LR, "seed=0,1"], "seed=0,1", "eval_seeds"),
        (
            ["optimizer.lr=interval(1e-3, 1e-2)", "hydra.sweeper.sampler=grid"],
            "interval(1e-3, 1e-2)",
            "range()",
        ),
    ],
)
def test_every_bad_value_is_refused_before_any_trial_in_one_paragraph(overrides, named, allowed):
    text = _refused(*overrides)
    assert named in text and allowed in text


def test_a_valid_tuning_command_passes_preflight_with_sweep_functions():
    jobs = preflight(
        ["-m", "hydra/sweeper=tune", "task=adding", "cell=rnn,gru", LR, "model.dropout=interval(0,0.5)"]
    )
    assert len(jobs) == 4  # two arms, each at the low and the high end of the space
    assert ["task=adding", "cell=rnn", "optimizer.lr=0.0001", "model.dropout=0.0"] in jobs
