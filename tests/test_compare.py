"""seqlab-compare's statistics on runs with known metrics in a real SQLite store, checked against scipy."""

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric, Param
from scipy import stats

from seqlab import names
from seqlab.reports.compare import compare, main, runs_to_compare

# test/loss per cell and seed: gru is best, clearly apart from the runner-up lstm
LOSSES = {"rnn": [0.30, 0.34, 0.29], "lstm": [0.150, 0.160, 0.155], "gru": [0.100, 0.105, 0.098]}
N_PARAMS = {"rnn": 4417, "lstm": 17185, "gru": 12961}


def _sweep(
    client: MlflowClient,
    experiment: str,
    losses: dict[str, list[float]],
    more_params: Callable[[str], dict[str, str]] = lambda cell: {},
) -> str:
    experiment_id = client.create_experiment(experiment)
    parent = client.create_run(experiment_id, run_name="sweep cell=rnn,lstm,gru seed=0,1,2").info.run_id
    for cell, values in losses.items():
        for seed, value in enumerate(values):
            run = client.create_run(
                experiment_id, run_name=f"{cell}-s{seed}", tags={names.PARENT_RUN_TAG: parent}
            )
            run_id = run.info.run_id
            params = {
                "cell.name": cell,
                "seed": str(seed),
                "task.seed": str(seed),
                names.N_PARAMS: str(N_PARAMS[cell]),
                # split sizes follow from the configuration (a forecast horizon, a chunk length): no label
                names.N_TRAIN: str(len(cell) * 100),
                names.N_VAL: str(len(cell) * 10),
                # the width a parameter budget chose for the cell: implied by it, so no label either
                "model.hidden_size": str(N_PARAMS[cell] // 100),
                "model.head_hidden": "36" if cell == "lstm" else "None",
                "tracking.uri": "sqlite:///x.db",
                # seed 0 ran in a joblib sweep, the others with torch_threads=1: how a job ran, not
                # another configuration, so the rows must not split on it
                "torch_threads": "None" if seed == 0 else "1",
                names.TORCH_THREADS: "1",
            }
            params.update(more_params(cell))
            if seed:  # seed 0 ran before seqlab set trainer.plugins (how checkpoints are written): same rows
                params["trainer.plugins"] = (
                    "[{'_target_': 'seqlab.reproduce.checkpoint.BackgroundCheckpointIO'}]"
                )
            metrics = [
                Metric(names.TEST_LOSS, value, 0, 0),
                Metric("test/mae", value / 2, 0, 0),
                Metric(names.TIME_FIT, 10.0 + seed, 0, 0),
            ]
            metrics += [Metric(names.VAL_LOSS, value * (3 - step), 0, step) for step in range(3)]
            client.log_batch(run_id, metrics=metrics, params=[Param(k, v) for k, v in params.items()])
            client.set_terminated(run_id, "FINISHED")
    failed = client.create_run(experiment_id, tags={names.PARENT_RUN_TAG: parent}).info.run_id  # not counted
    client.log_batch(
        failed, metrics=[Metric(names.TEST_LOSS, 99.0, 0, 0)], params=[Param("cell.name", "gru")]
    )
    client.set_terminated(failed, "FAILED")
    client.set_terminated(parent, "FINISHED")
    return parent


def test_means_cis_and_welch_test_match_scipy(tracking_uri):
    client = MlflowClient(tracking_uri)
    parent = _sweep(client, "compare-known", LOSSES)
    comparison = compare(runs_to_compare(client, parent), names.TEST_LOSS)

    assert [r.label for r in comparison.rows] == ["cell.name=gru", "cell.name=lstm", "cell.name=rnn"]
    for row in comparison.rows:
        values = LOSSES[row.label.split("=")[1]]
        s = row.metrics[names.TEST_LOSS]
        low, high = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
        assert (s.n, s.mean, s.std) == (
            3,
            pytest.approx(np.mean(values)),
            pytest.approx(np.std(values, ddof=1)),
        )
        assert (s.ci_low, s.ci_high) == (pytest.approx(low), pytest.approx(high))
        assert row.metrics["test/mae"].mean == pytest.approx(np.mean(values) / 2)
        assert row.fit_s == pytest.approx(11.0)
    expected_p = stats.ttest_ind(LOSSES["gru"], LOSSES["lstm"], equal_var=False).pvalue
    assert comparison.p_value == pytest.approx(expected_p)
    assert expected_p < 0.05 and "significantly better than cell.name=lstm" in comparison.verdict


def test_overlapping_seeds_are_called_noise(tracking_uri):
    client = MlflowClient(tracking_uri)
    close = {"lstm": [0.11, 0.13, 0.10], "gru": [0.12, 0.10, 0.11]}
    comparison = compare(runs_to_compare(client, _sweep(client, "compare-noise", close)))
    assert comparison.rows[0].label == "cell.name=gru"  # mean 0.110 vs 0.1133
    assert comparison.p_value == pytest.approx(
        stats.ttest_ind(close["gru"], close["lstm"], equal_var=False).pvalue
    )
    assert comparison.p_value > 0.05 and "within noise" in comparison.verdict


def test_cli_prints_the_table_and_logs_it_to_the_parent(tracking_uri, capsys, tmp_path):
    client = MlflowClient(tracking_uri)
    parent = _sweep(client, "compare-cli", LOSSES)
    main([parent, "--tracking-uri", tracking_uri])
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[1].startswith("best") and "cell.name=gru" in lines[1] and "12961" in lines[1]
    assert f"{np.mean(LOSSES['gru']):.4g}" in lines[1]
    assert "significantly better" in out
    logged = {f.path for f in client.list_artifacts(parent, names.COMPARISON_ARTIFACTS)}
    expected = [*(f"comparison.{ext}" for ext in ("md", "csv", "png")), "report.html"]
    assert logged == {f"{names.COMPARISON_ARTIFACTS}/{name}" for name in expected}
    markdown = Path(
        client.download_artifacts(parent, f"{names.COMPARISON_ARTIFACTS}/comparison.md", str(tmp_path))
    ).read_text()
    assert "| best | cell.name=gru | 3 |" in markdown
    # --experiment: the same runs without the parent
    main(["--experiment", "compare-cli", "--tracking-uri", tracking_uri])
    assert "cell.name=gru" in capsys.readouterr().out.splitlines()[1]


def test_cli_names_a_missing_metric(tracking_uri, capsys):
    client = MlflowClient(tracking_uri)
    parent = _sweep(client, "compare-metric", {"gru": [0.1, 0.2], "lstm": [0.3, 0.4]})
    with pytest.raises(SystemExit) as exit_:
        main([parent, "--tracking-uri", tracking_uri, "--metric", "test/accuracy"])
    assert exit_.value.code == 1
    assert "no run has the metric 'test/accuracy'" in capsys.readouterr().err


@pytest.mark.parametrize("which", ["parent", "experiment"])
def test_cli_names_a_sweep_or_experiment_that_is_not_in_the_store(which, tracking_uri, capsys):
    args = ["0" * 32] if which == "parent" else ["--experiment", "no-such-experiment"]
    with pytest.raises(SystemExit) as exit_:
        main([*args, "--tracking-uri", tracking_uri])
    assert exit_.value.code == 1
    err = capsys.readouterr().err
    expected = (
        f"run '{'0' * 32}': there is no such run"
        if which == "parent"
        else "no experiment named 'no-such-experiment'"
    )
    assert err.startswith("seqlab-compare: ") and expected in err, err


# What a preset's published block becomes in a run's params (conf/experiment/chung2014*.yaml)
PAPER = {
    "published.source": "A paper, Table 9",
    "published.metric": names.TEST_LOSS,
    "published.by": "cell.name",
    "published.numbers.gru": "0.2",
    "published.numbers.lstm": "0.155",
    "published.numbers.rnn": "0.25",
    "published.setting.task.dataset": "jsb",
    "published.setting.model.param_budget": "20000",
}


def test_published_numbers_sit_beside_the_runs_own(tracking_uri, capsys, tmp_path):
    # gru beats the paper by far, lstm's 95% CI holds the paper's number, and rnn ran on another
    # dataset than the paper's: no number for it, and the note says why
    client = MlflowClient(tracking_uri)
    parent = _sweep(
        client,
        "compare-published",
        LOSSES,
        lambda cell: {
            **PAPER,
            "model.param_budget": "20000",
            "task.dataset": "nottingham" if cell == "rnn" else "jsb",
        },
    )
    comparison = compare(runs_to_compare(client, parent), names.TEST_LOSS)
    rows = {row.label.split()[0]: row for row in comparison.rows}
    assert comparison.published_source == "A paper, Table 9"
    assert (rows["cell.name=gru"].published, rows["cell.name=lstm"].published) == (0.2, 0.155)
    assert (
        rows["cell.name=gru"].against_published(names.TEST_LOSS)
        == f"better by {0.2 - np.mean(LOSSES['gru']):.3g}"
    )
    assert rows["cell.name=lstm"].against_published(names.TEST_LOSS) == "a tie (inside the 95% CI)"
    assert rows["cell.name=rnn"].published is None
    assert rows["cell.name=rnn"].unpublished == "task.dataset=nottingham, the paper's jsb"
    # the published.* params describe the paper, not a configuration: the rows split on cell and dataset only
    assert sorted(rows) == ["cell.name=gru", "cell.name=lstm", "cell.name=rnn"]

    main([parent, "--tracking-uri", tracking_uri])
    out = capsys.readouterr().out
    assert "published test/loss" in out.splitlines()[0] and "vs published" in out.splitlines()[0]
    assert (
        "published: A paper, Table 9, test/loss" in out and "task.dataset=nottingham, the paper's jsb" in out
    )
    markdown = Path(
        client.download_artifacts(parent, f"{names.COMPARISON_ARTIFACTS}/comparison.md", str(tmp_path))
    ).read_text()
    assert "| 0.2 | better by" in markdown and "| 0.155 | a tie (inside the 95% CI) |" in markdown
    # ranked on another metric than the paper's numbers are for: no published column at all
    main([parent, "--tracking-uri", tracking_uri, "--metric", "test/mae"])
    assert "published" not in capsys.readouterr().out


def test_a_short_row_is_called_short_and_higher_is_better_flips_it(tracking_uri):
    client = MlflowClient(tracking_uri)
    parent = _sweep(
        client,
        "compare-short",
        {"gru": [0.30, 0.31, 0.32]},
        lambda cell: {**PAPER, "task.dataset": "jsb", "model.param_budget": "20000"},
    )
    [row] = compare(runs_to_compare(client, parent), names.TEST_LOSS).rows
    assert row.against_published(names.TEST_LOSS) == "short by 0.11"  # loss 0.31 against the paper's 0.2
    assert row.against_published("test/accuracy") == ""  # no such metric in the row
    row.metrics["test/accuracy"] = row.metrics[names.TEST_LOSS]
    assert row.against_published("test/accuracy") == "better by 0.11"  # an accuracy of 0.31 beats 0.2


def test_a_width_set_by_hand_stays_in_the_labels(tracking_uri):
    # a hand sweep of model.hidden_size for one cell: the width is what tells the rows apart, so it stays
    client = MlflowClient(tracking_uri)
    parent = _sweep(
        client,
        "compare-widths",
        {"gru": [0.1, 0.2], "lstm": [0.3, 0.4]},
        lambda cell: {
            "cell.name": "gru",
            "model.head_hidden": "None",
            "model.hidden_size": "32" if cell == "gru" else "64",
        },
    )
    assert sorted(r.label for r in compare(runs_to_compare(client, parent)).rows) == [
        "model.hidden_size=32",
        "model.hidden_size=64",
    ]


def test_the_plot_marks_the_papers_number_on_each_row(tracking_uri, tmp_path, monkeypatch):
    # README: "its plot marks the paper's number in red", a bar across each row that has one
    import matplotlib.collections
    import matplotlib.colors

    from seqlab.reports import compare as compare_module
    from seqlab.reports import plots

    client = MlflowClient(tracking_uri)
    parent = _sweep(
        client,
        "compare-plot",
        LOSSES,
        lambda cell: {
            **PAPER,
            "model.param_budget": "20000",
            "task.dataset": "nottingham" if cell == "rnn" else "jsb",
        },
    )
    comparison = compare(runs_to_compare(client, parent), names.TEST_LOSS)
    figures = []
    monkeypatch.setattr(plots, "save", lambda fig, path: figures.append(fig) or path)
    compare_module.plot(comparison, client, tmp_path / "comparison.png")
    left = figures[0].axes[0]
    marks = [
        segment
        for c in left.collections
        if isinstance(c, matplotlib.collections.LineCollection)
        and matplotlib.colors.same_color(c.get_color()[0], "tab:red")
        for segment in c.get_segments()
    ]
    # rows best first: gru (0.2), lstm (0.155); rnn ran on another dataset, so no mark
    assert sorted((round(s[0][0] + 0.4), s[0][1]) for s in marks) == [(0, 0.2), (1, 0.155)]
    assert "A paper, Table 9" in [t.get_text() for t in left.get_legend().get_texts()]


def _tagged_sweep(
    client: MlflowClient, experiment: str, metric: str, values: dict[str, list[float]], tag: str
) -> str:
    """A sweep whose runs carry `metric` and the higher-is-better tag train.py sets from the metrics."""
    parent = _sweep(client, experiment, {cell: [0.1] * len(v) for cell, v in values.items()})
    for run in runs_to_compare(client, parent):
        value = values[run.data.params["cell.name"]][int(run.data.params["seed"])]
        client.log_metric(run.info.run_id, metric, value)
        client.set_tag(run.info.run_id, names.HIGHER_IS_BETTER_TAG, tag)
    return parent


def test_a_metric_the_runs_tag_higher_is_better_ranks_the_highest_first(tracking_uri):
    # a user's own metric: its name says nothing, the tag (from the metric's higher_is_better) does
    client = MlflowClient(tracking_uri)
    scores = {"gru": [0.9, 0.91, 0.92], "lstm": [0.5, 0.52, 0.51], "rnn": [0.2, 0.21, 0.22]}
    parent = _tagged_sweep(client, "compare-score", "test/score", scores, "val/score,test/score")
    comparison = compare(runs_to_compare(client, parent), "test/score")
    assert [r.label for r in comparison.rows] == ["cell.name=gru", "cell.name=lstm", "cell.name=rnn"]


def test_a_metric_not_in_the_tag_is_lower_is_better_whatever_its_name(tracking_uri):
    # "recall" in the name once made seqlab-compare rank the largest error best
    client = MlflowClient(tracking_uri)
    errors = {"gru": [0.1, 0.11, 0.12], "lstm": [0.5, 0.52, 0.51], "rnn": [0.9, 0.91, 0.92]}
    parent = _tagged_sweep(
        client, "compare-recall-error", "test/recall_error", errors, "val/accuracy,test/accuracy"
    )
    comparison = compare(runs_to_compare(client, parent), "test/recall_error")
    assert [r.label for r in comparison.rows] == ["cell.name=gru", "cell.name=lstm", "cell.name=rnn"]
