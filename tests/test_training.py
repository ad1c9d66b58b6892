"""Real Lightning training of each cell for a few batches, checked by what lands in a real MLflow store."""

import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from conftest import runs_of, seqlab_env
from mlflow import MlflowClient

from seqlab import names
from seqlab.callbacks import DivergenceGuard
from seqlab.errors import DivergedError
from seqlab.train import train


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_each_cell_trains_and_lands_in_mlflow(cell, make_cfg, client):
    cfg = make_cfg(f"cell={cell}", "task=adding")
    best = train(cfg)
    [run] = runs_of(client, cfg.tracking.experiment)

    assert run.info.status == "FINISHED"
    assert run.info.run_name == f"{cell}-adding-s0"
    params, tags, metrics = run.data.params, run.data.tags, run.data.metrics
    assert params["cell.name"] == cell
    assert params["model.hidden_size"] == "64"
    assert params["optimizer.lr"] == str(cfg.optimizer.lr)
    assert params["tracking.uri"] == cfg.tracking.uri
    assert int(params[names.N_PARAMS]) > 0
    assert params[names.N_TRAIN] == str(cfg.task.n_train)
    assert tags[names.GIT_COMMIT] and tags[names.GIT_DIRTY] in {"true", "false", "unknown"}
    assert tags[names.SEQLAB_VERSION]
    for key in (names.TRAIN_LOSS, names.VAL_LOSS, names.TEST_LOSS, "test/mse", "test/mae", "val/mse"):
        assert key in metrics, f"{key} not logged: {sorted(metrics)}"
    assert best == pytest.approx(metrics[names.VAL_LOSS])
    config_yaml = client.download_artifacts(run.info.run_id, "config.yaml")
    assert f"name: {cell}" in Path(config_yaml).read_text()


def test_train_loss_is_the_epoch_mean_and_step_loss_follows_log_every_n_steps(make_cfg, client):
    # 8 batches an epoch, 3 epochs: the step loss lands on steps 4, 9, 14, 19 (Lightning's rule for
    # log_every_n_steps=5), the epoch loss once per epoch, at the epoch's last step.
    cfg = make_cfg(
        "task=adding",
        "task.n_train=256",
        "task.batch_size=32",
        "trainer.max_epochs=3",
        "trainer.limit_train_batches=null",
        "trainer.log_every_n_steps=5",
    )
    train(cfg)
    run_id = runs_of(client, cfg.tracking.experiment)[0].info.run_id
    steps = lambda key: [m.step for m in client.get_metric_history(run_id, key)]  # noqa: E731
    assert sorted(steps(names.TRAIN_STEP_LOSS)) == [4, 9, 14, 19]
    assert sorted(steps(names.TRAIN_LOSS)) == [7, 15, 23]
    step_losses = sorted(client.get_metric_history(run_id, names.TRAIN_STEP_LOSS), key=lambda m: m.step)
    epoch_losses = sorted(client.get_metric_history(run_id, names.TRAIN_LOSS), key=lambda m: m.step)
    assert epoch_losses[0].value != step_losses[0].value  # a mean over the epoch, not a single step


def test_parameter_count_differs_by_cell_as_torch_says(make_cfg, client):
    # LSTM has 4 gates, GRU 3, RNN 1: the recurrent weights scale 4:3:1.
    counts = {}
    for cell in ("rnn", "lstm", "gru"):
        cfg = make_cfg(f"cell={cell}", "model.hidden_size=32", "trainer.limit_train_batches=1")
        train(cfg)
        counts[cell] = int(runs_of(client, cfg.tracking.experiment)[0].data.params[names.N_PARAMS])
    head = counts["rnn"] - (32 + 32 * 32 + 2 * 32) * 1  # the rest of the network is the same for every cell
    assert counts["lstm"] - head == 4 * (32 + 32 * 32 + 2 * 32)
    assert counts["gru"] - head == 3 * (32 + 32 * 32 + 2 * 32)


def test_same_seed_same_losses_exactly_and_another_seed_differs(make_cfg, client):
    def val_loss(seed: int) -> float:
        cfg = make_cfg("cell=gru", f"seed={seed}", "trainer.max_epochs=2", "trainer.limit_train_batches=5")
        train(cfg)
        return runs_of(client, cfg.tracking.experiment)[0].data.metrics[names.VAL_LOSS]

    first, again, other = val_loss(0), val_loss(0), val_loss(1)
    assert first == again
    assert first != other


def test_every_epoch_is_logged(make_cfg, client):
    cfg = make_cfg("trainer.max_epochs=3")
    train(cfg)
    run = runs_of(client, cfg.tracking.experiment)[0]
    history = client.get_metric_history(run.info.run_id, names.VAL_LOSS)
    assert len(history) == 3


def test_diverging_run_fails_with_a_clear_error_and_a_failed_run(make_cfg, client):
    cfg = make_cfg("optimizer=sgd", "optimizer.lr=1e30", "trainer.limit_train_batches=5", "task=adding")
    with pytest.raises(DivergedError, match=r"diverged.*optimizer\.lr"):
        train(cfg)
    [run] = runs_of(client, cfg.tracking.experiment)
    assert run.info.status == "FAILED"
    assert "DivergedError" in run.data.tags[names.ERROR_TAG]


def test_the_divergence_guard_reads_a_loss_a_step_late_but_before_validation_or_checkpoints():
    # Reading the step's own loss would make the host wait for a GPU every step; the previous one is done.
    guard, nan = DivergenceGuard(), torch.tensor(float("nan"))
    at = lambda epoch, step: SimpleNamespace(current_epoch=epoch, global_step=step)  # noqa: E731
    guard.on_train_batch_end(at(0, 1), None, {"loss": torch.tensor(0.5)}, None, 0)
    guard.on_train_batch_end(at(0, 2), None, {"loss": nan}, None, 1)  # not read yet
    with pytest.raises(DivergedError, match="became nan at epoch 0, step 2"):  # the step it diverged at
        guard.on_train_batch_end(at(0, 3), None, {"loss": torch.tensor(0.4)}, None, 2)
    for epoch_end in (
        guard.on_validation_start,
        guard.on_train_epoch_end,
        guard.on_train_end,
    ):  # the last step
        guard.on_train_batch_end(at(1, 7), None, torch.tensor(float("inf")), None, 0)
        with pytest.raises(DivergedError, match="became inf at epoch 1, step 7"):
            epoch_end(at(1, 7), None)
        epoch_end(at(1, 7), None)  # read once: nothing left to raise about


@pytest.mark.parametrize("validated", [True, False])
def test_a_diverged_epoch_is_neither_validated_nor_checkpointed(validated, make_cfg, client):
    # One step an epoch: the guard reads the diverged loss no step later, so it must read it before the
    # epoch's validation (or, without validation, before the checkpoint callbacks' epoch end).
    overrides = [] if validated else ["trainer.limit_val_batches=0", "callbacks.model_checkpoint=null"]
    cfg = make_cfg(
        "optimizer=sgd",
        "optimizer.lr=1e30",
        "trainer.limit_train_batches=1",
        "trainer.max_epochs=6",
        "task=adding",
        *overrides,
    )
    with pytest.raises(DivergedError) as raised:
        train(cfg)
    diverged_at = int(re.search(r"at epoch (\d+)", str(raised.value)).group(1))
    [run] = runs_of(client, cfg.tracking.experiment)
    assert run.info.status == "FAILED"
    validated_epochs = client.get_metric_history(run.info.run_id, names.VAL_LOSS)
    assert len(validated_epochs) == (diverged_at if validated else 0)
    assert diverged_at >= 1  # epoch 0's step starts from finite weights: there is an epoch before to keep
    last = Path(cfg.paths.output_dir) / "checkpoints" / names.LAST_CHECKPOINT
    assert torch.load(last, weights_only=True)["epoch"] == diverged_at - 1


def _start_long_run(tmp_path: Path, db: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "seqlab.train",
            f"tracking.uri=sqlite:///{db}",
            "trainer.max_epochs=1000",
            "task.n_train=20000",
            "cell=lstm",
        ],
        cwd=tmp_path,
        env=seqlab_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_for_training(db: Path, timeout: float = 180) -> tuple[MlflowClient, str]:
    """Wait until the subprocess's run has logged a whole epoch; its client and run id."""
    deadline = time.time() + timeout
    client = MlflowClient(f"sqlite:///{db}")
    while time.time() < deadline:
        exp = client.get_experiment_by_name("seqlab") if db.exists() else None
        runs = client.search_runs([exp.experiment_id]) if exp else []
        if runs and names.VAL_LOSS in runs[0].data.metrics:
            return client, runs[0].info.run_id
        time.sleep(0.5)
    raise AssertionError("training never logged an epoch")


@pytest.mark.integration
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_marks_the_run_killed_and_exits_nonzero(tmp_path: Path, signum):
    db = tmp_path / "mlflow.db"
    proc = _start_long_run(tmp_path, db)
    try:
        client, run_id = _wait_for_training(db)
        proc.send_signal(signum)
        output, _ = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode != 0, output
    run = client.get_run(run_id)
    assert run.info.status == "KILLED", output
    assert run.data.tags[names.SIGNAL_TAG] == signal.Signals(signum).name
    assert list((tmp_path / "outputs").rglob("last.ckpt")), "the last completed epoch's checkpoint is kept"


def test_one_log_line_per_epoch_with_that_epochs_train_and_val_loss(make_cfg, caplog):
    cfg = make_cfg("task=adding", "trainer.max_epochs=2", "trainer.log_every_n_steps=1")
    with caplog.at_level("INFO", logger="seqlab.callbacks"):
        train(cfg)
    lines = [r.getMessage() for r in caplog.records if r.name == "seqlab.callbacks"]
    assert [line.split()[1] for line in lines] == ["1/2", "2/2"]
    for line in lines:  # after validation: the epoch's own figures, not a step's
        assert f"{names.TRAIN_LOSS}=" in line and f"{names.VAL_LOSS}=" in line
        assert names.TRAIN_STEP_LOSS not in line


def test_val_and_test_metrics_are_means_over_the_whole_split_weighted_by_batch_size(make_cfg):
    # 100 examples in batches of 32: the last batch holds 4, so an unweighted mean of batch means differs.
    # The module updates metrics per batch and logs once at the epoch end; the figures must be those of
    # the whole split, computed here by hand.
    import lightning as L
    import torch

    from seqlab.train import build

    cfg = make_cfg(
        "task=adding",
        "task.n_val=100",
        "task.n_test=100",
        "task.batch_size=32",
        "trainer.limit_val_batches=null",
        "trainer.limit_test_batches=null",
    )
    task, module = build(cfg)
    trainer = L.Trainer(
        logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False
    )
    for stage, run in (("val", trainer.validate), ("test", trainer.test)):
        [logged] = run(module, datamodule=task, verbose=False)
        loader = task.val_dataloader() if stage == "val" else task.test_dataloader()
        sizes, losses, abs_errors = [], [], []
        with torch.inference_mode():
            for batch in loader:
                out, y = module.loss.align(module.net(batch["x"]), batch["y"], batch.get("mask"))
                sizes.append(len(y))
                losses.append(float(module.loss(out, y)))
                abs_errors.append((out - y).abs().reshape(-1))
        assert sizes[-1] != sizes[0]
        expected_loss = sum(n * v for n, v in zip(sizes, losses, strict=False)) / sum(sizes)
        assert logged[f"{stage}/loss"] == pytest.approx(expected_loss, rel=1e-5)
        assert logged[f"{stage}/mse"] == pytest.approx(expected_loss, rel=1e-5)  # MSE loss: the same figure
        assert logged[f"{stage}/mae"] == pytest.approx(float(torch.cat(abs_errors).mean()), rel=1e-5)
        unweighted = sum(losses) / len(losses)
        assert abs(unweighted - expected_loss) > 1e-4 * expected_loss  # the weighting is tested, not moot


def test_a_nan_validation_batch_makes_the_epoch_loss_nan_not_silently_dropped(make_cfg):
    # One poisoned example in the first of four validation batches: the epoch's val/loss must be NaN,
    # so checkpointing and early stopping see it (a mean over the other batches would hide it).
    import lightning as L
    import torch

    from seqlab.train import build

    cfg = make_cfg("task=adding", "task.n_val=128", "task.batch_size=32", "trainer.limit_val_batches=null")
    task, module = build(cfg)
    task.splits["val"].tensors["x"][0, 0, 0] = float("nan")
    trainer = L.Trainer(
        logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False
    )
    [logged] = trainer.validate(module, datamodule=task, verbose=False)
    assert torch.isnan(torch.tensor(logged["val/loss"]))


def test_the_libraries_per_run_notices_stay_quiet_after_they_are_imported():
    """On a GPU, Lightning logs `LOCAL_RANK: 0 - CUDA_VISIBLE_DEVICES: [0]` at INFO for each run (twice per
    run in a benchmark's report, seen on an H100), and MLflow that it started and stopped monitoring system
    metrics; importing either sets its package logger to INFO. seqlab's runs and benchmarks share one
    switch."""
    import logging

    from seqlab.train import quiet_library_notices

    quiet_library_notices()
    import lightning.pytorch  # noqa: F401
    import mlflow.system_metrics.system_metrics_monitor  # noqa: F401

    for notice in (
        "lightning.pytorch.accelerators.cuda",
        "mlflow.system_metrics.system_metrics_monitor",
        "mlflow.store.db.utils",
    ):
        assert not logging.getLogger(notice).isEnabledFor(logging.INFO), notice
        assert logging.getLogger(notice).isEnabledFor(logging.WARNING), notice
