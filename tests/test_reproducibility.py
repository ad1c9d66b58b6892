"""Reruns from MLflow, resume after a real SIGTERM, provenance tags: each compared with a real run."""

import hashlib
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import ClassVar

import lightning as L
import pytest
import torch
from conftest import compose_config, runs_of, seqlab_env, tiny_config
from lightning.pytorch.plugins.io import AsyncCheckpointIO, TorchCheckpointIO
from mlflow import MlflowClient

from seqlab import names
from seqlab.errors import ConfigError, TrackingError
from seqlab.reproduce.checkpoint import BackgroundCheckpointIO
from seqlab.reproduce.rerun import rerun
from seqlab.reproduce.resume import resume_point
from seqlab.tasks.synthetic import SineTask
from seqlab.train import train

# Dropout between two layers: the per-epoch reseeding must replay it for a resume to match.
SMALL = [
    "cell=gru",
    "model.num_layers=2",
    "model.dropout=0.3",
    "model.hidden_size=16",
    "task.window=20",
    "task.n_train=256",
    "task.n_val=64",
    "task.n_test=64",
]


def val_test_metrics(run) -> dict[str, float]:
    return {k: v for k, v in run.data.metrics.items() if k.startswith((names.VAL, names.TEST))}


def siblings(client: MlflowClient, run) -> list:
    """Every run in the run's experiment, the run itself included."""
    return client.search_runs([run.info.experiment_id], order_by=["start_time ASC"])


def history(client: MlflowClient, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


# --- rerun ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def original(tracking_uri, tmp_path_factory):
    """One finished run that the rerun and resume tests below rerun, or refuse to resume (it is FINISHED)."""
    cfg = tiny_config(
        tmp_path_factory.mktemp("original"),
        tracking_uri,
        *SMALL,
        "trainer.max_epochs=2",
        "trainer.limit_train_batches=null",
    )
    train(cfg)
    [run] = runs_of(MlflowClient(tracking_uri), cfg.tracking.experiment)
    return run


def test_rerun_repeats_the_run_exactly_as_a_new_run(original, client, tracking_uri, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = {r.info.run_id for r in siblings(client, original)}

    new_id = rerun(original.info.run_id, [], tracking_uri)

    after = {r.info.run_id for r in siblings(client, original)}
    assert after - before == {new_id} and new_id != original.info.run_id
    new = client.get_run(new_id)
    assert new.info.status == "FINISHED"
    assert new.data.tags[names.RERUN_OF] == original.info.run_id
    assert val_test_metrics(new) == val_test_metrics(original)  # exactly, every val and test metric
    assert len(val_test_metrics(new)) >= 4
    assert history(client, new_id, names.VAL_LOSS) == history(client, original.info.run_id, names.VAL_LOSS)
    # the same params (the experiment's choices); only where the run wrote its files differs, kept in tags
    assert new.data.params == original.data.params
    folder = names.PATH_TAG_PREFIX + "paths.output_dir"
    assert new.data.tags[folder] != original.data.tags[folder]
    assert new.data.tags[folder].startswith(str(tmp_path / "outputs" / "reruns"))


def test_rerun_with_overrides_changes_only_those(original, client, tracking_uri, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    new = client.get_run(
        rerun(
            original.info.run_id,
            ["cell=lstm", "seed=3", "optimizer.lr=0.01", "trainer.max_epochs=1"],
            tracking_uri,
        )
    )

    assert new.data.tags[names.RERUN_OF] == original.info.run_id
    assert new.data.params["cell.name"] == "lstm"
    assert new.data.params["seed"] == new.data.params["task.seed"] == "3"
    assert new.data.params["optimizer.lr"] == "0.01"
    assert (
        new.data.params["model.num_layers"] == "2" and new.data.params["task.window"] == "20"
    )  # kept from the run
    assert new.data.metrics[names.VAL_LOSS] != original.data.metrics[names.VAL_LOSS]


def test_rerun_warns_when_the_code_differs(original, client, tracking_uri, tmp_path, monkeypatch, caplog):
    run_id, commit = original.info.run_id, original.data.tags[names.GIT_COMMIT]
    monkeypatch.chdir(tmp_path)
    client.set_tag(run_id, names.GIT_COMMIT, "0" * 40)
    try:
        with caplog.at_level("WARNING", logger="seqlab.rerun"):
            rerun(run_id, ["trainer.max_epochs=1", "trainer.limit_train_batches=1"], tracking_uri)
    finally:
        client.set_tag(run_id, names.GIT_COMMIT, commit)  # the other tests rerun it too
    assert any("0" * 40 in r.getMessage() and "differs" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    "overrides,words",
    [
        (["model.hidden_sise=3"], ["model.hidden_sise", "Did you mean 'model.hidden_size'"]),
        (["cell=transformer"], ["cell=transformer", "gru, lstm, rnn"]),
        (["model.hidden_size=0"], ["model.hidden_size=0", ">= 1"]),
        (["model.hidden_size=abc"], ["model.hidden_size", "abc"]),
        (["seed=1,2"], ["seed=1,2", "one value"]),
        (["resume=abc"], ["seqlab resume="]),
        (
            ["model.param_budget=9000", "model.hidden_size=8"],
            ["model.param_budget", "model.hidden_size", "one of them"],
        ),
    ],
)
def test_rerun_refuses_bad_overrides_and_starts_nothing(
    overrides, words, original, client, tracking_uri, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    runs_before = len(siblings(client, original))
    with pytest.raises(ConfigError) as err:
        rerun(original.info.run_id, overrides, tracking_uri)
    for word in words:
        assert word in str(err.value), str(err.value)
    assert "\n" not in str(err.value)
    assert len(siblings(client, original)) == runs_before


@pytest.mark.integration
def test_rerun_cli_unknown_run_is_one_clear_paragraph(tmp_path):
    db = tmp_path / "mlflow.db"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "seqlab.reproduce.rerun",
            "0123456789abcdef",
            "--tracking-uri",
            f"sqlite:///{db}",
        ],
        cwd=tmp_path,
        env=seqlab_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "Cannot rerun run '0123456789abcdef': there is no such run" in done.stderr


# --- provenance ----------------------------------------------------------------------------------


class FileSineTask(SineTask):
    """A test-only task that reads a file: its noise level comes from a one-line CSV."""

    def __init__(self, data_file: str, **options) -> None:
        super().__init__(**options)
        self.data_file = Path(data_file)

    def build(self):
        self.noise = float(self.data_file.read_text().splitlines()[1])
        return super().build()

    def data_files(self) -> list[Path]:
        return [self.data_file]


def test_every_run_records_its_provenance(make_cfg, client, tmp_path):
    csv = tmp_path / "noise.csv"
    csv.write_text("noise\n0.1\n")
    cfg = make_cfg(
        "task._target_=test_reproducibility.FileSineTask",
        f"+task.data_file={csv}",
        "trainer.limit_train_batches=1",
    )
    train(cfg)
    [run] = runs_of(client, cfg.tracking.experiment)
    tags = run.data.tags
    assert tags[names.DATA_SHA256] == f"{hashlib.sha256(csv.read_bytes()).hexdigest()}  {csv}"
    assert (
        tags[names.TORCH_VERSION] == torch.__version__ == "2.13.0+cpu"
        or tags[names.TORCH_VERSION] == torch.__version__
    )
    assert tags[names.LIGHTNING_VERSION] and tags[names.MLFLOW_VERSION]
    assert "trainer.deterministic=True" in tags[names.DETERMINISM]
    assert "torch.deterministic_algorithms=True" in tags[names.DETERMINISM]
    # deterministic mode without its NaN fill of fresh memory (a cost on every allocation), recorded
    assert "torch.fill_uninitialized_memory=False" in tags[names.DETERMINISM]
    assert tags[names.GIT_COMMIT] and tags[names.GIT_DIRTY] in {"true", "false", "unknown"}
    assert run.data.params["seed"] == "0"
    assert Path(tags[names.CHECKPOINT_DIR], "last.ckpt").is_file()
    checkpoint = torch.load(Path(tags[names.CHECKPOINT_DIR], "last.ckpt"), weights_only=False)
    assert checkpoint[names.CHECKPOINT_RUN_ID] == run.info.run_id


def test_generated_data_has_an_empty_data_hash(original):
    assert original.data.tags[names.DATA_SHA256] == ""


# --- resume --------------------------------------------------------------------------------------


def _start(tmp_path: Path, db: Path, *overrides: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "seqlab.train", f"tracking.uri=sqlite:///{db}", *overrides],
        cwd=tmp_path,
        env=seqlab_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _sigterm_after_first_checkpoint(proc: subprocess.Popen, tmp_path: Path, delay: float = 0.0) -> str:
    """Wait for last.ckpt (one epoch done), SIGTERM the process; returns its output."""
    deadline = time.time() + 300
    while not list((tmp_path / "outputs").rglob("last.ckpt")):
        assert proc.poll() is None and time.time() < deadline, proc.communicate()[0]
        time.sleep(0.05)
    time.sleep(delay)
    proc.send_signal(signal.SIGTERM)
    return proc.communicate(timeout=300)[0]


def _resume_matches_uninterrupted(tmp_path, client, db, overrides, resume_in_subprocess: bool):
    proc = _start(tmp_path, db, *overrides)
    try:
        output = _sigterm_after_first_checkpoint(
            proc, tmp_path, delay=0.0 if not resume_in_subprocess else 1.0
        )
    finally:
        proc.kill()
    assert proc.returncode != 0, output
    [killed] = runs_of(client, "seqlab")
    run_id = killed.info.run_id
    assert killed.info.status == "KILLED" and killed.data.tags[names.SIGNAL_TAG] == "SIGTERM", output
    interrupted_epochs = len(client.get_metric_history(run_id, names.VAL_LOSS))
    max_epochs = int(killed.data.params["trainer.max_epochs"])
    assert 1 <= interrupted_epochs < max_epochs, "the SIGTERM landed after the run had finished"

    if resume_in_subprocess:
        done = _start(tmp_path, db, f"resume={run_id}")
        output = done.communicate(timeout=600)[0]
        assert done.returncode == 0, output
    else:
        train(compose_config([f"resume={run_id}", f"tracking.uri=sqlite:///{db}"]))

    [resumed] = runs_of(client, "seqlab")  # the same run, no second one
    assert resumed.info.run_id == run_id and resumed.info.status == "FINISHED"
    assert resumed.data.tags[names.RESUMED_TAG] == str(interrupted_epochs)
    assert names.SIGNAL_TAG not in resumed.data.tags  # a FINISHED run does not say a signal stopped it

    reference_cfg = compose_config(
        [*overrides, f"tracking.uri=sqlite:///{db}", "tracking.experiment=reference"]
    )
    reference_cfg.paths.output_dir = str(tmp_path / "reference")
    train(reference_cfg)
    [reference] = runs_of(client, "reference")
    assert val_test_metrics(resumed) == val_test_metrics(reference)
    for key in (names.TRAIN_LOSS, names.VAL_LOSS):
        steps = history(client, run_id, key)
        assert len(steps) == max_epochs and len({s for s, _ in steps}) == max_epochs, steps  # no epoch twice
        assert steps == history(client, reference.info.run_id, key)


@pytest.mark.integration
def test_resume_after_sigterm_equals_an_uninterrupted_run(tmp_path):
    db = tmp_path / "mlflow.db"
    # Weight noise, like dropout, draws random numbers every batch: the resume must draw the same ones.
    _resume_matches_uninterrupted(
        tmp_path,
        MlflowClient(f"sqlite:///{db}"),
        db,
        [*SMALL, "trainer.max_epochs=5", "callbacks.weight_noise.std=0.05"],
        resume_in_subprocess=False,
    )


@pytest.mark.integration
def test_resume_cli_after_a_later_sigterm_equals_an_uninterrupted_run(tmp_path):
    db = tmp_path / "mlflow.db"
    # Best is epoch 0 only (monitoring the epoch, mode min), so the SIGTERM lands after epochs that saved
    # no best: the resume must start from the last finished epoch, not from the best one.
    overrides = [
        "cell=lstm",
        "model.bidirectional=true",
        "model.num_layers=2",
        "model.dropout=0.2",
        "model.hidden_size=32",
        "task=adding",
        "task.n_train=512",
        "trainer.max_epochs=8",
        "callbacks.model_checkpoint.monitor=epoch",
    ]
    _resume_matches_uninterrupted(
        tmp_path, MlflowClient(f"sqlite:///{db}"), db, overrides, resume_in_subprocess=True
    )


def test_resuming_an_unknown_or_finished_run_is_a_clear_error(original, client, tracking_uri):
    with pytest.raises(TrackingError, match="Cannot resume run 'no-such-run': there is no such run"):
        train(compose_config(["resume=no-such-run", f"tracking.uri={tracking_uri}"]))
    run_id = original.info.run_id
    with pytest.raises(TrackingError, match=f"Cannot resume run '{run_id}': it is FINISHED"):
        train(compose_config([f"resume={run_id}", f"tracking.uri={tracking_uri}"]))
    again = client.get_run(run_id)
    assert again.info.status == "FINISHED" and again.data.metrics == original.data.metrics


def test_the_rerun_a_refused_resume_suggests_runs_as_printed(
    original, client, tracking_uri, tmp_path, monkeypatch
):
    """The hint names the run's own store (not the default one) and this environment's script."""
    monkeypatch.chdir(
        tmp_path
    )  # where the user typed `seqlab resume=...` and then types the hint (the rerun's outputs/)
    with pytest.raises(TrackingError, match="it is FINISHED") as refused:
        train(compose_config([f"resume={original.info.run_id}", f"tracking.uri={tracking_uri}"]))
    command = str(refused.value).split("`")[1]
    before = {r.info.run_id for r in siblings(client, original)}
    done = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{command}: {done.stdout[-2000:]}{done.stderr[-2000:]}"
    [new] = [r for r in siblings(client, original) if r.info.run_id not in before]
    assert new.data.tags[names.RERUN_OF] == original.info.run_id and new.info.status == "FINISHED"


def test_resume_takes_no_other_overrides():
    from seqlab.preflight import preflight

    with pytest.raises(ConfigError, match=r"resume=<run id> takes the whole config.*model.hidden_size"):
        preflight(["resume=abc", "model.hidden_size=8"])
    preflight(["resume=abc", "tracking.uri=sqlite:///x.db"])  # where the run is may be given


# --- checkpoints written in the background ---------------------------------------------------------


class SlowCheckpointIO(TorchCheckpointIO):
    """A disk that takes its time, or fails: what makes a write lag behind the training thread."""

    def __init__(self, seconds: float = 0.3, fail: bool = False) -> None:
        self.seconds, self.fail = seconds, fail

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        time.sleep(self.seconds)
        if self.fail:
            raise OSError(f"No space left on device: {path}")
        super().save_checkpoint(checkpoint, path, storage_options)


def test_the_default_trainer_writes_checkpoints_in_the_background(make_cfg):
    from hydra.utils import instantiate

    trainer = instantiate(make_cfg(tiny=False).trainer, logger=False)
    assert isinstance(trainer.strategy.checkpoint_io, BackgroundCheckpointIO)
    synchronous = instantiate(make_cfg("trainer.plugins=null", tiny=False).trainer, logger=False)
    assert not isinstance(synchronous.strategy.checkpoint_io, AsyncCheckpointIO)  # the documented way back


def test_a_checkpoint_removed_while_its_write_is_queued_is_gone(tmp_path):
    # ModelCheckpoint saves a new best, then removes the old one; with slow writes the old one's write may
    # not have run yet. Upstream AsyncCheckpointIO removes at once, and the late write leaves it behind
    # (if a Lightning release fixes that, this fails: BackgroundCheckpointIO can then be dropped).
    old, new = tmp_path / "best-epoch000.ckpt", tmp_path / "best-epoch001.ckpt"
    for plugin_class, left in (
        (AsyncCheckpointIO, {old.name, new.name}),
        (BackgroundCheckpointIO, {new.name}),
    ):
        for path in (old, new):
            path.unlink(missing_ok=True)
        plugin = plugin_class(SlowCheckpointIO())
        plugin.save_checkpoint({"epoch": 0}, old)
        plugin.save_checkpoint({"epoch": 1}, new)
        plugin.remove_checkpoint(old)
        plugin.teardown()  # what Lightning calls when fit ends: waits for the queue
        assert {p.name for p in tmp_path.iterdir()} == left, plugin_class.__name__


def test_a_background_checkpoint_holds_the_state_at_save_time(tmp_path):
    weights = torch.zeros(3)
    plugin = BackgroundCheckpointIO(SlowCheckpointIO())
    plugin.save_checkpoint({"state_dict": {"w": weights}}, tmp_path / "last.ckpt")
    weights.add_(1.0)  # the next optimizer step, while the write is still queued
    plugin.teardown()
    assert torch.equal(torch.load(tmp_path / "last.ckpt")["state_dict"]["w"], torch.zeros(3))


def test_a_failed_background_write_fails_the_run_and_marks_it_failed(make_cfg, client):
    cfg = make_cfg("trainer.max_epochs=1")
    cfg.trainer.plugins = [
        {
            "_target_": "seqlab.reproduce.checkpoint.BackgroundCheckpointIO",
            "checkpoint_io": {"_target_": f"{__name__}.SlowCheckpointIO", "seconds": 0.0, "fail": True},
        }
    ]
    with pytest.raises(OSError, match="No space left on device"):
        train(cfg)
    (run,) = runs_of(client, cfg.tracking.experiment)
    assert run.info.status == "FAILED"


class CheckpointingSeen(L.Callback):
    """Counts the checkpoint callbacks each fit starts with: a config adds it, the test reads `counts`."""

    counts: ClassVar[list[int]] = []

    def on_fit_start(self, trainer, pl_module) -> None:
        CheckpointingSeen.counts.append(len(trainer.checkpoint_callbacks))


def test_switching_both_checkpoint_callbacks_off_saves_no_checkpoint(make_cfg):
    # Lightning's enable_checkpointing=None puts its default ModelCheckpoint in when a run has none, so a
    # user who switched both off to save disk would still get one every epoch. Asking for it
    # (trainer.enable_checkpointing=true) still gets it.
    seen = f"+callbacks.seen._target_={__name__}.CheckpointingSeen"
    without = ["callbacks.model_checkpoint=null", "callbacks.last_checkpoint=null"]
    CheckpointingSeen.counts.clear()
    saved = {}
    for case, overrides in {
        "off": without,
        "asked for": [*without, "trainer.enable_checkpointing=true"],
        "default": [],
    }.items():  # the default: seqlab's best and last
        cfg = make_cfg("trainer.max_epochs=2", seen, *overrides)
        train(cfg)
        saved[case] = bool(list(Path(cfg.paths.output_dir).rglob("*.ckpt")))
    assert CheckpointingSeen.counts == [0, 1, 2]
    assert saved == {"off": False, "asked for": True, "default": True}


@pytest.mark.parametrize("best_at", ["val/loss", "epoch"])
def test_a_run_leaves_one_best_checkpoint_and_a_last_one_holding_the_final_weights(
    best_at, make_cfg, client, tmp_path
):
    # Monitoring the epoch (mode min) makes epoch 0 the only best: since Lightning 2.6, save_last=True writes
    # last.ckpt only when a best is saved, so it would hold epoch 0 and a resume would redo three epochs.
    cfg = make_cfg(*SMALL, "trainer.max_epochs=4", f"callbacks.model_checkpoint.monitor={best_at}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        returned = train(cfg)
    # seqlab names the checkpoint it tests: Lightning's ckpt_path="best" warns each run about two callbacks
    assert not [w for w in caught if "multiple `ModelCheckpoint`" in str(w.message)]
    folder = Path(cfg.paths.output_dir) / "checkpoints"
    files = sorted(p.name for p in folder.iterdir())
    assert len(files) == 2 and files[1] == "last.ckpt" and files[0].startswith("best-epoch"), files
    last = torch.load(folder / "last.ckpt", weights_only=True)
    assert last["epoch"] == 3
    # last.ckpt holds what a resume needs; the best one the weights only (a third of Adam's bytes to write)
    best = torch.load(folder / files[0], weights_only=True)
    assert "optimizer_states" in last and "callbacks" in last
    assert "optimizer_states" not in best and best["state_dict"].keys() == last["state_dict"].keys()
    if best_at == "epoch":
        assert files[0] == "best-epoch000.ckpt"
        # the best callback, not last_checkpoint, is the one seqlab tests, logs and hands the sweeper
        # (Lightning takes the first ModelCheckpoint: this fails if the two swap places in the config)
        assert returned == 0.0  # the best score: epoch 0
        [run] = runs_of(client, cfg.tracking.experiment)
        logged = [a.path for a in client.list_artifacts(run.info.run_id, names.CHECKPOINT_ARTIFACTS)]
        assert logged == [f"{names.CHECKPOINT_ARTIFACTS}/best-epoch000.ckpt"], logged


def test_a_resume_finds_last_ckpt_where_callbacks_last_checkpoint_writes_it(
    make_cfg, client, tracking_uri, tmp_path
):
    # The run's tag names last_checkpoint's folder, not the best callback's (Lightning's checkpoint_callback):
    # a user may point the two at different folders.
    elsewhere = tmp_path / "elsewhere"
    cfg = make_cfg(*SMALL, "trainer.max_epochs=2", f"callbacks.last_checkpoint.dirpath={elsewhere}")
    train(cfg)
    [run] = runs_of(client, cfg.tracking.experiment)
    assert run.data.tags[names.CHECKPOINT_DIR] == str(elsewhere)
    client.set_terminated(run.info.run_id, "KILLED")  # as a SIGTERM after its last epoch leaves it
    point = resume_point(compose_config([f"resume={run.info.run_id}", f"tracking.uri={tracking_uri}"]))
    assert point.checkpoint == elsewhere / names.LAST_CHECKPOINT
    assert point.epoch == 2  # continues after the last finished epoch


def test_a_run_without_last_checkpoint_cannot_be_resumed_and_says_why(make_cfg, client, tracking_uri):
    # Lightning's save_last would not do: its last.ckpt is the last best epoch, not the last finished one.
    cfg = make_cfg(
        *SMALL,
        "trainer.max_epochs=1",
        "~callbacks.last_checkpoint",
        "callbacks.model_checkpoint.save_last=true",
    )
    train(cfg)
    [run] = runs_of(client, cfg.tracking.experiment)
    assert names.CHECKPOINT_DIR not in run.data.tags
    client.set_terminated(run.info.run_id, "KILLED")
    with pytest.raises(
        TrackingError, match=r"records no checkpoint folder.*without callbacks.last_checkpoint"
    ):
        resume_point(compose_config([f"resume={run.info.run_id}", f"tracking.uri={tracking_uri}"]))


@pytest.mark.parametrize("drop", ["~callbacks.model_checkpoint", "callbacks.model_checkpoint=null"])
def test_without_the_best_checkpoint_a_run_returns_its_final_val_loss(drop, make_cfg, client):
    # The value a sweeper minimizes. With callbacks.model_checkpoint dropped (deleted, or set to null as
    # lightning-hydra-template users do), Lightning's checkpoint_callback is callbacks.last_checkpoint,
    # which monitors nothing and has no best score.
    cfg = make_cfg(*SMALL, "trainer.max_epochs=2", drop)
    value = train(cfg)
    [run] = runs_of(client, cfg.tracking.experiment)
    assert value == pytest.approx(run.data.metrics[names.VAL_LOSS])


@pytest.mark.parametrize("deterministic", [True, False])
def test_build_sets_torch_numerics_as_the_trainer_will(deterministic, make_cfg, monkeypatch):
    # The benchmarks' bare loop has no Trainer, so build() itself sets what trainer.deterministic asks
    # (whatever ran before in the process), and deterministic mode comes without its NaN fill; and, as
    # the Trainer does, the cuBLAS workspace setting without which deterministic mode fails on a GPU.
    import torch.utils.deterministic

    from seqlab.train import build

    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    before = torch.are_deterministic_algorithms_enabled(), torch.utils.deterministic.fill_uninitialized_memory
    try:
        torch.use_deterministic_algorithms(not deterministic)
        torch.utils.deterministic.fill_uninitialized_memory = True
        build(make_cfg(f"trainer.deterministic={deterministic}"))
        assert torch.are_deterministic_algorithms_enabled() is deterministic
        assert torch.utils.deterministic.fill_uninitialized_memory is False
        assert os.environ.get("CUBLAS_WORKSPACE_CONFIG") == (":4096:8" if deterministic else None)
    finally:
        torch.use_deterministic_algorithms(before[0])
        torch.utils.deterministic.fill_uninitialized_memory = before[1]


def test_every_training_batch_starts_from_its_own_seed(make_cfg, tmp_path):
    # The seeds are worked out once an epoch (for speed); each batch must still get batch_seed(seed, epoch,
    # batch), which is what a resumed epoch replays. Checked on the generator itself, after the reseed.
    import lightning as L
    from hydra.utils import instantiate

    from seqlab.reproduce.seeding import BatchReseed, batch_seed
    from seqlab.train import build

    class SeedProbe(L.Callback):
        def __init__(self) -> None:
            self.seen: list[tuple[int, int, int]] = []

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            self.seen.append((trainer.current_epoch, batch_idx, torch.initial_seed()))

    cfg = make_cfg("seed=7", "trainer.max_epochs=2", "trainer.limit_train_batches=3")
    task, module = build(cfg)
    probe = SeedProbe()
    trainer = instantiate(
        cfg.trainer,
        logger=False,
        enable_checkpointing=False,
        default_root_dir=str(tmp_path),
        callbacks=[BatchReseed(7), probe],
    )
    trainer.fit(module, datamodule=task)

    assert [(e, b) for e, b, _ in probe.seen] == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    assert [s for _, _, s in probe.seen] == [batch_seed(7, e, b) for e, b, _ in probe.seen]
    assert len({s for _, _, s in probe.seen}) == 6


@pytest.mark.parametrize("batches", [float("inf"), 2])
def test_batches_beyond_the_precomputed_seeds_still_get_their_own(batches):
    # Lightning reports num_training_batches=inf for a loader without a length: the reseed then works each
    # seed out at its batch, as it does past the end of the seeds it worked out at the epoch start.
    from types import SimpleNamespace

    from seqlab.reproduce.seeding import BatchReseed, batch_seed

    reseed, trainer = BatchReseed(7), SimpleNamespace(current_epoch=3, num_training_batches=batches)
    reseed.on_train_epoch_start(trainer, None)
    for batch_idx in range(4):
        reseed.on_train_batch_start(trainer, None, None, batch_idx)
        assert torch.initial_seed() == batch_seed(7, 3, batch_idx)
