"""Every config option composes and validates; every bad input is refused with a clear paragraph."""

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, compose_config, seqlab_env

from seqlab.config import PublishedConfig, validate
from seqlab.errors import ConfigError
from seqlab.preflight import jobs_of, preflight

CONF = REPO / "conf"


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


@pytest.mark.parametrize(
    "override",
    [f"cell={o}" for o in options("cell")]
    + [f"norm={o}" for o in options("norm")]
    + [f"optimizer={o}" for o in options("optimizer")]
    + [f"scheduler={o}" for o in options("scheduler")]
    + [
        "model.readout=attention",
        "model.frontend=conv1d",
        "model.bidirectional=true",
        "cell=rnn cell.nonlinearity=relu",
    ],
)
def test_each_option_composes_and_validates(override):
    cfg = compose_config(override.split())
    validate(cfg)


def test_task_sets_its_default_loss_and_command_line_wins():
    assert compose_config(["task=adding"]).loss.name == "mse"
    assert compose_config(["task=copy"]).loss.name == "cross_entropy"
    assert compose_config(["task=sine", "loss=l1"]).loss.name == "l1"


def test_any_trainer_argument_can_be_set_without_plus():
    cfg = compose_config(["trainer.gradient_clip_val=0.5", "trainer.accumulate_grad_batches=2"])
    validate(cfg)
    assert cfg.trainer.gradient_clip_val == 0.5


BAD_INPUTS = [
    # (command line, words the message must contain)
    (["cell=transformer"], ["cell=transformer", "gru", "lstm", "rnn"]),
    (["model.hidden_size=0"], ["model.hidden_size=0", ">= 1"]),
    (["model.dropout=1.5"], ["model.dropout=1.5", "[0, 1)"]),
    (["norm=group", "norm.num_groups=3"], ["norm.num_groups=3", "64", "1, 2, 4, 8, 16, 32, 64"]),
    (
        ["norm=group", "norm.num_groups=3", "model.bidirectional=true", "model.hidden_size=16"],
        ["32", "2 directions"],
    ),
    (
        ["task=sine", "loss=cross_entropy"],
        ["loss=cross_entropy", "task=sine", "regression", "huber, l1, mse"],
    ),
    (["model.hidden_sise=3"], ["model.hidden_sise", "Did you mean 'model.hidden_size'"]),
    (["+model.extra=1"], ["model.extra", "hidden_size"]),
    (["trainer.max_epoch=3"], ["trainer.max_epoch", "trainer.max_epochs"]),
    (["optimizer.lrr=0.1"], ["optimizer.lrr", "optimizer.lr"]),
    (["task.windo=3"], ["task.windo", "task.window"]),
    (["loss=huber", "loss.deltaa=2"], ["loss.deltaa", "loss.delta"]),
    (["model.activation=swish"], ["model.activation='swish'", "gelu", "leaky_relu"]),
    (["model.readout=first"], ["model.readout='first'", "attention"]),
    (["cell=rnn", "cell.nonlinearity=sigmoid"], ["cell.nonlinearity='sigmoid'", "tanh, relu"]),
    (["model.readout=attention", "model.attention_heads=3"], ["model.attention_heads=3", "64"]),
    (["model.hidden_size=abc"], ["model.hidden_size", "abc"]),
    (["norm=weight"], ["norm=weight", "batch", "group", "layer", "none"]),
    # Lightning refuses these together, but only inside fit, after the MLflow run exists
    (
        ["trainer.enable_checkpointing=false"],
        [
            "trainer.enable_checkpointing=false",
            "callbacks.model_checkpoint and callbacks.last_checkpoint",
            "callbacks.model_checkpoint=null callbacks.last_checkpoint=null",
        ],
    ),
    (
        ["trainer.enable_checkpointing=false", "callbacks.model_checkpoint=null"],
        ["callbacks.last_checkpoint saves", "callbacks.last_checkpoint=null"],
    ),
    (["trainer.barebones=true"], ["trainer.barebones=true", "logger", "checkpoints", "Allowed: false"]),
    (["cell=gru", "+cell.nonlinearity=relu"], ["cell.nonlinearity", "Keys allowed under 'cell'"]),
    (["norm=group", "norm.num_groups=0"], ["norm.num_groups=0", ">= 1"]),
    # a preset's published block: a typo would silently show no paper numbers in seqlab-compare
    (
        ["experiment=chung2014_jsb", "published.by=cell.nam"],
        ["published: 'cell.nam' is not a key", "cell.name"],
    ),
    (
        ["experiment=bai2018_jsb", "+published.setting.task.datset=jsb"],
        ["'task.datset' is not a key", "task.dataset"],
    ),
    (["experiment=chung2014_jsb", "published.metric=val/nll"], ["published.metric='val/nll'", "test/nll"]),
    (["experiment=informer_etth1", "+published.sorce=x"], ["published.sorce", "source"]),
]


@pytest.mark.parametrize("argv,words", BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_is_refused_before_anything_runs(argv, words):
    with pytest.raises(ConfigError) as err:
        preflight(argv)
    message = str(err.value)
    assert "\n" not in message, "one paragraph"
    for word in words:
        assert word in message, f"{word!r} missing from: {message}"


@pytest.mark.parametrize("accelerator", ["gpu", "cuda"])
def test_a_gpu_run_is_refused_at_start_where_torch_sees_no_gpu(accelerator, monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.raises(
        ConfigError,
        match=rf"trainer.accelerator={accelerator} asks for a CUDA GPU, but torch .* "
        r"sees none here .* trainer.accelerator=cpu .* or auto",
    ):
        preflight([f"trainer.accelerator={accelerator}"])
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)  # where there is one, it is accepted
    validate(compose_config([f"trainer.accelerator={accelerator}"]))
    validate(compose_config(["trainer.accelerator=auto"]))


def test_a_callback_set_to_null_is_switched_off(make_cfg):
    from seqlab.train import configured_callbacks

    preflight(["callbacks.epoch_summary=null", "callbacks.last_checkpoint=null"])  # not a crash in validation
    kept = {type(c).__name__ for c in configured_callbacks(make_cfg("callbacks.epoch_summary=null"))}
    assert "EpochSummary" not in kept and {"ModelCheckpoint", "DivergenceGuard"} <= kept


def test_a_callback_that_would_do_nothing_is_left_out(make_cfg):
    from seqlab.train import configured_callbacks

    kinds = lambda cfg: {type(c).__name__ for c in configured_callbacks(cfg)}  # noqa: E731
    assert "WeightNoise" not in kinds(make_cfg())  # std 0, the default: no per-step hooks to call
    assert "WeightNoise" in kinds(make_cfg("callbacks.weight_noise.std=0.075"))


def test_a_sweep_is_checked_job_by_job_before_any_starts():
    jobs = jobs_of(["-m", "cell=rnn,lstm", "model.hidden_size=8,0"])
    assert len(jobs) == 4
    with pytest.raises(ConfigError, match=r"model.hidden_size=0.*sweep job"):
        preflight(["-m", "cell=rnn,lstm", "model.hidden_size=8,0"])


def test_help_and_cfg_are_left_to_hydra():
    assert jobs_of(["--help"]) is None
    assert jobs_of(["--cfg", "job"]) is None


@pytest.mark.integration
def test_cli_error_is_one_paragraph_nonzero_exit_no_traceback_no_run(tmp_path: Path):
    done = subprocess.run(
        [sys.executable, "-m", "seqlab.train", "task=sine", "loss=cross_entropy"],
        cwd=tmp_path,
        env=seqlab_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "loss=cross_entropy does not fit task=sine" in done.stderr
    assert not (tmp_path / "outputs").exists(), "no MLflow store, no run folder for a refused config"


@pytest.mark.integration
def test_cli_help_and_cfg_job_work(tmp_path: Path):
    env = seqlab_env(tmp_path)
    helped = subprocess.run(
        [sys.executable, "-m", "seqlab.train", "--help"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert helped.returncode == 0 and "cell: gru, lstm, rnn" in helped.stdout
    shown = subprocess.run(
        [sys.executable, "-m", "seqlab.train", "cell=gru", "--cfg", "job"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shown.returncode == 0 and "name: gru" in shown.stdout


def test_a_preset_sweep_is_expanded_and_the_command_line_wins():
    jobs = preflight(["-m", "experiment=chung2014_jsb"])
    assert len(jobs) == 9  # the preset's hydra.sweeper.params: 3 cells x 3 seeds
    assert {j for job in jobs for j in job if j.startswith("cell=")} == {"cell=rnn", "cell=gru", "cell=lstm"}
    jobs = preflight(["-m", "experiment=chung2014_jsb", "seed=7"])
    assert len(jobs) == 3 and all("seed=7" in job for job in jobs)
    with pytest.raises(ConfigError, match=r"model.dropout=1.5.*sweep job"):
        preflight(["-m", "experiment=chung2014_jsb", "model.dropout=1.5"])


class InstanceCheck:
    """A target from another library whose `check` is its own instance method, not seqlab's check(options)."""

    def __init__(self, level: int = 0) -> None:
        self.level = level

    def check(self) -> bool:
        raise AssertionError("validate must not call another target's own check method")


def test_only_a_check_classmethod_is_called_at_validation():
    cfg = compose_config(["+callbacks.probe._target_=test_config.InstanceCheck", "+callbacks.probe.level=1"])
    validate(cfg)  # no call into InstanceCheck.check
    bad = compose_config(["callbacks.weight_noise.std=-1"])
    with pytest.raises(ConfigError, match=r"weight_noise\.std=-1"):
        validate(bad)  # seqlab's own classmethod check still runs


def test_a_published_block_without_its_source_and_metric_is_refused():
    # as a user's own preset would have it: numbers, but no paper and no metric to compare them with
    cfg = compose_config(["task=adding"])
    cfg.published = PublishedConfig(numbers={"gru": 8.5})
    with pytest.raises(ConfigError, match=r"^published.source and published.metric must be set: "):
        validate(cfg)
    cfg.published.source, cfg.published.metric = "A paper, Table 1", "test/loss"
    validate(cfg)  # complete, and its by (cell.name) is a key of the config
