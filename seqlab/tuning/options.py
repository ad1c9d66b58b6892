"""The tuning sweeper's options (`hydra.sweeper.*` under hydra/sweeper=tune), checked, and the Optuna sampler
and pruner they name."""

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from seqlab import names
from seqlab.errors import ConfigError

SAMPLERS = ("tpe", "random", "cmaes", "grid")
PRUNERS = ("none", "median", "hyperband")
DIRECTIONS = ("minimize", "maximize")
OPTION = "hydra.sweeper"
# the sweeper's class; an experiment preset's sweep; the parent run class conf/config.yaml reads
NOT_OPTIONS = ("_target_", "params", "parent_run")


@dataclass(frozen=True)
class TuneOptions:
    n_trials: int = 20  # trials per arm: every arm gets the same budget
    eval_seeds: tuple[int, ...] = (
        10,
        11,
        12,
        13,
        14,
    )  # each arm's best config trains once per seed; [] skips
    search_seeds: tuple[int, ...] | None = None  # None: a trial trains on `seed`; else on each, averaged
    sampler: str = "tpe"
    sampler_seed: int | None = 0  # the same command proposes the same trials; null: a new draw each time
    pruner: str = "none"
    pruner_startup_trials: int = 5  # median: trials that run to the end before any is pruned
    pruner_warmup_epochs: int = 0  # median: epochs of every trial that are never pruned
    direction: str = "minimize"
    metric: str = names.VAL_LOSS  # reported each epoch; a trial's value is its best epoch's
    storage: str | None = None  # the Optuna database; None: beside the tracking store (study.storage_url)
    study_name: str | None = None  # None: named from the command line
    n_jobs: int = 1  # trials launched at once, through whichever launcher is chosen


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _seed_list(key: str, value: Any) -> tuple[int, ...]:
    if not isinstance(value, list | tuple) or not all(_integer(v) for v in value):
        raise ConfigError(f"Invalid {OPTION}.{key}={value!r}: a list of integer seeds, e.g. [10,11,12].")
    if len(set(value)) != len(value):
        raise ConfigError(f"Invalid {OPTION}.{key}={list(value)}: a seed is listed twice.")
    return tuple(value)


def tune_options(raw: Mapping[str, Any]) -> TuneOptions:
    """The options from the sweeper's config (plain values); ConfigError, one paragraph, for a bad one.
    Keys of the sweeper's config that are not options (`_target_`, a preset's `params`) are skipped."""
    known = {f.name for f in fields(TuneOptions)}
    for key in raw:
        if key not in known and key not in NOT_OPTIONS:
            import difflib

            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f" Did you mean {OPTION}.{close[0]}?" if close else ""
            raise ConfigError(
                f"Unknown option {OPTION}.{key}.{hint} Options of hydra/sweeper=tune: "
                f"{', '.join(sorted(known))}."
            )
    given = {k: v for k, v in raw.items() if k in known}
    if "eval_seeds" in given:
        given["eval_seeds"] = _seed_list("eval_seeds", given["eval_seeds"])
    if given.get("search_seeds") is not None:
        given["search_seeds"] = _seed_list("search_seeds", given["search_seeds"])
        if not given["search_seeds"]:
            raise ConfigError(
                f"Invalid {OPTION}.search_seeds=[]: give at least one seed, or null to search on `seed`."
            )
    options = TuneOptions(**given)
    for key in ("n_trials", "n_jobs"):
        value = getattr(options, key)
        if not _integer(value) or value < 1:
            raise ConfigError(f"Invalid {OPTION}.{key}={value!r}: a whole number of at least 1.")
    for key in ("pruner_startup_trials", "pruner_warmup_epochs"):
        value = getattr(options, key)
        if not _integer(value) or value < 0:
            raise ConfigError(f"Invalid {OPTION}.{key}={value!r}: a whole number of at least 0.")
    for key, allowed in (("sampler", SAMPLERS), ("pruner", PRUNERS), ("direction", DIRECTIONS)):
        value = getattr(options, key)
        if value not in allowed:
            raise ConfigError(f"Unknown {OPTION}.{key}={value!r}. Allowed: {', '.join(allowed)}.")
    if options.sampler_seed is not None and not _integer(options.sampler_seed):
        raise ConfigError(f"Invalid {OPTION}.sampler_seed={options.sampler_seed!r}: an integer, or null.")
    if not isinstance(options.metric, str) or not options.metric.startswith(f"{names.VAL}/"):
        raise ConfigError(
            f"Invalid {OPTION}.metric={options.metric!r}: a validation metric the runs log each epoch, such "
            f"as {names.VAL_LOSS} (the default) or val/nll; the test split stays unseen by the search."
        )
    seen = set(options.search_seeds or ())
    shared = sorted(seen & set(options.eval_seeds))
    if shared:
        raise ConfigError(
            f"{OPTION}.eval_seeds={list(options.eval_seeds)} shares seed(s) {shared} "
            f"with {OPTION}.search_seeds: the evaluation trains on seeds the search never saw."
        )
    return options


def sampler(options: TuneOptions, grid: dict[str, list[Any]] | None, offset: int = 0) -> Any:
    """The sampler `options.sampler` names, seeded with sampler_seed + `offset` (the trials the study
    already holds: a new study proposes what the same command proposed before, a resumed one goes on
    to new points). TPE with a constant liar: trials running side by side do not get the same point."""
    import optuna

    seed = None if options.sampler_seed is None else options.sampler_seed + offset
    if options.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True)
    if options.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if options.sampler == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    assert grid is not None
    return _GridSampler(grid, seed=seed)


def _grid_sampler_class() -> type:
    import optuna

    class GridSampler(optuna.samplers.GridSampler):
        """Optuna's grid sampler, without its Study.stop() once the grid is done: that stop is for
        Study.optimize's loop, and outside it raises; the tuner stops at the budget, capped to the grid."""

        def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
            pass

    return GridSampler


def _GridSampler(grid: dict[str, list[Any]], seed: int | None) -> Any:  # noqa: N802 (a class, made lazily)
    return _grid_sampler_class()(grid, seed=seed)


def pruner(options: TuneOptions) -> Any:
    import optuna

    if options.pruner == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=options.pruner_startup_trials, n_warmup_steps=options.pruner_warmup_epochs
        )
    if options.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource="auto")
    return optuna.pruners.NopPruner()
