"""A logged run's exact configuration, read back from MLflow (the resolved `config.yaml` artifact).

Not the current defaults: a rerun or resume must train what the run trained, even after conf/
changed. The logged tracking.uri may be redacted, so callers set the store they actually use.
"""

import tempfile
from importlib.resources import files
from pathlib import Path
from typing import Any, cast

from mlflow import MlflowClient
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from seqlab.config import ModelConfig, SeqlabConfig
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
        # a logged config.yaml is a mapping at the top
        return cast(dict[str, Any], OmegaConf.to_container(OmegaConf.load(Path(path))))


LEGACY_MODEL_TARGET = "seqlab.models.network.build_network"
LEGACY_LOSS_TARGET = "seqlab.models.losses.Loss"


def _packaged_option(group: str, name: Any, run_id: str) -> dict[str, Any]:
    entry = files("seqlab.conf").joinpath(group, f"{name}.yaml")
    if not entry.is_file():
        raise ConfigError(
            f"Run '{run_id}' was logged with {group}={name}, which this seqlab no longer has in "
            f"conf/{group}/; check out the run's git.commit tag to rerun it."
        )
    return cast(dict[str, Any], OmegaConf.to_container(OmegaConf.create(entry.read_text())))


def _as_choice(section: dict[str, Any], group: str, run_id: str) -> dict[str, Any]:
    """An old-style `{name: gru, <option>: ...}` section as today's option of that name, with the options
    today's option has (an old config listed every cell's and norm's option for every choice)."""
    choice = _packaged_option(group, section.get("name"), run_id)
    return choice | {k: v for k, v in section.items() if k in choice}


def translate_legacy(plain: dict[str, Any], run_id: str) -> dict[str, Any]:
    """A config logged before cells, norms and losses were `_target_` sections, in today's shape.

    Those runs named their cell, norm and loss (`cell.name=gru`) and the network was built by name; the
    same names are today's options in conf/, so the translation trains the same network.
    """
    plain = dict(plain)
    for group in ("cell", "norm"):
        section = plain.get(group)
        if isinstance(section, dict) and "_target_" not in section and "name" in section:
            plain[group] = _as_choice(section, group, run_id)
    loss = plain.get("loss")
    if isinstance(loss, dict) and loss.get("_target_") == LEGACY_LOSS_TARGET:
        plain["loss"] = _as_choice({k: v for k, v in loss.items() if k != "_target_"}, "loss", run_id)
    model = plain.get("model")
    if isinstance(model, dict) and model.get("_target_") == LEGACY_MODEL_TARGET:
        plain["model"] = model | {"_target_": ModelConfig._target_}
    # presets then assumed cell.nonlinearity=tanh for every cell; only the rnn has it now
    published_cell = ((plain.get("published") or {}).get("setting") or {}).get("cell")
    if isinstance(published_cell, dict):
        for key in [k for k in published_cell if k not in plain.get("cell", {})]:
            del published_cell[key]
        if not published_cell:
            del plain["published"]["setting"]["cell"]
    return plain


def as_seqlab_config(plain: dict[str, Any], run_id: str) -> DictConfig:
    """The plain config under seqlab's typed schema, so overrides and validate treat it like a composed one.

    A config in an older shape is translated first (translate_legacy)."""
    try:
        merged = OmegaConf.merge(OmegaConf.structured(SeqlabConfig), translate_legacy(plain, run_id))
        return cast(DictConfig, merged)  # merged onto a dataclass schema: a DictConfig
    except OmegaConfBaseException as exc:
        raise ConfigError(
            f"The config logged by run '{run_id}' does not fit this seqlab's schema: {exc.msg}. "
            "It was made by another version of seqlab; check out its git.commit tag to rerun it."
        ) from exc
