"""Every Trainer, optimizer and schedule value is judged at start-up by its target's signature and its
library's own checks; group typos get a suggestion; data and store errors end `seqlab` as config errors do.
"""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import TINY, compose_config, seqlab_env

from seqlab.config import validate
from seqlab.errors import ConfigError, DataError
from seqlab.preflight import preflight

SEQLAB = str(Path(sys.executable).parent / "seqlab")


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        # types, from the signature's annotations
        (["trainer.max_epochs=two"], ["trainer.max_epochs='two'", "lightning.pytorch.Trainer", "an integer"]),
        (["trainer.max_epochs=2.5"], ["trainer.max_epochs=2.5", "an integer or null"]),
        (["trainer.precision=17"], ["trainer.precision=17", "'bf16-mixed'"]),
        (["trainer.deterministic=maybe"], ["trainer.deterministic='maybe'", "'warn'", "true or false"]),
        (["optimizer.lr=true"], ["optimizer.lr=true", "torch.optim.Adam", "a number"]),
        (["optimizer.betas=[0.9]"], ["optimizer.betas=[0.9]", "a list of 2"]),
        (["scheduler=plateau", "scheduler.mode=mn"], ["scheduler.mode='mn'", "'min', 'max'"]),
        # ranges, from the libraries' own checks, named by key
        (["optimizer.lr=-1"], ["optimizer.lr=-1", "Invalid learning rate", "default is lr=0.001"]),
        (["optimizer.betas=[0.9,1.5]"], ["optimizer.betas=[0.9, 1.5]", "Invalid beta parameter"]),
        (["optimizer=sgd", "optimizer.momentum=0", "optimizer.nesterov=true"], ["optimizer.nesterov=true"]),
        (["scheduler=plateau", "scheduler.factor=2"], ["scheduler.factor=2", "Factor should be < 1.0"]),
        (["scheduler=step", "scheduler.step_size=0"], ["scheduler.step_size=0", "ZeroDivisionError"]),
        (["trainer.limit_train_batches=1.5"], ["trainer.limit_train_batches=1.5", "in [0.0, 1.0]"]),
        (["trainer.max_time=xx"], ["trainer.max_time='xx'", "DD:HH:MM:SS"]),
        (["trainer.max_epochs=-5"], ["trainer.max_epochs=-5", "non-negative integer or -1"]),
        (["trainer.gradient_clip_algorithm=foo"], ["trainer.gradient_clip_algorithm='foo'", "'norm'"]),
        (["trainer.accumulate_grad_batches=0"], ["trainer.accumulate_grad_batches=0", ">= 1"]),
    ],
)
def test_trainer_optimizer_and_schedule_values_are_refused_at_start_up(overrides, words):
    with pytest.raises(ConfigError) as refused:
        preflight(overrides)
    message = str(refused.value)
    assert "\n" not in message
    for word in words:
        assert word in message, f"{word!r} missing from: {message}"


def test_a_sweep_names_the_job_whose_optimizer_value_is_refused():
    with pytest.raises(ConfigError, match=r"optimizer.lr=-1.* \(sweep job: optimizer.lr=-1\)"):
        preflight(["-m", "optimizer.lr=0.01,-1"])


def test_trial_builds_leave_the_process_as_it_was():
    """The trial Trainer (trainer.deterministic=true) must not switch the launching process's torch mode."""
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(False)
    try:
        validate(compose_config(["trainer.deterministic=true", "trainer.benchmark=true"]))
        assert not torch.are_deterministic_algorithms_enabled()
        assert not torch.backends.cudnn.benchmark
    finally:
        torch.use_deterministic_algorithms(before)


@pytest.mark.parametrize(
    ("option", "suggested"), [("cell=lstn", "cell=lstm"), ("optimizer=adamx", "optimizer=adam")]
)
def test_a_typo_in_a_group_option_gets_a_suggestion(option, suggested):
    with pytest.raises(ConfigError, match=rf"Unknown option {option}\. Did you mean {suggested}\? Allowed"):
        preflight([option])


def _series(path: Path, rows: int = 300) -> Path:
    path.write_text("t,a,b\n" + "".join(f"{i},{(i * 7) % 11},{i % 5}\n" for i in range(rows)))
    return path


def test_every_sweep_jobs_data_is_checked_before_the_first_job(tmp_path):
    good, missing = _series(tmp_path / "good.csv"), tmp_path / "missing.csv"
    argv = ["-m", "task=csv", f"task.path={good},{missing}", "task.target=a"]
    with pytest.raises(DataError, match=rf"{missing}.*no such file.*\(sweep job: .*missing\.csv"):
        preflight(argv, data=True)


def _seqlab(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [SEQLAB, *argv],
        cwd=tmp_path,
        env=seqlab_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=180,
    )


def _one_paragraph_exit(done: subprocess.CompletedProcess, *words: str) -> None:
    assert done.returncode == 2, done.stdout + done.stderr
    shown = done.stdout + done.stderr
    for noise in ("run(s) in MLflow", "HYDRA_FULL_ERROR", "Traceback", "Error executing job"):
        assert noise not in shown, shown
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("seqlab: "), done.stderr
    for word in words:
        assert word in last, last


@pytest.mark.integration
def test_a_bad_trainer_value_creates_no_run(tmp_path):
    done = _seqlab(tmp_path, "trainer.max_epochs=two")
    _one_paragraph_exit(done, "trainer.max_epochs='two'")
    assert not (tmp_path / "outputs").exists()  # no job folder, no store: Hydra never started


@pytest.mark.integration
def test_a_data_error_is_one_paragraph_with_the_config_errors_exit_status(tmp_path):
    done = _seqlab(tmp_path, "task=csv", "task.path=missing.csv", "task.target=a", *TINY)
    _one_paragraph_exit(done, "missing.csv", "no such file")


@pytest.mark.integration
def test_a_sweep_with_a_missing_file_in_a_later_job_trains_nothing(tmp_path):
    _series(tmp_path / "good.csv")
    done = _seqlab(tmp_path, "-m", "task=csv", "task.path=good.csv,missing.csv", "task.target=a", *TINY)
    _one_paragraph_exit(done, "missing.csv", "sweep job")
    assert "Launching" not in done.stdout + done.stderr
    assert not (tmp_path / "outputs").exists()
