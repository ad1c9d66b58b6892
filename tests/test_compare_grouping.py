"""seqlab-compare over a whole experiment: a table per task, lines a terminal can show, and a job's run id
named as a job of its sweep; on runs with known metrics in a real SQLite store."""

from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric, Param

from seqlab import names
from seqlab.reports.compare import LABEL_WIDTH, main, runs_to_compare

pytestmark = pytest.mark.integration

SINE, ADDING = "seqlab.tasks.synthetic.SineTask", "seqlab.tasks.synthetic.AddingTask"


def _run(client: MlflowClient, experiment_id: str, loss: float, params: dict[str, str], **tags: str) -> str:
    run_id = client.create_run(experiment_id, tags=tags).info.run_id
    client.log_batch(
        run_id,
        metrics=[Metric(names.TEST_LOSS, loss, 0, 0), Metric(names.VAL_LOSS, loss, 0, 0)],
        params=[Param(k, v) for k, v in params.items()],
    )
    client.set_terminated(run_id, "FINISHED")
    return run_id


def _experiment(client: MlflowClient, name: str) -> str:
    """sine runs with losses near 0.01 and adding runs near 0.1, two cells and two seeds each: ranked
    together, every sine row would beat every adding row."""
    experiment_id = client.create_experiment(name)
    for task, base in ((SINE, 0.01), (ADDING, 0.1)):
        for cell, worse in (("gru", 0.0), ("lstm", 0.5)):
            for seed in (0, 1):
                loss = base * (1 + worse) + seed * base / 100
                _run(
                    client, experiment_id, loss, {"task._target_": task, "cell.name": cell, "seed": str(seed)}
                )
    return name


def test_an_experiment_gets_a_table_per_task(tracking_uri, capsys):
    client = MlflowClient(tracking_uri)
    main(["--experiment", _experiment(client, "group-tasks"), "--tracking-uri", tracking_uri])
    out = capsys.readouterr().out

    adding, sine = out.split("task AddingTask: 4 run(s)")[1].split("task SineTask: 4 run(s)")
    for table in (adding, sine):
        rows = [line for line in table.splitlines() if "cell.name=" in line and "seeds" not in line]
        assert [line.split()[0] for line in rows[:2]] == ["best", "cell.name=lstm"], table
        assert "cell.name=gru is best on test/loss" in table
    # the means: each table holds its own task's runs only
    assert "0.01005" in sine and "0.01005" not in adding
    assert "0.1005" in adding and "0.1005" not in sine


def test_long_labels_become_numbered_configurations_and_lines_fit(tracking_uri, capsys, monkeypatch):
    # an experiment where many params differ between runs: each label would run to hundreds of characters
    client = MlflowClient(tracking_uri)
    experiment_id = client.create_experiment("group-long-labels")
    choices = {f"model.option_{i}": f"/a/rather/long/value/number/{i}" for i in range(12)}
    labels = []
    for variant in range(3):
        params = {k: f"{v}-{variant}" for k, v in choices.items()} | {"task._target_": SINE}
        labels.append(" ".join(f"{k}={v}" for k, v in sorted(params.items()) if k != "task._target_"))
        for seed in (0, 1):
            _run(client, experiment_id, 0.1 * (variant + 1) + seed / 1000, params | {"seed": str(seed)})
    monkeypatch.setenv("COLUMNS", "100")  # a 100-column terminal

    main(["--experiment", "group-long-labels", "--tracking-uri", tracking_uri])
    out = capsys.readouterr().out

    assert max(len(line) for line in out.splitlines()) <= 100, out
    assert "config 1 is best on test/loss" in out
    flowing = " ".join(out.split())  # the legend wraps its lines; read it as one
    for n, label in enumerate(labels, 1):  # best first: variant 0 has the lowest loss
        assert f"config {n}: {label}" in flowing
    assert all(len(label) > LABEL_WIDTH for label in labels)


def test_a_job_id_is_named_as_a_job_of_its_sweep(tracking_uri, capsys):
    client = MlflowClient(tracking_uri)
    experiment_id = client.create_experiment("group-job")
    parent = client.create_run(experiment_id, tags={names.SWEEP_JOBS_TAG: "2"}).info.run_id
    job = _run(client, experiment_id, 0.1, {"cell.name": "gru"}, **{names.PARENT_RUN_TAG: parent})
    lone = _run(client, experiment_id, 0.2, {"cell.name": "lstm"})

    with pytest.raises(SystemExit) as exit_:
        main([job, "--tracking-uri", tracking_uri])
    err = " ".join(capsys.readouterr().err.split())
    assert exit_.value.code == 1
    assert f"Run '{job}'" in err and f"is a job of sweep {parent}, not a sweep" in err
    assert f"seqlab-compare {parent}`" in err

    with pytest.raises(SystemExit):
        main([lone, "--tracking-uri", tracking_uri])
    assert "is a single run, not a sweep" in capsys.readouterr().err
    assert len(runs_to_compare(client, parent)) == 1  # the sweep itself still compares


def test_a_sweep_over_two_tasks_logs_a_table_per_task(tracking_uri, capsys, tmp_path):
    client = MlflowClient(tracking_uri)
    experiment_id = client.create_experiment("group-sweep")
    parent = client.create_run(experiment_id, tags={names.SWEEP_JOBS_TAG: "8"}).info.run_id
    for task in (SINE, ADDING):
        for cell in ("gru", "lstm"):
            for seed in (0, 1):
                params = {"task._target_": task, "cell.name": cell, "seed": str(seed)}
                _run(client, experiment_id, 0.1 + seed / 100, params, **{names.PARENT_RUN_TAG: parent})

    main([parent, "--tracking-uri", tracking_uri])
    assert "task AddingTask" in capsys.readouterr().out

    logged = {Path(f.path).name for f in client.list_artifacts(parent, names.COMPARISON_ARTIFACTS)}
    assert logged == {
        "comparison.md",
        "report.html",
        "comparison-1.csv",
        "comparison-1.png",
        "comparison-2.csv",
        "comparison-2.png",
    }
    markdown = Path(
        client.download_artifacts(parent, f"{names.COMPARISON_ARTIFACTS}/comparison.md", str(tmp_path))
    )
    text = markdown.read_text()
    assert (
        "## AddingTask (comparison-1.csv, comparison-1.png)" in text
        and "## SineTask (comparison-2.csv" in text
    )
