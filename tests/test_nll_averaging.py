"""NLL averaging of music runs: the three means on known numbers, and recomputed from a real run's weights."""

import math
from pathlib import Path

import pytest
import torch
from conftest import require_files, runs_of, tiny_config, use_cache
from mlflow import MlflowClient
from omegaconf import DictConfig
from torch.nn import functional as F

from seqlab import names
from seqlab.errors import TrackingError
from seqlab.reports.nll_averaging import PieceNLLs, best_checkpoint, main, run_nlls
from seqlab.train import build, train


def test_the_three_means_weight_steps_pieces_and_first_steps_as_documented():
    # a long easy piece and a short hard one: the per-step mean follows the long one, the per-piece mean
    # weights both alike
    nlls = PieceNLLs(
        total=torch.tensor([10.0, 6.0], dtype=torch.float64),
        steps=torch.tensor([10, 2]),
        first=torch.tensor([4.0, 5.0], dtype=torch.float64),
    )
    assert nlls.per_step() == pytest.approx(16 / 12)
    assert nlls.per_piece() == pytest.approx((1.0 + 3.0) / 2)
    assert nlls.without_first_step() == pytest.approx((6.0 + 1.0) / (9 + 1))


def _music_run(cache: Path, output_root: Path, tracking_uri: str, *overrides: str) -> tuple[str, DictConfig]:
    require_files(cache, "JSB_Chorales.mat")
    # test/nll over every test piece
    cfg = tiny_config(output_root, tracking_uri, "task=music", "trainer.limit_test_batches=1.0", *overrides)
    with pytest.MonkeyPatch.context() as monkeypatch:
        use_cache(monkeypatch, cache)
        train(cfg)
    [run] = runs_of(MlflowClient(tracking_uri), cfg.tracking.experiment)
    assert run.info.status == "FINISHED"
    return run.info.run_id, cfg


@pytest.fixture(scope="module")
def music_run(_seeded_cache, tracking_uri, tmp_path_factory) -> tuple[str, DictConfig]:
    """One GRU run on JSB that several tests below read (training it is the slow part)."""
    return _music_run(_seeded_cache, tmp_path_factory.mktemp("music"), tracking_uri, "cell=gru")


def test_recomputed_per_step_nll_is_the_logged_test_nll_and_per_piece_is_each_pieces_own_mean(
    music_run, client, data_cache, tmp_path
):
    run_id, cfg = music_run
    result = run_nlls(client, run_id)
    nlls = result.nlls
    assert (result.dataset, result.cell) == ("jsb", "gru")
    assert math.isclose(
        nlls.per_step(), result.logged, rel_tol=1e-5
    )  # the logged best checkpoint is what was tested

    # per piece by hand, one unpadded piece at a time: batching and padding must not change any piece's NLL
    task, module = build(cfg)
    test = task.splits[names.TEST]
    module.load_state_dict(
        torch.load(best_checkpoint(client, run_id, tmp_path), weights_only=True)["state_dict"]
    )
    module.eval()
    sums, counts = [], []
    with torch.inference_mode():
        for i in range(len(test)):
            piece = test[torch.tensor([i])]
            nll = F.binary_cross_entropy_with_logits(
                module.net(piece["x"]), piece["y"], reduction="none"
            ).sum(-1)
            sums.append(nll[piece["mask"]].double().sum())
            counts.append(int(piece["mask"].sum()))
    assert sorted(nlls.steps.tolist()) == sorted(counts)  # every piece once (evaluated in length order)
    by_hand = torch.stack(sums)
    assert nlls.per_piece() == pytest.approx(float((by_hand / torch.tensor(counts)).mean()), rel=1e-6)
    assert nlls.per_step() == pytest.approx(float(by_hand.sum() / sum(counts)), rel=1e-6)


def test_probability_outputs_are_scored_as_probabilities(
    _seeded_cache, data_cache, tracking_uri, client, tmp_path
):
    run_id, _ = _music_run(_seeded_cache, tmp_path, tracking_uri, "loss=bce")
    result = run_nlls(client, run_id)
    assert math.isclose(result.nlls.per_step(), result.logged, rel_tol=1e-5)


def test_sweep_expands_to_its_finished_jobs_and_each_cell_gets_its_means(
    music_run, data_cache, client, tracking_uri, capsys
):
    run_id, _ = music_run
    experiment_id = client.get_run(run_id).info.experiment_id
    parent = client.create_run(experiment_id, run_name="sweep").info.run_id
    client.set_tag(run_id, names.PARENT_RUN_TAG, parent)
    main(["--sweep", parent, "--tracking-uri", tracking_uri])
    lines = capsys.readouterr().out.splitlines()
    per_step = f"{run_nlls(client, run_id).nlls.per_step():.3f}"
    [row] = [line for line in lines if line.endswith(" 77") and "jsb" in line]
    assert row.split()[2:4] == [per_step, per_step]  # logged test/nll and recomputed per step agree
    assert lines[-2] == "mean over the runs of each cell:"
    assert lines[-1].split()[:3] == ["gru", "jsb", per_step] and lines[-1].endswith("x1")


def test_no_runs_given_is_a_usage_error(tracking_uri, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--tracking-uri", tracking_uri])
    assert exit_.value.code == 2
    assert "give RUN_IDs, or --sweep" in capsys.readouterr().err


def test_a_run_of_another_task_is_refused_with_the_reason(make_cfg, client, tracking_uri, capsys):
    cfg = make_cfg("task=adding")
    train(cfg)
    [run] = runs_of(client, cfg.tracking.experiment)
    with pytest.raises(TrackingError, match="music task only"):
        run_nlls(client, run.info.run_id)
    with pytest.raises(SystemExit) as exit_:
        main([run.info.run_id, "--tracking-uri", tracking_uri])
    assert exit_.value.code == 2
    assert "music task only" in capsys.readouterr().err


def test_a_run_without_a_logged_checkpoint_or_a_wrong_sweep_id_is_refused_with_the_reason(
    client, tracking_uri, tmp_path, capsys
):
    experiment_id = client.create_experiment("nll-averaging-no-checkpoint")
    run_id = client.create_run(experiment_id).info.run_id  # as a run that failed before its first checkpoint
    with pytest.raises(TrackingError, match="no checkpoint under its 'checkpoints' artifacts"):
        best_checkpoint(client, run_id, tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(["--sweep", "0" * 32, "--tracking-uri", tracking_uri])
    assert exit_.value.code == 2
    assert f"run '{'0' * 32}': there is no such run" in capsys.readouterr().err


def test_a_dead_tracking_server_is_named_at_once(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["0" * 32, "--tracking-uri", "http://127.0.0.1:9"])  # the discard port: nothing answers
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "http://127.0.0.1:9" in err and "nothing was trained, read or logged" in err
