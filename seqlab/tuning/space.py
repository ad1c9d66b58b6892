"""A tuning command line as arms and a search space.

Plain comma lists (`cell=rnn,lstm,gru`) are arms, expanded as Hydra's basic sweeper expands them: each
arm is searched on its own with the same budget. Hydra's sweep functions (`interval`, `range`,
`choice`, `tag(log, ...)`) are the search space, as Optuna distributions. Every other override is
fixed in every job. The seed is never part of either: a sweep over it is refused here.
"""

import re
from dataclasses import dataclass
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from seqlab.errors import ConfigError
from seqlab.tracking.sweep import parse, sweep_jobs

SEED_KEYS = ("seed", "task.seed")
LOG_TAG = "log"
SINGLE_ARM = "all"  # the arm's name when the command has no comma list
WHERE_SEEDS_GO = (
    "Under hydra/sweeper=tune the seed is never tuned nor swept: each trial trains on `seed` (one value, "
    "e.g. seed=0), or on every seed of hydra.sweeper.search_seeds=[0,1] averaged within the trial, and the "
    "best configuration of each arm is trained again on hydra.sweeper.eval_seeds=[10,11,12,13,14], seeds the "
    "search never saw; those runs are the answer."
)


@dataclass(frozen=True)
class Dimension:
    """One key of the search space."""

    key: str
    typed: str  # the override as typed, e.g. optimizer.lr=tag(log, interval(1e-4, 1e-2))
    distribution: BaseDistribution


@dataclass(frozen=True)
class Arm:
    """One value of each comma list: a search of its own."""

    name: str  # what tags, metric keys and artifact folders call it, e.g. cell-gru
    overrides: tuple[str, ...]  # e.g. ("cell=gru",)


@dataclass(frozen=True)
class SearchPlan:
    arms: tuple[Arm, ...]
    space: tuple[Dimension, ...]
    fixed: tuple[str, ...]  # overrides every job of the sweep gets, as typed


def _is_search(override: Any) -> bool:
    """A sweep function (interval, range, choice(...)): a comma list is a ChoiceSweep in simple form."""
    if not override.is_sweep_override():
        return False
    return not (override.is_choice_sweep() and override.value().simple_form)


def _typed(override: Any) -> str:
    assert override.input_line is not None  # set by the parser on every override
    return str(override.input_line)


def arm_name(overrides: list[str]) -> str:
    """`cell=gru norm=layer` -> `cell-gru_norm-layer`: letters, digits, `.`, `-` and `_` only, so the name
    works as an MLflow metric key, a tag value and a folder name."""
    if not overrides:
        return SINGLE_ARM
    parts = []
    for override in overrides:
        key, _, value = override.partition("=")
        parts.append(f"{key.lstrip('+~').rpartition('.')[2]}-{value}")
    return re.sub(r"[^\w.\-]", "_", "_".join(parts))


def _refuse_seed_sweep(override: Any, preset: bool) -> None:
    if override.key_or_group not in SEED_KEYS or not override.is_sweep_override():
        return
    where = (
        f"The experiment preset sweeps {_typed(override)} (hydra.sweeper.params.{override.key_or_group}); "
        f"leave it out with ~hydra.sweeper.params.{override.key_or_group}."
        if preset
        else f"Refused: {_typed(override)}."
    )
    raise ConfigError(f"{where} {WHERE_SEEDS_GO}")


def distribution(override: Any) -> BaseDistribution:
    """The Optuna distribution of one sweep function; ConfigError for one Optuna cannot search."""
    value = override.value()
    typed = _typed(override)
    tags = set(value.tags)
    if tags - {LOG_TAG}:
        raise ConfigError(
            f"Unknown tag {', '.join(sorted(tags - {LOG_TAG}))} in {typed}: the search space understands "
            "tag(log, interval(low, high)) and tag(log, range(low, high)) only (a log-uniform search)."
        )
    log = LOG_TAG in tags
    if override.is_interval_sweep():
        low, high = float(value.start), float(value.end)
        if not low < high or (log and low <= 0):
            raise ConfigError(
                f"Invalid search range {typed}: interval(low, high) needs low < high"
                + (", and tag(log, ...) a low above 0." if log else ".")
            )
        return FloatDistribution(low, high, log=log)
    if override.is_range_sweep():
        values = list(override.sweep_iterator())
        step = abs(value.step)
        if not values:
            raise ConfigError(f"Invalid search range {typed}: range(start, stop, step) gives no value.")
        low, high = min(values), max(values)
        if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            if log and (step != 1 or low <= 0):
                raise ConfigError(
                    f"Invalid search range {typed}: tag(log, range(...)) needs a step of 1 and a start "
                    "above 0."
                )
            return IntDistribution(int(low), int(high), step=1 if log else int(step), log=log)
        if log:
            raise ConfigError(
                f"Invalid search range {typed}: a log search over numbers with a step cannot be; use "
                "tag(log, interval(low, high))."
            )
        return FloatDistribution(float(low), float(high), step=float(step))
    choices = list(override.sweep_iterator())
    if log:
        raise ConfigError(
            f"Invalid search range {typed}: tag(log, ...) takes interval() or range(), not choice()."
        )
    bad = [c for c in choices if not isinstance(c, str | int | float | bool)]
    if bad or not choices:
        raise ConfigError(
            f"Invalid search range {typed}: choice(...) takes plain values (numbers, strings, true/false), "
            f"not {bad[0]!r}."
            if bad
            else f"Invalid search range {typed}: choice() has no value."
        )
    return CategoricalDistribution(choices)


def plan_search(overrides: list[str], preset: list[str] = ()) -> SearchPlan:  # type: ignore[assignment]
    """Arms, search space and fixed overrides of a tuning command: the preset's sweep (`preset`, from
    hydra.sweeper.params) then the command line's `overrides`. ConfigError for a seed sweep, a search
    function Optuna cannot search, or no search space at all."""
    typed_here = {o.key_or_group for o in parse(overrides)}
    # as in the basic sweeper: the command line replaces the preset's sweep of the same key
    kept = [o for o in parse(list(preset)) if o.key_or_group not in typed_here]
    parsed = [*kept, *parse(overrides)]
    arms, space, fixed = [], [], []
    for n, override in enumerate(parsed):
        _refuse_seed_sweep(override, preset=n < len(kept))
        if _is_search(override):
            space.append(Dimension(override.key_or_group, _typed(override), distribution(override)))
        elif override.is_sweep_override():
            arms.append(_typed(override))
        else:
            fixed.append(_typed(override))
    if not space:
        raise ConfigError(
            "hydra/sweeper=tune has no search space: no override uses a sweep function. Give the keys "
            "to tune as interval(), range(), choice() or tag(log, ...), e.g. "
            "'optimizer.lr=tag(log, interval(1e-4, 1e-2))' 'model.dropout=interval(0, 0.5)' "
            "'model.num_layers=range(1,3)'; plain comma lists "
            "(cell=rnn,lstm,gru) are arms, each searched with the same budget."
        )
    keys = [d.key for d in space]
    twice = sorted(
        {k for k in keys if keys.count(k) > 1} | {k for k in keys if any(a.startswith(f"{k}=") for a in arms)}
    )
    if twice:
        raise ConfigError(
            f"{', '.join(twice)} is swept twice on the command line: give each key one value or sweep."
        )
    jobs = sweep_jobs(arms) if arms else [[]]
    swept = {a.partition("=")[0] for a in arms}
    named = [Arm(arm_name([o for o in job if o.partition("=")[0] in swept]), tuple(job)) for job in jobs]
    return SearchPlan(tuple(named), tuple(space), tuple(fixed))


def hydra_value(value: Any) -> str:
    """A sampled value as a Hydra override writes it (a string quoted unless it reads back as itself)."""
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, int | float):
        return repr(value)
    plain = str(value)
    try:
        if parse([f"k={plain}"])[0].value() == value:
            return plain
    except Exception:
        pass
    escaped = plain.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


def point_overrides(params: dict[str, Any]) -> list[str]:
    return [f"{key}={hydra_value(value)}" for key, value in params.items()]


def sample_points(space: tuple[Dimension, ...]) -> list[dict[str, Any]]:
    """Points that bound the space, for checking it before any trial: every key at its low end, every
    key at its high end, and each choice of a choice() once."""

    def end(d: BaseDistribution, high: bool) -> Any:
        if isinstance(d, CategoricalDistribution):
            return d.choices[-1 if high else 0]
        assert isinstance(d, FloatDistribution | IntDistribution)
        return d.high if high else d.low

    low = {d.key: end(d.distribution, False) for d in space}
    points = [low, {d.key: end(d.distribution, True) for d in space}]
    for d in space:
        if isinstance(d.distribution, CategoricalDistribution):
            points += [low | {d.key: c} for c in d.distribution.choices[1:-1]]
    return points


def grid_of(space: tuple[Dimension, ...]) -> dict[str, list[Any]]:
    """The points of sampler=grid: every value of each range() and choice(); an interval() has none."""
    grid: dict[str, list[Any]] = {}
    for d in space:
        dist = d.distribution
        if isinstance(dist, CategoricalDistribution):
            grid[d.key] = list(dist.choices)
        elif isinstance(dist, IntDistribution | FloatDistribution) and dist.step is not None:
            count = round((dist.high - dist.low) / dist.step) + 1
            grid[d.key] = [dist.low + i * dist.step for i in range(count)]
        else:
            raise ConfigError(
                f"hydra.sweeper.sampler=grid cannot search {d.typed}: a grid takes range() and choice() "
                "only; an interval() has no points to list. Use range(low, high, step), or another sampler "
                "(tpe, random, cmaes)."
            )
    return grid
