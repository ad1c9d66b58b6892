"""The metric logger's pace is a class setting a subclass changes, not a constructor argument."""

import time

import pytest
from mlflow import MlflowClient

from seqlab.tracking.logger import MlflowMetricLogger


class HoldingLogger(MlflowMetricLogger):
    send_every_s = 30.0  # far longer than the test: whatever is sent meanwhile was sent early
    poll_s = 0.001


def test_a_subclass_sets_how_often_the_logger_writes_and_flush_still_cuts_the_wait_short(tmp_path):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run_id = client.create_run(client.create_experiment("pace")).info.run_id
    logger = HoldingLogger(client, run_id)
    logger.log_metrics({"train/step_loss": 1.0}, step=0)
    deadline = time.monotonic() + 20
    while logger.pending() and time.monotonic() < deadline:  # the first write goes at once
        time.sleep(0.01)
    logger.log_metrics({"train/step_loss": 0.5}, step=1)
    time.sleep(1.5)  # longer than the default pace of one write a second
    assert logger.pending() == 1  # held by the subclass's pace
    started = time.monotonic()
    assert logger.flush(wait_s=10)
    assert time.monotonic() - started < 5
    assert sorted(m.step for m in client.get_metric_history(run_id, "train/step_loss")) == [0, 1]


def test_the_pace_is_not_a_constructor_argument(tmp_path):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run_id = client.create_run(client.create_experiment("pace")).info.run_id
    with pytest.raises(TypeError):
        MlflowMetricLogger(client, run_id, send_every_s=5.0)
    with pytest.raises(TypeError):
        MlflowMetricLogger(client, run_id).flush(wait_s=1, poll_s=0.1)
