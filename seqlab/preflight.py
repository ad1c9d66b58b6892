"""Compose and validate every job of a command line before Hydra starts any of them.

Hydra reports a bad override only when it composes a job, and a job's own values only when it runs;
in a sweep that can be an hour in. Here each job of the sweep is composed with Hydra's compose API
and passed through `validate` first, and Hydra's terse composition errors become one paragraph that
names the bad value and lists what is allowed.
"""

import difflib
import json
from typing import Any, cast

from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import HydraException, MissingConfigException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from seqlab.config import _unknown_key, check_override_keys, register_configs, validate
from seqlab.errors import ConfigError, SeqlabError
from seqlab.tracking.sweep import sweep_jobs
from seqlab.tuning.command import tunes

CONFIG_MODULE, CONFIG_NAME = "seqlab.conf", "config"
_FLAGS_WITH_JOBS = {"-m", "--multirun"}
_MISSING = object()


def _one_paragraph(text: object) -> str:
    return " ".join(line.strip() for line in str(text).splitlines() if line.strip())


def input_line(override: Override) -> str:
    """The override as it was typed (Hydra types it Optional; the parser sets it on every override)."""
    assert override.input_line is not None
    return override.input_line


def _explain_missing_option(exc: MissingConfigException, overrides: list[str]) -> ConfigError:
    missing = exc.missing_cfg_file or ""
    group, _, option = missing.rpartition("/")
    options = exc.options or GlobalHydra.instance().config_loader().get_group_options(group)
    if group and options:
        close = difflib.get_close_matches(option, sorted(options), n=1)
        hint = f" Did you mean {group}={close[0]}?" if close else ""
        return ConfigError(
            f"Unknown option {group}={option}.{hint} Allowed for '{group}': {', '.join(sorted(options))}."
        )
    return ConfigError(_one_paragraph(exc))


def _explain_unknown_key(job: list[str], groups: set[str]) -> ConfigError | None:
    """Find the first key override that names no key of the config its group choices compose."""
    parsed = OverridesParser.create().parse_overrides(job)
    group_choices = [
        input_line(o) for o in parsed if o.key_or_group in groups or o.key_or_group == "hydra.searchpath"
    ]
    base = compose(CONFIG_NAME, overrides=group_choices)
    for override in parsed:
        key = override.key_or_group
        if (
            key in groups
            or key.startswith("hydra")
            or override.is_add()
            or override.is_force_add()
            or override.is_delete()
        ):
            continue
        if OmegaConf.select(base, key, default=_MISSING) is _MISSING:
            parent, _, leaf = key.rpartition(".")
            node = OmegaConf.select(base, parent) if parent else base
            if isinstance(node, DictConfig):
                return _unknown_key(parent or "<root>", leaf, {str(k) for k in node})
            return ConfigError(f"Unknown config key '{key}': '{parent}' is not a config section.")
    return None


def _set_keys(job: list[str]) -> list[str]:
    """The keys a job's overrides set to a value (a `key=null` or `~key` sets nothing)."""
    parsed = OverridesParser.create().parse_overrides(job)
    return [o.key_or_group for o in parsed if not o.is_delete() and o.value() is not None]


def _compose_job(job: list[str], groups: set[str]) -> DictConfig:
    try:
        return compose(CONFIG_NAME, overrides=job)
    except MissingConfigException as exc:
        raise _explain_missing_option(exc, job) from exc
    except (HydraException, OmegaConfBaseException) as exc:
        explained = _explain_unknown_key(job, groups)
        if explained is not None:
            raise explained from exc
        cause = exc.__cause__ or exc
        raise ConfigError(f"Invalid override in [{' '.join(job)}]: {_one_paragraph(cause)}") from exc


def jobs_of(argv: list[str]) -> list[list[str]] | None:
    """The override lists of every job the command line would run; None to leave it all to Hydra."""
    if any(a.startswith("-") and a not in _FLAGS_WITH_JOBS for a in argv):
        return None  # --help, --cfg, --info, -c ...: Hydra's business, no job runs
    multirun = any(a in _FLAGS_WITH_JOBS for a in argv)
    try:
        parsed = OverridesParser.create().parse_overrides([a for a in argv if not a.startswith("-")])
    except HydraException:
        return None  # a syntax error: Hydra explains it
    ours = [o for o in parsed if not o.key_or_group.startswith("hydra")]
    if not multirun:
        if any(o.is_sweep_override() for o in ours):
            return None  # Hydra says to add --multirun
        return [[input_line(o) for o in ours]]
    return sweep_jobs([input_line(o) for o in ours])


def _preset_sweep(job: list[str]) -> list[str]:
    """The sweep an experiment preset declares in `hydra.sweeper.params`, as overrides."""
    params = compose(CONFIG_NAME, overrides=job, return_hydra_config=True).hydra.sweeper.get("params") or {}
    return [f"{key}={value}" for key, value in params.items()]


def searchpath_overrides(argv: list[str]) -> list[str]:
    """`hydra.searchpath=[...]` on the command line: the user's config folders, which every job composes
    with."""
    return [a for a in argv if a.lstrip("+").startswith("hydra.searchpath=")]


def preflight(argv: list[str], data: bool = False) -> list[list[str]]:
    """Raise ConfigError for the first job of the command line whose config is invalid; the jobs checked.

    With `data`, a sweep's data is built too (check_data): `seqlab` asks for it, and a check of the
    configs alone stays offline and quick.
    """
    tuning = tunes(argv) and any(a in _FLAGS_WITH_JOBS for a in argv)
    if tuning and any(a.startswith("-") and a not in _FLAGS_WITH_JOBS for a in argv):
        return []  # --help, --cfg, ...: Hydra's business, no job runs
    jobs = [[]] if tuning else jobs_of(argv)
    if not jobs:
        return []
    jobs = [[*searchpath_overrides(argv), *job] for job in jobs]
    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
        groups = set(GlobalHydra.instance().config_loader().list_groups(""))
        if tuning:
            jobs = [[*searchpath_overrides(argv), *job] for job in tuning_jobs(argv, groups)]
        elif any(a in _FLAGS_WITH_JOBS for a in argv):
            _compose_job(jobs[0], groups)  # a bad override is explained before the preset is read
            preset = _preset_sweep(jobs[0])
            if preset:  # like Hydra's basic sweeper: the preset's sweep, then the command line on top
                swept = jobs_of(["--multirun", *preset, *(a for a in argv if not a.startswith("-"))])
                jobs = [[*searchpath_overrides(argv), *job] for job in swept] if swept else jobs
        data_checked: set[str] = set()
        for job in jobs:
            cfg = _compose_job(job, groups)
            try:
                check_override_keys(_set_keys(job))
                validate(cfg)
                if data and len(jobs) > 1:
                    check_data(cfg, data_checked)
            except SeqlabError as err:
                if len(jobs) > 1:
                    raise type(err)(f"{err} (sweep job: {' '.join(job) or 'defaults'})") from err
                raise
    GlobalHydra.instance().clear()
    return jobs


def tuning_jobs(argv: list[str], groups: set[str]) -> list[list[str]]:
    """Under hydra/sweeper=tune: the jobs that bound the search (each arm at the low and the high end of
    every key, each choice once) with the sweeper's options checked first; ConfigError for a bad option, a
    seed sweep or a search space Optuna cannot search. Sweep functions are allowed here, and only here."""
    from seqlab.tuning.plan import tuning_of
    from seqlab.tuning.space import point_overrides, sample_points

    parsed = OverridesParser.create().parse_overrides([a for a in argv if not a.startswith("-")])
    hydra_part = [input_line(o) for o in parsed if o.key_or_group.startswith("hydra")]
    task = [input_line(o) for o in parsed if not o.key_or_group.startswith("hydra")]
    fixed = [
        input_line(o) for o in parsed if not o.key_or_group.startswith("hydra") and not o.is_sweep_override()
    ]
    searchpath = searchpath_overrides(argv)
    _compose_job(
        [*searchpath, *fixed], groups
    )  # a bad fixed override is explained before the sweeper is read
    try:
        hydra_cfg = compose(
            CONFIG_NAME, overrides=[*searchpath, *fixed, *hydra_part], return_hydra_config=True
        )
    except (HydraException, OmegaConfBaseException) as exc:
        raise ConfigError(f"Invalid hydra.sweeper override: {_one_paragraph(exc.__cause__ or exc)}") from exc
    tuning = tuning_of(hydra_cfg.hydra.sweeper, task)
    seed = [f"seed={tuning.options.search_seeds[0]}"] if tuning.options.search_seeds else []
    return [
        [*tuning.plan.fixed, *arm.overrides, *point_overrides(point), *seed]
        for arm in tuning.plan.arms
        for point in sample_points(tuning.plan.space)
    ]


def check_data(cfg: DictConfig, checked: set[str]) -> None:
    """Build a sweep job's data before the first job trains, once per task config (its seed aside: a
    file, a download or a table does not depend on it); a lone run builds its own before its run exists.

    `checked` holds the task configs already built.
    """
    task = cast(dict[str, Any], OmegaConf.to_container(cfg.task, resolve=True))
    options = {k: v for k, v in task.items() if k != "seed"}
    key = json.dumps(options, sort_keys=True, default=str)
    if key in checked:
        return
    checked.add(key)
    instantiate(cfg.task).prepare()
