"""seqlab-compare --x: difficulty curves and their table; learning curves; gradient flow per configuration.

On sweeps with known numbers in a real SQLite store (tests/known_sweeps.py), and on a real tiny sweep over
two lengths of the adding problem."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY, seqlab_env
from known_sweeps import CHANCE, HORIZON, MSE, difficulty_sweep, per_epoch_s
from mlflow import MlflowClient
from scipy import stats

from seqlab import names
from seqlab.reports import figures
from seqlab.reports.compare import compare_over, difficulty_table, main, runs_to_compare
from seqlab.reports.histories import read_into

pytestmark = pytest.mark.integration


def _difficulty(client, experiment):
    parent = difficulty_sweep(client, experiment)
    difficulty = compare_over(runs_to_compare(client, parent), "task.length", "test/mse")
    read_into(difficulty.rows, client, "test/mse")
    return parent, difficulty


def test_a_row_per_configuration_and_length_with_its_ci(tracking_uri):
    client = MlflowClient(tracking_uri)
    _, difficulty = _difficulty(client, "difficulty-table")
    assert list(difficulty.by_value) == [10.0, 40.0]
    header, body = difficulty_table(difficulty)
    assert header[:4] == ["", "task.length", "configuration", "seeds"]
    rows = {(cells[1], cells[2]): dict(zip(header, cells, strict=True)) for cells in body}
    # every (length, cell) and the baseline at each length, best first within a length
    assert list(rows) == [
        ("10", "cell.name=gru"),
        ("10", "cell.name=rnn"),
        ("10", "mean"),
        ("40", "cell.name=gru"),
        ("40", "cell.name=rnn"),
        ("40", "mean"),
    ]
    for (length, label), row in rows.items():
        if label == "mean":
            assert row["test/mse mean"] == f"{CHANCE:.4g}" and row[""] == "baseline"
            continue
        values = MSE[label.split("=")[1], int(length)]
        low, high = stats.t.interval(0.95, 2, loc=np.mean(values), scale=stats.sem(values))
        assert row["test/mse mean"] == f"{np.mean(values):.4g}"
        assert row["test/mse 95% CI"] == f"[{low:.4g}, {high:.4g}]"
        assert row["gradient horizon mean"] == f"{np.mean(HORIZON[label.split('=')[1], int(length)]):.4g}"
        assert row["s / epoch"] == f"{per_epoch_s(label.split('=')[1], int(length)):.4g}"
    p = stats.ttest_ind(MSE["gru", 40], MSE["rnn", 40], equal_var=False).pvalue
    assert rows["40", "cell.name=rnn"]["Welch p vs best (< 0.05: apart)"] == f"{p:.3g}"


def test_the_difficulty_plot_draws_each_cell_against_the_length_with_its_ci(
    tracking_uri, tmp_path, monkeypatch
):
    client = MlflowClient(tracking_uri)
    _, difficulty = _difficulty(client, "difficulty-plot")
    drawn = []
    monkeypatch.setattr(figures, "save", lambda fig, path: drawn.append(fig) or path)
    figures.difficulty_curves(
        "task.length", "test/mse", difficulty.lines, difficulty.chance, tmp_path / "d.png"
    )
    ax = drawn[0].axes[0]
    lines = {c.get_label(): c.lines[0] for c in ax.containers}  # an errorbar: its line, caps and bars
    lines |= {line.get_label(): line for line in ax.lines if not line.get_label().startswith("_")}
    for cell in ("rnn", "gru"):
        line = lines[f"cell.name={cell}"]
        assert list(line.get_xdata()) == [10.0, 40.0]
        assert list(line.get_ydata()) == pytest.approx([np.mean(MSE[cell, 10]), np.mean(MSE[cell, 40])])
    assert list(lines["best trivial baseline"].get_ydata()) == pytest.approx([CHANCE, CHANCE])
    # the 95% CI as error bars: one bar per point, half the CI's width
    bars = [c for c in ax.collections if len(c.get_segments()) == 2]
    half = stats.t.ppf(0.975, 2) * stats.sem(MSE["gru", 40])
    assert any(seg[1][1] - seg[0][1] == pytest.approx(2 * half) for c in bars for seg in c.get_segments())


def test_the_verdict_says_where_each_cell_stops_beating_chance(tracking_uri):
    client = MlflowClient(tracking_uri)
    _, difficulty = _difficulty(client, "difficulty-verdict")
    reading = difficulty.reading
    assert (
        "At task.length=10: cell.name=gru is best on test/mse, significantly better than cell.name=rnn"
        in reading
    )
    assert "cell.name=gru at every task.length (10, 40)" in reading
    assert "cell.name=rnn at task.length=10 (not at 40)" in reading  # 0.171 > the baseline's 0.167


def test_learning_curves_are_the_mean_over_seeds_per_epoch_with_a_band(tracking_uri, tmp_path, monkeypatch):
    client = MlflowClient(tracking_uri)
    _, difficulty = _difficulty(client, "difficulty-learning")
    rows = difficulty.by_value[40.0].rows
    drawn = []
    monkeypatch.setattr(figures, "save", lambda fig, path: drawn.append(fig) or path)
    figures.learning_curves(rows, "val/mse", tmp_path / "l.png")
    line = next(x for x in drawn[0].axes[0].lines if x.get_label() == "cell.name=gru")
    curves = [[v * (4 - e) for e in range(3 + seed)] for seed, v in enumerate(MSE["gru", 40])]
    # epochs 1-3 have three seeds, epoch 4 two, epoch 5 one: each mean over the seeds that got there
    expected = [np.mean([c[e] for c in curves if len(c) > e]) for e in range(5)]
    assert list(line.get_xdata()) == [1, 2, 3, 4, 5]
    assert list(line.get_ydata()) == pytest.approx(expected)
    assert len(drawn[0].axes[0].collections) == 2  # a band per configuration


def test_gradient_flows_are_overlaid_as_the_mean_over_seeds(tracking_uri, tmp_path, monkeypatch):
    client = MlflowClient(tracking_uri)
    _, difficulty = _difficulty(client, "difficulty-flow")
    rows = difficulty.by_value[10.0].rows
    assert all(len(row.flows) == 3 for row in rows)
    drawn = []
    monkeypatch.setattr(figures, "save", lambda fig, path: drawn.append(fig) or path)
    figures.gradient_flows(rows, tmp_path / "g.png", 0.01)
    line = next(x for x in drawn[0].axes[0].lines if x.get_label() == "cell.name=rnn")
    assert list(line.get_ydata()) == pytest.approx([0.6**k for k in range(20)], rel=1e-4)
    assert drawn[0].axes[0].get_yscale() == "log"


def test_the_cli_prints_and_logs_the_difficulty_table_and_plot(tracking_uri, capsys, tmp_path):
    client = MlflowClient(tracking_uri)
    parent = difficulty_sweep(client, "difficulty-cli")
    main([parent, "--tracking-uri", tracking_uri, "--metric", "test/mse", "--x", "task.length"])
    out = capsys.readouterr().out
    header, first = out.splitlines()[:2]
    assert header.split()[:2] == ["task.length", "configuration"]
    assert first.split()[:3] == ["best", "10", "cell.name=gru"]
    logged = {f.path.split("/")[-1] for f in client.list_artifacts(parent, names.COMPARISON_ARTIFACTS)}
    assert {"comparison.md", "comparison.csv", "comparison.png", "report.html"} <= logged
    table = Path(client.download_artifacts(parent, "comparison/comparison.csv", str(tmp_path))).read_text()
    assert table.splitlines()[0].startswith(",task.length,configuration,seeds,test/mse mean")
    assert len(table.splitlines()) == 1 + 6  # 2 lengths x (2 cells + the baseline)


@pytest.mark.parametrize(
    "key,said",
    [
        ("cell.name", "its values (gru, rnn) are not all numbers"),
        ("task.lenght", "no run has the param 'task.lenght'"),
    ],
)
def test_a_key_that_cannot_be_plotted_against_is_named_with_the_keys_that_can(
    key, said, tracking_uri, capsys
):
    client = MlflowClient(tracking_uri)
    parent = difficulty_sweep(client, f"difficulty-bad-{key}")
    with pytest.raises(SystemExit) as exit_:
        main([parent, "--tracking-uri", tracking_uri, "--x", key])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"seqlab-compare: --x {key}: {said}.") and "here: task.length, time" not in err
    assert "here: task.length." in err


def test_a_real_sweep_over_two_lengths_gives_the_difficulty_table_and_plot(tmp_path, capsys):
    db = tmp_path / "mlflow.db"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "seqlab.train",
            "-m",
            f"tracking.uri=sqlite:///{db}",
            *TINY,
            "task=adding",
            "task.length=8,16",
            "task.n_train=256",
            "task.n_val=64",
            "task.n_test=64",
            "cell=rnn,gru",
            "seed=0,1",
            "model.hidden_size=8",
            "tracking.system_metrics=false",
        ],
        cwd=tmp_path,
        env=seqlab_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    client = MlflowClient(f"sqlite:///{db}")
    experiment = client.get_experiment_by_name("seqlab")
    [parent] = [
        r for r in client.search_runs([experiment.experiment_id]) if names.PARENT_RUN_TAG not in r.data.tags
    ]
    main([parent.info.run_id, "--tracking-uri", f"sqlite:///{db}", "--x", "task.length"])
    out = capsys.readouterr().out
    table = [line.split() for line in out.splitlines() if "cell.name=" in line and "is best" not in line]
    # a row per cell at each length; the first block of columns leads with the mark, length and cell
    shown = {(cells[1], cells[2]) if cells[0] == "best" else (cells[0], cells[1]) for cells in table}
    assert {
        ("8", "cell.name=rnn"),
        ("8", "cell.name=gru"),
        ("16", "cell.name=rnn"),
        ("16", "cell.name=gru"),
    } <= shown
    assert "At task.length=8:" in out and "At task.length=16:" in out
    assert "Gradient horizons (steps back, mean over seeds) by task.length" in out.replace("\n    ", " ")
    png = Path(client.download_artifacts(parent.info.run_id, "comparison/comparison.png", str(tmp_path)))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_memory_horizon_preset_sweeps_lengths_cells_and_seeds_at_one_budget():
    from conftest import REPO, compose_config
    from omegaconf import OmegaConf

    from seqlab.preflight import preflight

    cfg = compose_config(["experiment=memory_horizon"])
    params = OmegaConf.load(REPO / "conf" / "experiment" / "memory_horizon.yaml").hydra.sweeper.params
    assert [int(v) for v in params["task.length"].split(",")] == [25, 50, 100, 200, 400]
    assert sorted(params.cell.split(",")) == ["gru", "lstm", "rnn"] and params.seed == "0,1,2"
    assert cfg.task._target_.endswith("AddingTask") and cfg.model.param_budget == 3000
    assert cfg.model.readout == "last" and not cfg.model.bidirectional  # so gradient flow is measured
    assert (
        len(preflight(["-m", "experiment=memory_horizon"])) == 5 * 3 * 3
    )  # every job valid, before any runs
