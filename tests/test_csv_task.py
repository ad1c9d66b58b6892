"""The user's CSV gives right answers or says why not: time order, every column accounted for, missing
values, metrics and the served model in the data's units, a path and checksum a rerun can trust."""

import hashlib
import json
import logging
import math
import re
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from conftest import compose_config, runs_of
from hydra.utils import instantiate
from torchmetrics.regression import MeanAbsoluteError

from seqlab.config import validate
from seqlab.errors import ConfigError, DataError
from seqlab.reproduce.provenance import data_sha256
from seqlab.tasks.csvfile import INPUT_COLUMNS, LEFT_OUT, N_MISSING, CsvTask
from seqlab.tasks.windows import InDataUnits, Scaler, Scaling
from seqlab.train import train

HEADER = "date,load,temp,site"


def write(path: Path, lines: list[str], header: str = HEADER) -> Path:
    path.write_text("\n".join([header, *lines]) + "\n")
    return path


def hourly(rows: int, start: int = 0) -> list[str]:
    """Rows in time order: load rises with time (so a split's rows tell where in time they came from)."""
    times = [f"2024-01-{1 + i // 24:02d}T{i % 24:02d}:00" for i in range(start, start + rows)]
    return [
        f"{time},{100 + i + 5 * math.sin(i):.3f},{math.cos(i / 7):.4f},north"
        for time, i in zip(times, range(start, start + rows), strict=True)
    ]


def task(path: Path, **options) -> CsvTask:
    defaults = {"target": "load", "time_column": "date", "window": 5, "horizon": 1}
    return CsvTask(path=str(path), **(defaults | options))


def targets_in_data_units(t: CsvTask, split: str) -> torch.Tensor:
    data = t.prepare()[split]
    assert t.scaling is not None
    return t.scaling.unscale_targets(data[torch.arange(len(data))]["y"])


# --- time order -----------------------------------------------------------------------------------


def test_a_newest_first_file_is_sorted_so_the_test_split_is_the_latest_rows(tmp_path, caplog):
    path = write(tmp_path / "export.csv", list(reversed(hourly(100))))
    t = task(path)
    with caplog.at_level(logging.INFO, logger="seqlab.tasks.csvfile"):
        t.prepare()
    # load rises with time: every test target is later, so larger, than every training target
    assert targets_in_data_units(t, "test").min() > targets_in_data_units(t, "train").max()
    assert "sorted by date (the file lists them newest first)" in caplog.text


def test_rows_out_of_order_are_refused_without_sorting_naming_the_rows(tmp_path):
    lines = hourly(100)
    lines[10], lines[11] = lines[11], lines[10]
    path = write(tmp_path / "s.csv", lines)
    with pytest.raises(
        DataError, match=r"not in time order: row 13 \('2024-01-01T10:00'\) comes after row 12"
    ):
        task(path, sort_by_time=False).prepare()
    sorted_task = task(path)  # the default sorts
    assert len(sorted_task.prepare()["train"]) > 0


def test_duplicate_times_are_refused_naming_both_rows(tmp_path):
    lines = hourly(100)
    lines[30] = lines[29].replace(",north", ",south")
    path = write(tmp_path / "s.csv", lines)
    with pytest.raises(DataError, match=r"rows 31 and 32 of .* have the same time '2024-01-02T05:00'"):
        task(path).prepare()


@pytest.mark.parametrize(
    "value, match",
    [
        ("yesterday", r"row 8 of .* 'yesterday' is not a time\. Every row needs a time: ISO 8601"),
        ("", r"row 8 of .* is blank\. Every row needs a time"),
        ("2024-01-01T06:00+02:00", r"mixes times with a UTC offset \(row 8: '2024-01-01T06:00\+02:00'\)"),
    ],
)
def test_a_bad_time_value_is_named_by_row_and_value(tmp_path, value, match):
    lines = hourly(100)
    lines[6] = value + lines[6][lines[6].index(",") :]
    with pytest.raises(DataError, match=match):
        task(write(tmp_path / "s.csv", lines)).prepare()


def test_numeric_times_order_the_rows_too(tmp_path):
    lines = [f"{1000 - i},{100 - i},{i % 3},x" for i in range(100)]  # newest first; load rises with time
    t = task(write(tmp_path / "s.csv", lines, header="step,load,temp,site"), time_column="step")
    assert targets_in_data_units(t, "test").min() > targets_in_data_units(t, "train").max()


# --- every column used or named -------------------------------------------------------------------


def test_every_column_is_used_or_named_with_its_reason(tmp_path, caplog):
    lines = hourly(100)
    lines = [line + f",{'' if i == 0 else i % 5}" for i, line in enumerate(lines)]  # blank first value
    path = write(tmp_path / "s.csv", lines, header=HEADER + ",humidity")
    t = task(path, missing="drop")
    with caplog.at_level(logging.INFO, logger="seqlab.tasks.csvfile"):
        params = t.extra_params()
    assert params[INPUT_COLUMNS] == "load,temp,humidity"
    assert params[LEFT_OUT] == "date (the time column), site (non-numeric, e.g. 'north' at row 2)"
    assert params[N_MISSING] == "1"
    assert t.spec().input_size == 3
    assert "inputs load, temp, humidity" in caplog.text and "site (non-numeric" in caplog.text
    assert "dropped 1 rows with 1 missing value: 1 in 'humidity' (row 2)" in caplog.text


def test_a_time_column_left_unnamed_is_pointed_out(tmp_path, caplog):
    t = CsvTask(path=str(write(tmp_path / "s.csv", hourly(100))), target="load", window=5)
    with caplog.at_level(logging.INFO, logger="seqlab.tasks.csvfile"):
        params = t.extra_params()
    assert params[LEFT_OUT].startswith("date (times, e.g. '2024-01-01T00:00': set task.time_column=date")
    assert "holds times, but the rows are taken in file order" in caplog.text


def test_chosen_columns_name_the_others(tmp_path):
    t = task(write(tmp_path / "s.csv", hourly(100)), columns=["temp"])
    params = t.extra_params()
    assert params[INPUT_COLUMNS] == "temp"
    assert params[LEFT_OUT] == "date (the time column), site (not in task.columns)"


# --- missing values -------------------------------------------------------------------------------


def with_gaps(tmp_path: Path) -> Path:
    lines = [line.split(",") for line in hourly(100)]
    lines[5][1], lines[7][1], lines[40][2] = "", "NA", "nan"  # rows 7 and 9 of load, row 42 of temp
    return write(tmp_path / "s.csv", [",".join(cells) for cells in lines])


def test_missing_values_are_refused_by_default_with_counts_and_rows(tmp_path):
    with pytest.raises(DataError) as refused:
        task(with_gaps(tmp_path)).prepare()
    message = str(refused.value)
    assert "has 3 missing values: 2 in 'load' (rows 7, 9), 1 in 'temp' (row 42)" in message
    assert "task.missing=refuse (the default)" in message and "drop" in message and "interpolate" in message


def test_missing_values_dropped_or_filled(tmp_path):
    path = with_gaps(tmp_path)
    raw = np.array([[float(v) for v in line.split(",")[1:3]] for line in hourly(100)])
    rows = {how: task(path, missing=how) for how in ("drop", "ffill", "interpolate")}
    assert len(rows["drop"].prepare()["train"].inputs) == 100 - 3  # a split holds the whole series

    def series(t: CsvTask) -> torch.Tensor:  # the whole series in data units, as the task holds it
        inputs = t.prepare()["train"].inputs.double()
        assert t.scaling is not None
        return t.scaling.unscale_inputs(inputs)

    ffill, interpolated = series(rows["ffill"]), series(rows["interpolate"])
    assert ffill[5, 0] == pytest.approx(raw[4, 0], abs=1e-3) and ffill[40, 1] == pytest.approx(
        raw[39, 1], abs=1e-3
    )
    assert interpolated[5, 0] == pytest.approx((raw[4, 0] + raw[6, 0]) / 2, abs=1e-3)


def test_interpolation_is_in_time_not_in_rows(tmp_path):
    lines = ["2024-01-01T00:00,0,0,x", "2024-01-01T01:00,,0,x", "2024-01-01T04:00,40,0,x"]
    lines += [f"2024-01-01T{5 + i // 60:02d}:{i % 60:02d},{i},0,x" for i in range(60)]
    t = task(write(tmp_path / "s.csv", lines), missing="interpolate")
    inputs = t.prepare()["train"].inputs.double()
    assert t.scaling is not None
    assert float(t.scaling.unscale_inputs(inputs)[1, 0]) == pytest.approx(10)  # 1 h of 4 from 0 to 40


def test_ffill_refuses_a_gap_with_nothing_before_it(tmp_path):
    lines = [line.split(",") for line in hourly(100)]
    lines[0][1] = ""
    path = write(tmp_path / "s.csv", [",".join(cells) for cells in lines])
    with pytest.raises(
        DataError, match=r"ffill cannot fill the missing values at the start of column 'load'"
    ):
        task(path, missing="ffill").prepare()


@pytest.mark.parametrize(
    "override, match",
    [
        ("task.missing=zero", r"Invalid task.missing='zero'. Allowed: refuse .*drop .*ffill .*interpolate"),
        ("task.time_column=load", r"task.time_column='load' is also task.target"),
    ],
)
def test_bad_options_are_refused_at_start_up(tmp_path, override, match):
    path = write(tmp_path / "s.csv", hourly(100))
    cfg = compose_config(["task=csv", f"task.path={path}", "task.target=load", override])
    with pytest.raises(ConfigError, match=match):
        validate(cfg)


# --- metrics and the served model in the data's units ---------------------------------------------


def test_a_metric_in_data_units_unscales_predictions_and_targets():
    scaling = Scaling(Scaler(("a",), (0.0,), (1.0,)), Scaler(("y", "z"), (10.0, -1.0), (2.0, 0.5)), horizon=2)
    metric = InDataUnits(MeanAbsoluteError(), scaling)
    pred, target = torch.zeros(3, 4), torch.ones(3, 4)  # (B, horizon * 2 targets), time-major
    metric.update(pred, target)
    assert float(metric.compute()) == pytest.approx((2.0 + 0.5) / 2)  # |1 z-score| = std in data units
    assert metric.higher_is_better is False


def test_csv_run_logs_metrics_scaling_and_a_served_model_in_the_data_units(tmp_path, make_cfg, client):
    path = write(tmp_path / "s.csv", hourly(300))
    options = [f"task.path={path}", "task.target=load", "task.time_column=date", "model.hidden_size=8"]
    cfg = make_cfg("task=csv", *options)
    train(cfg)
    [run] = runs_of(client, cfg.tracking.experiment)
    metrics = run.data.metrics
    assert run.data.params[INPUT_COLUMNS] == "load,temp"  # what the task made of the file, as params
    # the logged config names the file by its absolute path; the params by its name (paths are tags)
    assert (
        f"path: {path}"
        in Path(client.download_artifacts(run.info.run_id, "config.yaml", str(tmp_path))).read_text()
    )
    # every run scores the trivial forecasts on the same windows, in the same units
    assert (
        metrics["test/baseline/persistence_mse"] > 0 and "test/baseline/persistence_mse_original" in metrics
    )
    saved = client.download_artifacts(run.info.run_id, "data/scaling.json", str(tmp_path))
    scaling = json.loads(Path(saved).read_text())
    mean, std = scaling["targets"]["mean"][0], scaling["targets"]["std"][0]
    assert std > 10  # load spans 100..400: its own units are far from z-scores
    for stage in ("val", "test"):
        assert metrics[f"{stage}/mse_original"] == pytest.approx(metrics[f"{stage}/mse"] * std**2, rel=1e-4)
        assert metrics[f"{stage}/mae_original"] == pytest.approx(metrics[f"{stage}/mae"] * std, rel=1e-4)

    model = mlflow.pyfunc.load_model(client.download_artifacts(run.info.run_id, "model", str(tmp_path)))
    window = np.array([[[float(v) for v in line.split(",")[1:3]] for line in hourly(300)[-24:]]], np.float32)
    predicted = float(np.asarray(model.predict(window)).ravel()[0])
    # the network sees z-scores and its output is read back in kW: by the scaling the run logged
    net = model.unwrap_python_model().net
    in_mean, in_std = (torch.tensor(scaling["inputs"][k]) for k in ("mean", "std"))
    with torch.no_grad():
        z = float(net((torch.from_numpy(window) - in_mean) / in_std).ravel()[0])
    assert predicted == pytest.approx(z * std + mean, rel=1e-5)
    assert abs(predicted - mean) < 5 * std and predicted > 20  # a load, not a z-score near 0


def test_ett_keeps_its_scaled_metrics_and_adds_the_data_units(data_cache):
    from seqlab.tasks.ett import ETTTask

    data_cache("ETTh1.csv")
    keys = set(ETTTask(dataset="ETTh1", features="M").metrics().keys())
    assert keys == {"mse", "mae", "mse_original", "mae_original"}


# --- the path a rerun can trust, and run names ----------------------------------------------------


def test_a_relative_path_is_made_absolute_for_the_logged_config(tmp_path, monkeypatch):
    write(tmp_path / "s.csv", hourly(100))
    monkeypatch.chdir(tmp_path)
    t = task(Path("s.csv"))
    assert t.path == tmp_path / "s.csv" and t.resolved_config() == {"path": str(tmp_path / "s.csv")}
    monkeypatch.chdir(tmp_path.parent)  # from another folder, the same file
    assert t.prepare()["train"] is not None


def test_the_checksum_of_the_data_is_verified_before_training(tmp_path):
    path = write(tmp_path / "s.csv", hourly(100))
    logged = data_sha256([path])
    t = task(path)
    t.verify_files(logged)
    t.verify_files(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  s.csv")  # an older, relative path
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    write(path, hourly(100, start=1))
    changed = rf"{re.escape(str(path))} is not the file the run read: its SHA-256 is now [0-9a-f]{{64}}, "
    with pytest.raises(DataError, match=changed + f"the run read SHA-256 {before}"):
        t.verify_files(logged)
    t.verify_files(
        f"{before}  /elsewhere/other.csv"
    )  # a file the run did not read is not this one's business


def test_csv_runs_are_labelled_by_file_and_target(tmp_path):
    assert task(tmp_path / "meters.csv").label == "csv-meters-load"
    assert instantiate(compose_config(["task=sine"]).task).label == "sine"


def test_a_rerun_refuses_a_changed_file_before_training(tmp_path, make_cfg, client, monkeypatch):
    from seqlab.reproduce.rerun import rerun

    path = write(tmp_path / "s.csv", hourly(200))
    cfg = make_cfg("task=csv", f"task.path={path}", "task.target=load", "model.hidden_size=8")
    train(cfg)
    [run] = runs_of(client, cfg.tracking.experiment)
    write(path, hourly(200, start=7))  # the same name, other bytes
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match=r"is not the file the run read.*SHA-256"):
        rerun(run.info.run_id, [], cfg.tracking.uri)
    assert len(runs_of(client, cfg.tracking.experiment)) == 1  # refused before any run was created
