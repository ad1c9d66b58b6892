"""A resume reads last.ckpt as tensors and plain values only: a file that needs code to load is refused."""

import pathlib
import uuid

import pytest
import torch
from conftest import compose_config
from mlflow import MlflowClient

from seqlab import names
from seqlab.errors import TrackingError
from seqlab.reproduce.resume import resume_point


class WritesAFile:
    """Unpickling this calls Path.write_text: the side effect shows whether pickled code ran."""

    def __init__(self, target: pathlib.Path) -> None:
        self.target = target

    def __reduce__(self):
        return pathlib.Path.write_text, (self.target, "code from a checkpoint ran")


def _stopped_run(client: MlflowClient, folder: pathlib.Path) -> str:
    experiment_id = client.create_experiment(f"resume-safety-{uuid.uuid4().hex[:8]}")
    run_id = client.create_run(experiment_id, tags={names.CHECKPOINT_DIR: str(folder)}).info.run_id
    client.set_terminated(run_id, "KILLED")
    return run_id


def _refused(client: MlflowClient, run_id: str, tracking_uri: str) -> str:
    before = client.get_run(run_id)
    with pytest.raises(TrackingError) as refused:
        resume_point(compose_config([f"resume={run_id}", f"tracking.uri={tracking_uri}"]))
    after = client.get_run(run_id)
    assert (after.info.status, after.data.tags) == (
        before.info.status,
        before.data.tags,
    )  # the run is untouched
    return str(refused.value)


def test_a_checkpoint_holding_pickled_code_is_refused_and_the_code_never_runs(client, tracking_uri, tmp_path):
    side_effect = tmp_path / "side-effect.txt"
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    run_id = _stopped_run(client, folder)
    torch.save(
        {"epoch": 0, names.CHECKPOINT_RUN_ID: run_id, "payload": WritesAFile(side_effect)},
        folder / names.LAST_CHECKPOINT,
    )

    message = _refused(client, run_id, tracking_uri)

    assert not side_effect.exists()
    assert str(folder / names.LAST_CHECKPOINT) in message and "weights_only=True" in message
    assert "seqlab-rerun" in message and run_id in message  # what to do instead
    assert "\n" not in message  # one paragraph


def test_a_corrupt_checkpoint_is_refused_with_the_same_paragraph(client, tracking_uri, tmp_path):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    run_id = _stopped_run(client, folder)
    torch.save({"epoch": 0, names.CHECKPOINT_RUN_ID: run_id}, folder / names.LAST_CHECKPOINT)
    whole = (folder / names.LAST_CHECKPOINT).read_bytes()
    (folder / names.LAST_CHECKPOINT).write_bytes(whole[: len(whole) // 2])  # cut, as a full disk leaves it

    message = _refused(client, run_id, tracking_uri)

    assert str(folder / names.LAST_CHECKPOINT) in message and "damaged" in message
