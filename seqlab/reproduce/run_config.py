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

from seqlab import names
from seqlab.config import ModelConfig, SeqlabConfig
from seqlab.errors import ConfigError, TrackingError
from seqlab.tracking.params import redact
from seqlab.tracking.server import SEQLAB_OPTION, check_reachable

CONFIG_ARTIFACT = "config.yaml"
# MLflow's error codes for a run id that no store holds (malformed ids are refused as invalid)
MISSING = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")


def get_run(client: MlflowClient, run_id: str, action: str, option: str = SEQLAB_OPTION) -> Run:
    """The run, or a TrackingError naming the id and the store when there is no such run.

    A tracking server that does not answer is named as such within seconds (not after MLflow's minutes of
    retries, and not as a missing run). `option` is how the command at hand sets the store, for the hints.
    """
    check_reachable(client.tracking_uri, option)
    try:
        run = client.get_run(run_id)
    except MlflowException as exc:
        if exc.error_code not in MISSING:
            raise TrackingError(
                f"Cannot {action} run '{run_id}': the MLflow store {redact(client.tracking_uri)} did not "
                f"answer as expected: {redact(str(exc))}. Check {option} / MLFLOW_TRACKING_URI and that the "
                "store is reachable and readable."
            ) from exc
        raise TrackingError(
            f"Cannot {action} run '{run_id}': there is no such run in the MLflow store "
            f"{redact(client.tracking_uri)}. Give the run id that seqlab printed or the MLflow UI shows "
            f"(32 hex characters), and the store it is in ({option} or MLFLOW_TRACKING_URI)."
        ) from exc
    if run.info.lifecycle_stage == "deleted":
        raise TrackingError(f"Cannot {action} run '{run_id}': it is deleted; restore it in MLflow first.")
    return run


def logged_config(client: MlflowClient, run_id: str, option: str = SEQLAB_OPTION) -> dict[str, Any]:
    """The run's resolved config as plain containers."""
    check_reachable(client.tracking_uri, option)
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


def logged_threads(run: Run) -> int | None:
    """The torch thread count the run trained with (param names.TORCH_THREADS), None for runs that predate it.

    Its config may say torch_threads null: the run then had its process's count (a joblib job's share of
    the cores, or torch's default), and floating-point sums depend on it, so training that must compute
    exactly what the run did sets this count.
    """
    threads = run.data.params.get(names.TORCH_THREADS, "")
    return int(threads) if threads.isdigit() else None


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
