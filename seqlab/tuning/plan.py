"""A tuning sweep as its multirun config describes it: the options, arms and space, and the study name.
Read the same way by preflight, by the parent run and by the sweeper."""

from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from seqlab.tuning.options import TuneOptions, tune_options
from seqlab.tuning.space import SearchPlan, plan_search
from seqlab.tuning.study import study_name

SWEEPER_CHOICE = "hydra/sweeper=tune"
SWEEPER_TARGET = "hydra_plugins.seqlab_tune_sweeper.tune_sweeper.TuneSweeper"


@dataclass(frozen=True)
class Tuning:
    options: TuneOptions
    plan: SearchPlan
    name: str  # the study's name; each arm's study is `<name> [<arm>]`
    overrides: tuple[str, ...]  # the preset's sweep, then the command line's


def preset_sweep(sweeper: Any) -> list[str]:
    """An experiment preset's `hydra.sweeper.params` as overrides."""
    params = sweeper.get("params") or {}
    return [f"{key}={value}" for key, value in params.items()]


def tuning_of(sweeper: Any, task_overrides: list[str]) -> Tuning:
    """The tuning sweep of a `hydra.sweeper` config and the command's task overrides; ConfigError, one
    paragraph, for a bad option or search space."""
    raw = OmegaConf.to_container(sweeper, resolve=True) if isinstance(sweeper, DictConfig) else dict(sweeper)
    assert isinstance(raw, dict)
    options = tune_options({str(k): v for k, v in raw.items()})
    preset = preset_sweep(raw)
    plan = plan_search(task_overrides, preset)
    if options.sampler == "grid":
        from seqlab.tuning.space import grid_of

        grid_of(plan.space)
    return Tuning(options, plan, study_name(options, [*preset, *task_overrides]), (*preset, *task_overrides))


def tuning_of_config(config: DictConfig) -> Tuning:
    """The tuning sweep of a multirun's config (Hydra's config at on_multirun_start or in the sweeper)."""
    # unresolved: an override that hides a credential behind ${oc.env:...} must reach the jobs as typed
    overrides = OmegaConf.to_container(config.hydra.overrides.task, resolve=False)
    assert isinstance(overrides, list)
    return tuning_of(config.hydra.sweeper, [str(o) for o in overrides])


def is_tuning(config: DictConfig) -> bool:
    return str(config.hydra.get("sweeper", {}).get("_target_", "")) == SWEEPER_TARGET
