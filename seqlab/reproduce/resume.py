"""`seqlab resume=<RUN_ID>`: continue an interrupted MLflow run from its last checkpoint.

The config comes from the run (not the command line), the weights, optimizer, loop counters and
best-checkpoint state from its last.ckpt, and metrics go on into the same run at the steps that
follow; with per-epoch reseeding the finished run equals one that was never interrupted.
"""

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from mlflow import MlflowClient
from omegaconf import DictConfig, open_dict

from seqlab import names
from seqlab.errors import TrackingError
from seqlab.reproduce.run_config import as_seqlab_config, get_run, logged_config
from seqlab.tracking.params import redact
from seqlab.tracking.store import as_typed, tracking_uri

log = logging.getLogger(__name__)


@dataclass
class ResumePoint:
    run_id: str
    run_name: str
    cfg: DictConfig  # the run's own config, with the tracking store of this command
    checkpoint: Path
    epoch: int  # the epoch training continues with (0-based)
    run_tags: dict[str, str]


def _train_again(run_id: str, uri: str) -> str:
    """What a refused resume suggests instead: a rerun, as a command that runs as printed (this environment's
    script, and the run's store when it is not the one seqlab-rerun reads by default)."""
    store = "" if uri == tracking_uri(None) else f" --tracking-uri {redact(uri)}"
    return f"`{as_typed('seqlab-rerun')}{store} {run_id}` trains it again as a new run."


def load_checkpoint(checkpoint: Path, run_id: str, instead: str) -> dict:
    """The checkpoint as tensors and plain values (weights_only: unpickling never runs code from the
    file), or a TrackingError saying why it cannot be, raised before the run is touched."""
    try:
        return torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickled code refused, a cut or corrupt file: all one answer to the user
        reason = " ".join(str(exc).split())[:300]
        raise TrackingError(
            f"Cannot resume run '{run_id}': its checkpoint {checkpoint} does not load as tensors and plain "
            f"values (torch.load with weights_only=True: {type(exc).__name__}: {reason}). It is damaged, or "
            "holds pickled objects that seqlab will not run code to rebuild; the run was left as it is. "
            f"Restore that file from a copy you trust; otherwise {instead}"
        ) from exc


def resume_point(cfg: DictConfig) -> ResumePoint:
    """Find the run named by cfg.resume and its last checkpoint, or say clearly why it cannot resume."""
    run_id = str(cfg.resume)
    uri = tracking_uri(cfg.tracking.uri)
    client = MlflowClient(uri)
    run = get_run(client, run_id, "resume")
    status = run.info.status
    if status == "FINISHED":
        raise TrackingError(
            f"Cannot resume run '{run_id}': it is FINISHED, there is nothing left to train. "
            f"{_train_again(run_id, uri)}"
        )
    if status == "RUNNING":
        log.warning(
            "run %s is marked RUNNING: resuming it assumes its process died (make sure it did)", run_id
        )
    folder = run.data.tags.get(names.CHECKPOINT_DIR)
    if not folder:
        raise TrackingError(
            f"Cannot resume run '{run_id}' ({status}): it records no checkpoint folder (tag "
            f"{names.CHECKPOINT_DIR}), so it stopped before training started or ran without "
            f"callbacks.last_checkpoint. {_train_again(run_id, uri)}"
        )
    checkpoint = Path(folder) / names.LAST_CHECKPOINT
    if not checkpoint.is_file():
        raise TrackingError(
            f"Cannot resume run '{run_id}' ({status}): there is no {names.LAST_CHECKPOINT} in {folder} (it "
            f"stopped before its first epoch ended, or the folder was removed). {_train_again(run_id, uri)}"
        )
    state = load_checkpoint(checkpoint, run_id, _train_again(run_id, uri))
    owner = state.get(names.CHECKPOINT_RUN_ID)
    if owner != run_id:
        raise TrackingError(
            f"Cannot resume run '{run_id}': the checkpoint {checkpoint} belongs to run '{owner}', not to it."
        )
    run_cfg = as_seqlab_config(logged_config(client, run_id), run_id)
    with open_dict(run_cfg):
        run_cfg.tracking.uri = uri  # the logged one may be redacted; this command's store holds the run
        run_cfg.torch_threads = resume_threads(cfg, run.data.params)
    epoch = int(state.get("epoch", 0)) + 1
    log.info(
        "resuming run %s (%s) in %s from %s, epoch %d", run_id, status, redact(uri), checkpoint, epoch + 1
    )
    return ResumePoint(run_id, run.info.run_name, run_cfg, checkpoint, epoch, dict(run.data.tags))


def resume_threads(cfg: DictConfig, params: dict[str, str]) -> int | None:
    """The torch threads a resume trains with: torch_threads when this command sets it, else the count the
    run logged (the same seed gives other numbers at another thread count, so a resume must not change it)."""
    if cfg.get("torch_threads") is not None:
        return int(cfg.torch_threads)
    logged = params.get(names.TORCH_THREADS)
    return int(logged) if logged and logged.isdigit() else None


def resumed_tag(previous: str | None, epoch: int) -> str:
    """Every resume of the run, in order: "3", then "3,7"."""
    return f"{previous},{epoch}" if previous else str(epoch)
