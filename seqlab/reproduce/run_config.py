"""A logged run's exact configuration, read back from MLflow (the resolved `config.yaml` artifact).

Not the current defaults: a rerun or resume must train what the run trained, even after conf/
changed. The logged tracking.uri may be redacted, so callers set the store they actually use.
"""

import tempfile
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from seqlab.config import SeqlabConfig
from seqlab.errors import ConfigError, TrackingError
from seqlab.tracking.params import redact

CONFIG_ARTIFACT = "config.yaml"


def get_run(client: MlflowClient, run_id: str, action: str) -> Run:
    """The run, or a TrackingError naming the id and the store when there is no such run."""
    try:
        run = client.get_run(run_id)
    except MlflowException as exc:
        raise TrackingError(
            f"Cannot {action} run '{run_id}': there is no such run in the MLflow store "
            f"{redact(client.tracking_uri)}. Give the run id that seqlab printed or the MLflow UI shows "
            "(32 hex characters), and the store it is in (--tracking-uri or MLFLOW_TRACKING_URI)."
        ) from exc
    if run.info.lifecycle_stage == "deleted":
        raise TrackingError(f"Cannot {action} run '{run_id}': it is deleted; restore it in MLflow first.")
    return run


def logged_config(client: MlflowClient, run_id: str) -> dict[str, Any]:
    """The run's resolved config as plain containers."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(run_id, CONFIG_ARTIFACT, tmp)
        except (MlflowException, OSError) as exc:
            raise TrackingError(
                f"Run '{run_id}' has no readable {CONFIG_ARTIFACT} artifact ({exc}); only runs made by "
                "seqlab, which logs its resolved config, can be rebuilt."
            ) from exc
        return OmegaConf.to_container(OmegaConf.load(Path(path)))


def as_seqlab_config(plain: dict[str, Any], run_id: str) -> DictConfig:
    """The plain config under seqlab's typed schema, so overrides and validate treat it like a composed one."""
    try:
        return OmegaConf.merge(OmegaConf.structured(SeqlabConfig), plain)
    except OmegaConfBaseException as exc:
        raise ConfigError(
            f"The config logged by run '{run_id}' does not fit this seqlab's schema: {exc.msg}. "
            "It was made by another version of seqlab; check out its git.commit tag to rerun it."
        ) from exc
