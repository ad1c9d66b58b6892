"""seqlab-compare puts every task's trivial baselines beside the configurations, and says whether any
configuration beats the best of them (runs with known metrics in a real SQLite store)."""

import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric, Param

from seqlab import names
from seqlab.reports.compare import compare, runs_to_compare, to_text

BASELINES = {
    "persistence_mse": 0.034,
    "mean_mse": 1.88,
    "persistence_mae": 0.12,
    "persistence_mse_original": 2.9,
}


def _store(tmp_path, test_mse: dict[str, list[float]]) -> tuple[MlflowClient, str]:
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("baselines")
    parent = client.create_run(experiment, run_name="sweep").info.run_id
    for cell, values in test_mse.items():
        for seed, value in enumerate(values):
            run_id = client.create_run(experiment, tags={names.PARENT_RUN_TAG: parent}).info.run_id
            metrics = {"test/mse": value, "test/mae": value * 4, "test/mse_original": value * 80}
            metrics |= {names.baseline_key(names.TEST, k): v for k, v in BASELINES.items()}
            client.log_batch(
                run_id,
                metrics=[Metric(k, v, 0, 0) for k, v in metrics.items()],
                params=[Param("cell.name", cell), Param("seed", str(seed))],
            )
            client.set_terminated(run_id)
    client.set_terminated(parent)
    return client, parent


def test_no_configuration_beating_the_baseline_is_said_plainly(tmp_path):
    client, parent = _store(tmp_path, {"gru": [0.066, 0.063], "lstm": [0.09, 0.1]})
    comparison = compare(runs_to_compare(client, parent), "test/mse")
    assert comparison.best_baseline() == ("persistence", pytest.approx(0.034))
    note = comparison.baseline_note
    assert note.startswith("No configuration beats the best trivial baseline: persistence scores 0.034")
    assert "worse by 0.0305" in note
    text = to_text(comparison, width=400)
    assert note in text.replace("\n    ", " ")
    # a row per baseline, in the ranked metric's column and the others it scores like
    rows = {line.split()[1]: line for line in text.splitlines() if line.startswith("baseline")}
    assert set(rows) == {"persistence", "mean"}
    assert "0.034" in rows["persistence"] and "1.88" in rows["mean"] and "0.12" in rows["persistence"]
    # baselines are rows, never model metric columns
    assert not any("baseline" in metric for row in comparison.rows for metric in row.metrics)


def test_a_configuration_beating_the_baseline_is_credited_with_its_margin(tmp_path):
    client, parent = _store(tmp_path, {"gru": [0.029, 0.030], "lstm": [0.04, 0.05]})
    comparison = compare(runs_to_compare(client, parent), "test/mse")
    assert comparison.baseline_note == (
        "The best configuration (cell.name=gru) beats the best trivial baseline (persistence, 0.034) on "
        "test/mse by 0.0045 (13%)."
    )


def test_a_baseline_in_the_data_units_is_matched_to_that_metric(tmp_path):
    client, parent = _store(tmp_path, {"gru": [0.029, 0.030]})
    comparison = compare(runs_to_compare(client, parent), "test/mse_original")
    assert comparison.baselines["persistence"]["test/mse_original"] == pytest.approx(2.9)
    assert comparison.best_baseline() == ("persistence", pytest.approx(2.9))


def test_the_plot_draws_each_baseline_as_a_line(tmp_path, monkeypatch):
    from seqlab.reports import compare as compare_module
    from seqlab.reports import plots

    drawn = []
    monkeypatch.setattr(plots, "save", lambda fig, path: drawn.append(fig) or path)
    client, parent = _store(tmp_path, {"gru": [0.066, 0.063], "lstm": [0.09, 0.1]})
    comparison = compare(runs_to_compare(client, parent), "test/mse")
    compare_module.plot(comparison, client, tmp_path / "comparison.png")
    [figure] = drawn
    lines = {line.get_label(): line.get_ydata()[0] for line in figure.axes[0].get_lines()}
    assert lines["baseline: persistence"] == pytest.approx(0.034)
    assert lines["baseline: mean"] == pytest.approx(1.88)
