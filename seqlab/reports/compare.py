"""`seqlab-compare`: which configuration is best, over seeds, and is the difference more than noise?

One row per configuration (the params that differ between runs, seeds aside), with the mean, standard
deviation and 95% confidence interval (Student's t) of each test metric, the parameter count and the
training time. The best row on the chosen metric is compared with the runner-up by Welch's t-test.
Runs of different tasks get a table each: a loss on one task says nothing about a loss on another.
"""

import argparse
import csv
import io
import math
import shutil
import sys
import tempfile
import textwrap
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from mlflow import MlflowClient
from mlflow.entities import Run
from scipy import stats

from seqlab import names
from seqlab.reports import page, verdict
from seqlab.reports.histories import read_into
from seqlab.reports.numbers import fmt, fmt_p
from seqlab.reports.tuning import Tuning
from seqlab.reports.tuning import read as read_tuning
from seqlab.tracking.server import SCRIPT_OPTION
from seqlab.tracking.store import add_tracking_uri_option, as_typed, read_store, tracking_uri

SIGNIFICANCE = 0.05
# Params that differ between runs without making another configuration: how a run was seeded, tracked,
# threaded (torch_threads: set by hand in one run, by a joblib sweep in another) and how its checkpoints
# were written (trainer.plugins; runs from before seqlab set it have no such param). Speed, not the model.
# Nor what a configuration implies (its parameter count, its split sizes: a longer horizon leaves fewer
# windows), nor the published.* params (a preset's paper numbers), which describe a paper, not the run.
NOT_A_CONFIGURATION = (
    "seed",
    "task.seed",
    "tracking.",
    "paths.",
    "callbacks.",
    "trainer.default_root_dir",
    "trainer.plugins",
    names.N_PARAMS,
    names.N_TRAIN,
    names.N_VAL,
    names.N_TEST,
    "torch_threads",
    names.TORCH_THREADS,
    "published.",
)
PUBLISHED_SETTING = "published.setting."  # + a config key: the value the paper's numbers assume
IMPLIED = (
    "model.hidden_size",
    "model.head_hidden",
)  # what model.param_budget chooses per cell, in this order
# Runs logged before seqlab tagged names.HIGHER_IS_BETTER_TAG: of the metrics seqlab logged then, only
# accuracy is higher-is-better (the losses, mse, mae and nll are not), so that is all such a run can say.
UNTAGGED_HIGHER_IS_BETTER = ("accuracy",)
TASK_CLASS = "task._target_"  # the param that names a run's task
# Longer configuration labels are shown as numbered configurations with a legend. Printed lines fit the
# terminal, else LINE_WIDTH (a pipe, a log file); a table wider than that continues in blocks of columns.
LABEL_WIDTH = 40
LINE_WIDTH = 160


def higher_is_better(metric: str, runs: Iterable[Run]) -> bool:
    """Whether a larger `metric` is better, as the runs' tag names.HIGHER_IS_BETTER_TAG says (each metric's
    own torchmetrics `higher_is_better`, recorded at training time): never guessed from the metric's name."""
    for run in runs:
        tag = run.data.tags.get(names.HIGHER_IS_BETTER_TAG)
        if tag is None:
            if metric.rsplit("/", 1)[-1] in UNTAGGED_HIGHER_IS_BETTER:
                return True
        elif metric in {key.strip() for key in tag.split(",")}:
            return True
    return False


@dataclass(frozen=True)
class Summary:
    """Mean, sample standard deviation and the 95% t confidence interval of one metric over seeds."""

    n: int
    mean: float
    std: float
    ci_low: float
    ci_high: float

    @classmethod
    def of(cls, values: list[float]) -> "Summary":
        a = np.asarray(values, dtype=float)
        mean = float(a.mean()) if len(a) else math.nan
        if len(a) < 2:
            return cls(len(a), mean, math.nan, math.nan, math.nan)
        std = float(a.std(ddof=1))
        half = float(stats.t.ppf(0.975, len(a) - 1)) * std / math.sqrt(len(a))
        return cls(len(a), mean, std, mean - half, mean + half)


@dataclass
class Row:
    label: str  # e.g. "cell.name=gru"
    runs: list[Run]
    short: str = ""  # "config 2" where labels are too long to read in a table (Comparison.legend)
    metrics: dict[str, Summary] = field(default_factory=dict)
    values: dict[str, list[float]] = field(default_factory=dict)
    n_params: str = ""
    fit_s: float = math.nan
    published: float | None = None  # the paper's number for these runs on the compared metric
    unpublished: str = ""  # when there is none though the runs carry a paper's numbers: why
    p_vs_best: float = math.nan  # Welch's t-test of this row against the best on the compared metric
    horizon: Summary = field(default_factory=lambda: Summary.of([]))  # names.GRADIENT_HORIZON over seeds
    # read from each run's history (seqlab.reports.histories.read_into), where a client is at hand:
    curves: list[list[float]] = field(default_factory=list)  # the validation metric per epoch, per run
    flows: list[list[float]] = field(default_factory=list)  # each run's gradient flow, relative to k = 0
    epoch_s: float = math.nan  # seconds per training epoch, mean over runs

    def against_published(self, metric: str) -> str:
        """Better, short or a tie (the published number inside the runs' 95% CI), and by how much."""
        summary = self.metrics.get(metric)
        if self.published is None or summary is None or math.isnan(summary.mean):
            return ""
        if summary.ci_low <= self.published <= summary.ci_high:
            return "a tie (inside the 95% CI)"
        ahead = (summary.mean > self.published) == higher_is_better(metric, self.runs)
        return f"{'better' if ahead else 'short'} by {abs(summary.mean - self.published):.3g}"

    @property
    def name(self) -> str:
        """How tables and verdicts call the row."""
        return self.short or self.label


@dataclass
class Comparison:
    metric: str
    rows: list[Row]  # best first
    p_value: float  # Welch's t-test, best vs runner-up (nan: fewer than 2 rows, or < 2 seeds each)
    published_source: str = ""  # the paper the runs' published numbers come from, if they carry any
    # the task's trivial baselines on each test metric: {"persistence": {"test/mse": 0.034, ...}, ...}
    baselines: dict[str, dict[str, float]] = field(default_factory=dict)
    tuning: Tuning | None = None  # the search behind the runs, when the parent is a tuning sweep
    read: bool = False  # whether the rows' histories (curves, time per epoch, gradient flow) were read

    def best_baseline(self) -> tuple[str, float] | None:
        """The baseline that scores best on the compared metric, and its score; None without baselines."""
        scored = [
            (name, scores[self.metric]) for name, scores in self.baselines.items() if self.metric in scores
        ]
        if not scored or not self.rows:
            return None
        better = max if higher_is_better(self.metric, self.rows[0].runs) else min
        return better(scored, key=lambda item: item[1])

    def beats_chance(self, row: Row) -> bool | None:
        """Whether the row is better than the best trivial baseline beyond the spread of its seeds: its
        whole 95% CI on the better side of the baseline's score (its mean, with one seed and so no
        interval). A mean a hair under chance is not a cell that learned. None without baselines."""
        best_baseline = self.best_baseline()
        summary = row.metrics.get(self.metric)
        if best_baseline is None or summary is None or math.isnan(summary.mean):
            return None
        higher = higher_is_better(self.metric, row.runs)
        low, high = (summary.ci_low, summary.ci_high)
        if math.isnan(low) or math.isnan(high):
            low = high = summary.mean
        return low > best_baseline[1] if higher else high < best_baseline[1]

    @property
    def baseline_note(self) -> str:
        """Whether any configuration beats the best trivial baseline, and by how much ("" without one)."""
        best_baseline = self.best_baseline()
        summary = self.rows[0].metrics.get(self.metric) if self.rows else None
        if best_baseline is None or summary is None or math.isnan(summary.mean):
            return ""
        name, score = best_baseline
        higher = higher_is_better(self.metric, self.rows[0].runs)
        margin = (summary.mean - score) if higher else (score - summary.mean)
        share = f" ({abs(margin) / abs(score):.0%})" if score else ""
        if margin <= 0:
            return (
                f"No configuration beats the best trivial baseline: {name} scores {score:.4g} on "
                f"{self.metric}, the best configuration ({self.rows[0].name}) {summary.mean:.4g}, worse by "
                f"{abs(margin):.3g}{share}."
            )
        return (
            f"The best configuration ({self.rows[0].name}) beats the best trivial baseline ({name}, "
            f"{score:.4g}) on {self.metric} by {margin:.3g}{share}."
        )

    @property
    def published_note(self) -> str:
        """What the published columns compare, and the rows that got no number, with why ("" without them)."""
        if not self.published_source:
            return ""
        missing = [f"{row.name} ({row.unpublished})" for row in self.rows if row.unpublished]
        return (
            f"published: {self.published_source}, {self.metric} (vs published: the difference of the means, "
            "a tie when the published number is inside the 95% CI)"
            + (f"; no published number for {'; '.join(missing)}" if missing else "")
        )

    @property
    def verdict(self) -> str:
        if len(self.rows) < 2:
            return "only one configuration: nothing to compare"
        best, second = self.rows[0].name, self.rows[1].name
        if math.isnan(self.p_value):
            return (
                f"{best} is best on {self.metric}; too few seeds to test it against {second} (Welch's test "
                "needs two seeds or more of each)"
            )
        if self.p_value < SIGNIFICANCE:
            return (
                f"{best} is best on {self.metric}, significantly better than {second} "
                f"(Welch's t-test p={fmt_p(self.p_value)} < {SIGNIFICANCE})"
            )
        return (
            f"{best} is best on {self.metric}, but its difference to {second} is within noise "
            f"(Welch's t-test p={fmt_p(self.p_value)} >= {SIGNIFICANCE}): run more seeds before choosing"
        )

    @property
    def reading(self) -> str:
        """The verdict paragraph: the test, then what could weaken it, time per epoch and gradient horizons
        (seqlab.reports.verdict); every figure in it is in the table."""
        return verdict.paragraph(self)

    @property
    def legend(self) -> list[str]:
        """What each numbered configuration is ([] when the rows go by their labels)."""
        return [f"{row.short}: {row.label}" for row in self.rows if row.short]


def runs_to_compare(
    client: MlflowClient,
    parent_run_id: str | None = None,
    experiment: str | None = None,
    option: str = SCRIPT_OPTION,
) -> list[Run]:
    """The finished jobs of a sweep (its parent's children), or the finished leaf runs of an experiment.

    A parent run or experiment that is not in the store, or a run id that is no sweep's (a job, a lone
    run), raises a TrackingError naming it; `option` is how the command sets the store, for the hints.
    """
    from seqlab.errors import TrackingError
    from seqlab.reproduce.run_config import get_run

    if parent_run_id:
        parent = get_run(client, parent_run_id, "compare the jobs of", option)
        sweep = parent.data.tags.get(names.PARENT_RUN_TAG)
        if sweep:
            raise TrackingError(
                f"Run '{parent_run_id}' ({parent.info.run_name}) is a job of sweep {sweep}, not a sweep: "
                f"compare that sweep's jobs with `{as_typed('seqlab-compare')} {sweep}` (the sweep's parent "
                "run id, which seqlab printed when the sweep started)."
            )
        query = f"tags.`{names.PARENT_RUN_TAG}` = '{parent_run_id}' and attributes.status = 'FINISHED'"
        jobs = client.search_runs([parent.info.experiment_id], filter_string=query, max_results=50000)
        if not jobs and names.SWEEP_JOBS_TAG not in parent.data.tags:
            raise TrackingError(
                f"Run '{parent_run_id}' ({parent.info.run_name}) is a single run, not a sweep: it has no "
                "jobs to compare. Give a sweep's parent run id (seqlab prints it when a `seqlab -m ...` "
                "sweep starts), or compare every finished run of its experiment with --experiment NAME."
            )
        return jobs
    if experiment is None:
        raise TypeError("runs_to_compare needs a parent_run_id or an experiment")
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise TrackingError(
            f"There is no experiment named {experiment!r} in this tracking store; the MLflow UI lists them."
        )
    runs = client.search_runs(
        [found.experiment_id], filter_string="attributes.status = 'FINISHED'", max_results=50000
    )
    parents = {r.data.tags.get(names.PARENT_RUN_TAG) for r in runs}
    return [r for r in runs if r.info.run_id not in parents]


TaskKey = tuple[str, tuple[tuple[str, str], ...]]  # the task's class; (sha256, file) per data file


def by_task(runs: list[Run]) -> dict[str, list[Run]]:
    """The runs per task they trained on, each task named for the table it gets ("SineTask", "ETTTask on
    ETTh1.csv"): the task's class and the content of the data files it read (the runs' data.sha256)."""
    keyed: dict[TaskKey, list[Run]] = {}
    for run in runs:
        lines = run.data.tags.get(names.DATA_SHA256, "").splitlines()
        files = tuple(
            sorted((sha, file.strip()) for sha, _, file in (x.strip().partition(" ") for x in lines))
        )
        keyed.setdefault((run.data.params.get(TASK_CLASS, ""), files), []).append(run)

    def called(key: TaskKey, with_hashes: bool) -> str:
        target, files = key
        name = target.rsplit(".", 1)[-1] or "task not logged"
        shown = [Path(file).name + (f" (sha256 {sha[:12]})" if with_hashes else "") for sha, file in files]
        return f"{name} on {', '.join(shown)}" if shown else name

    plain = [called(key, False) for key in keyed]
    # the same file names with other contents: the hashes tell the tables apart
    named = {called(key, plain.count(called(key, False)) > 1): group for key, group in keyed.items()}
    return dict(sorted(named.items()))


def bookkeeping(key: str) -> bool:
    """Whether a param says how a run ran rather than what it was (NOT_A_CONFIGURATION)."""
    return any(key == x or (x.endswith(".") and key.startswith(x)) for x in NOT_A_CONFIGURATION)


def configuration_keys(runs: list[Run]) -> list[str]:
    """Params whose value differs between runs, seeds and bookkeeping aside.

    A width that a parameter budget chose (IMPLIED), and the other keys of a choice whose name varies (a
    cell's `_target_` and options beside `cell.name`), are left out when the remaining keys already tell the
    same rows apart, so a budget sweep's rows read cell.name=gru; dropping them can never merge rows.
    """
    keys = sorted({k for r in runs for k in r.data.params})
    varying = [k for k in keys if len({r.data.params.get(k) for r in runs}) > 1]
    chosen = [k for k in varying if not bookkeeping(k)]
    named = {k.removesuffix(".name") for k in chosen if k.endswith(".name")}
    beside_a_name = [k for k in chosen if not k.endswith(".name") and k.rpartition(".")[0] in named]
    for key in [*IMPLIED, *beside_a_name]:
        rest = [k for k in chosen if k != key]
        if key in chosen and rest and _row_count(runs, rest) == _row_count(runs, chosen):
            chosen = rest
    return chosen


def _row_count(runs: list[Run], keys: list[str]) -> int:
    return len({tuple(r.data.params.get(k) for k in keys) for r in runs})


def published_for(run: Run, metric: str) -> tuple[float | None, str]:
    """The number the run's preset says a paper reports for it on `metric`, or None and why not.

    Why not is "" when the run carries no paper numbers for this metric at all.
    """
    params = run.data.params
    if params.get("published.metric") != metric:
        return None, ""
    for key, assumed in params.items():
        if key.startswith(PUBLISHED_SETTING):
            setting = key.removeprefix(PUBLISHED_SETTING)
            if params.get(setting) != assumed:
                return None, f"{setting}={params.get(setting)}, the paper's {assumed}"
    by = params.get("published.by", "")
    number = params.get(f"published.numbers.{params.get(by)}")
    if number is None:
        return None, f"the paper reports no {by}={params.get(by)}"
    return float(number), ""


def compare(runs: list[Run], metric: str = names.TEST_LOSS, keys: list[str] | None = None) -> Comparison:
    """The runs' configurations (rows told apart by `keys`, else by configuration_keys), best first."""
    keys = configuration_keys(runs) if keys is None else keys
    groups: dict[str, list[Run]] = {}
    for run in runs:
        label = " ".join(f"{k}={run.data.params.get(k)}" for k in keys) or "all runs"
        groups.setdefault(label, []).append(run)
    baseline_prefix = names.baseline_key(names.TEST, "")
    test_metrics = sorted(
        {
            k
            for r in runs
            for k in r.data.metrics
            if k.startswith(f"{names.TEST}/") and not k.startswith(baseline_prefix)
        }
    )
    rows = []
    for label, members in groups.items():
        row = Row(label, members)
        for key in test_metrics:
            row.values[key] = [r.data.metrics[key] for r in members if key in r.data.metrics]
            row.metrics[key] = Summary.of(row.values[key])
        row.n_params = "/".join(sorted({r.data.params.get(names.N_PARAMS, "?") for r in members}))
        row.fit_s = Summary.of(
            [r.data.metrics[names.TIME_FIT] for r in members if names.TIME_FIT in r.data.metrics]
        ).mean
        row.horizon = Summary.of(
            [
                r.data.metrics[names.GRADIENT_HORIZON]
                for r in members
                if names.GRADIENT_HORIZON in r.data.metrics
            ]
        )
        published = {published_for(r, metric) for r in members}
        if len(published) == 1:
            row.published, row.unpublished = published.pop()
        else:  # the seeds of one row disagree (another preset version); show none rather than pick one
            row.unpublished = "its runs carry different published numbers"
        rows.append(row)
    sign = -1.0 if higher_is_better(metric, runs) else 1.0
    rows.sort(
        key=lambda r: (
            sign * r.metrics[metric].mean
            if metric in r.metrics and not math.isnan(r.metrics[metric].mean)
            else math.inf
        )
    )
    if any(len(row.label) > LABEL_WIDTH for row in rows):
        for i, row in enumerate(rows, 1):
            row.short = f"config {i}"
    for row in rows[1:]:
        if all(len(r.values.get(metric, [])) >= 2 for r in (rows[0], row)):
            row.p_vs_best = float(
                stats.ttest_ind(rows[0].values[metric], row.values[metric], equal_var=False).pvalue
            )
    p_value = rows[1].p_vs_best if len(rows) >= 2 else math.nan
    sources = sorted(
        {
            r.data.params["published.source"]
            for r in runs
            if r.data.params.get("published.metric") == metric and "published.source" in r.data.params
        }
    )
    return Comparison(metric, rows, p_value, "; ".join(sources), baselines_of(runs, test_metrics))


def baselines_of(runs: list[Run], test_metrics: list[str]) -> dict[str, dict[str, float]]:
    """The trivial baselines the runs logged (names.baseline_key), by baseline and by the test metric they
    score like: test/baseline/persistence_mse -> {"persistence": {"test/mse": ...}}. Every run of a task
    logs the same numbers; their mean is taken all the same."""
    prefix = names.baseline_key(names.TEST, "")
    # longest first: persistence_mse_original scores like test/mse_original, not like test/mse
    suffixes = sorted(((m.removeprefix(f"{names.TEST}/"), m) for m in test_metrics), key=lambda s: -len(s[0]))
    found: dict[str, dict[str, list[float]]] = {}
    for run in runs:
        for key, value in run.data.metrics.items():
            scored = key.removeprefix(prefix)
            for suffix, metric in suffixes if key.startswith(prefix) else []:
                if scored.endswith(f"_{suffix}"):
                    found.setdefault(scored.removesuffix(f"_{suffix}"), {}).setdefault(metric, []).append(
                        value
                    )
                    break
    return {name: {m: float(np.mean(v)) for m, v in scores.items()} for name, scores in found.items()}


_fmt = fmt  # the one way a report writes a figure (seqlab.reports.numbers)
P_COLUMN = f"Welch p vs best (< {SIGNIFICANCE}: apart)"
EPOCH_COLUMN = "s / epoch"
HORIZON_COLUMN = "gradient horizon mean"


def table(comparison: Comparison, full_labels: bool = False) -> tuple[list[str], list[list[str]]]:
    """Header and rows: each configuration's seeds, the ranked metric's mean, std and 95% CI, the paper's
    number, parameters, fit time, Welch's p against the best, time per epoch and gradient horizon (where the
    runs have them), then the other test metrics' mean, std and 95% CI."""
    metrics = sorted({k for r in comparison.rows for k in r.metrics} - {comparison.metric})
    per_epoch = any(not math.isnan(r.epoch_s) for r in comparison.rows)
    horizons = any(r.horizon.n for r in comparison.rows)
    header = ["", "configuration", "seeds"]
    for key in [comparison.metric, *metrics]:
        header += [f"{key} mean", f"{key} std", f"{key} 95% CI"]
        if key == comparison.metric:
            if comparison.published_source:
                header += [f"published {comparison.metric}", "vs published"]
            header += ["parameters", f"{names.TIME_FIT} mean", P_COLUMN]
            header += [EPOCH_COLUMN] if per_epoch else []
            header += [HORIZON_COLUMN] if horizons else []
    body = []
    for i, row in enumerate(comparison.rows):
        line = ["best" if i == 0 else "", row.label if full_labels else row.name, str(len(row.runs))]
        for key in [comparison.metric, *metrics]:
            s = row.metrics.get(key, Summary.of([]))
            line += [_fmt(s.mean), _fmt(s.std), f"[{_fmt(s.ci_low)}, {_fmt(s.ci_high)}]"]
            if key == comparison.metric:
                if comparison.published_source:
                    line += [
                        "n/a" if row.published is None else f"{row.published:.4g}",
                        row.against_published(comparison.metric) or "n/a",
                    ]
                line += [row.n_params, _fmt(row.fit_s), "" if i == 0 else fmt_p(row.p_vs_best)]
                line += [_fmt(row.epoch_s)] if per_epoch else []
                line += [_fmt(row.horizon.mean)] if horizons else []
        body.append(line)
    for name, scores in comparison.baselines.items():  # what doing nothing clever scores, same columns
        line = ["baseline", name, ""]
        for key in [comparison.metric, *metrics]:
            line += [_fmt(scores[key]) if key in scores else "", "", ""]
            if key == comparison.metric:
                line += (["", ""] if comparison.published_source else []) + ["", "", ""]
                line += [""] * (per_epoch + horizons)
        body.append(line)
    return header, body


@dataclass
class Difficulty:
    """One comparison per value of a swept numeric key (`seqlab-compare --x task.length`): how each
    configuration fares as the task gets harder."""

    key: str
    metric: str
    by_value: dict[float, Comparison]  # ascending key value
    tuning: Tuning | None = None
    read: bool = False

    @property
    def rows(self) -> list[Row]:
        return [row for comparison in self.by_value.values() for row in comparison.rows]

    @property
    def lines(self) -> dict[str, list[tuple[float, Summary]]]:
        """Each configuration's (key value, Summary of the metric) pairs, for the difficulty curve."""
        found: dict[str, list[tuple[float, Summary]]] = {}
        for value, comparison in self.by_value.items():
            for row in comparison.rows:
                if self.metric in row.metrics:
                    found.setdefault(row.name, []).append((value, row.metrics[self.metric]))
        return dict(sorted(found.items()))

    @property
    def chance(self) -> list[tuple[float, float]]:
        """The best trivial baseline's score at each key value, where the runs logged baselines."""
        scored = [(value, c.best_baseline()) for value, c in self.by_value.items()]
        return [(value, best[1]) for value, best in scored if best is not None]

    @property
    def reading(self) -> str:
        return verdict.difficulty_paragraph(self)

    @property
    def legend(self) -> list[str]:
        shown = {row.name: row.label for row in self.rows if row.short}
        return [f"{short}: {label}" for short, label in sorted(shown.items())]


def key_value(value: float) -> str:
    """A swept key's value as the table shows it: 25.0 -> "25"."""
    return f"{value:g}"


def numeric_keys(runs: list[Run]) -> list[str]:
    """Params whose values differ between the runs and are all numbers, seeds and bookkeeping aside: what
    --x can plot against."""
    keys = sorted({k for r in runs for k in r.data.params if not bookkeeping(k)})
    return [
        k for k in keys if len({r.data.params.get(k) for r in runs}) > 1 and _numbers(runs, k) is not None
    ]


def _numbers(runs: list[Run], key: str) -> list[float] | None:
    try:
        return [float(r.data.params[key]) for r in runs]
    except (KeyError, ValueError):
        return None


def compare_over(runs: list[Run], key: str, metric: str = names.TEST_LOSS) -> Difficulty:
    """A comparison per value of `key` (a numeric param the runs vary), each over the same configuration
    keys, so a configuration has one label (and one short name) at every value."""
    values = _numbers(runs, key)
    if values is None:
        raise ValueError(f"{key} is not a number in every run")
    keys = [k for k in configuration_keys(runs) if k != key]
    by_value = {
        value: compare([r for r, v in zip(runs, values, strict=True) if v == value], metric, keys)
        for value in sorted(set(values))
    }
    labels = sorted({row.label for c in by_value.values() for row in c.rows})
    numbered = {label: f"config {i}" for i, label in enumerate(labels, 1)}
    long = any(len(label) > LABEL_WIDTH for label in labels)
    for comparison in by_value.values():
        for row in comparison.rows:
            row.short = numbered[row.label] if long else ""
    return Difficulty(key, metric, by_value)


def difficulty_table(difficulty: Difficulty, full_labels: bool = False) -> tuple[list[str], list[list[str]]]:
    """The comparison's table with a row per configuration and key value, led by the key's column; columns
    that only some values' tables have are left empty elsewhere."""
    tables = {value: table(c, full_labels) for value, c in difficulty.by_value.items()}
    columns: list[str] = []
    for header, _ in tables.values():
        columns += [c for c in header if c not in columns]
    body = []
    for value, (header, rows) in tables.items():
        for cells in rows:
            at = dict(zip(header, cells, strict=True))
            body.append([at[""], key_value(value), *(at.get(c, "") for c in columns[1:])])
    return ["", difficulty.key, *columns[1:]], body


def _table_of(
    report: Comparison | Difficulty, full_labels: bool = False
) -> tuple[list[str], list[list[str]]]:
    if isinstance(report, Difficulty):
        return difficulty_table(report, full_labels)
    return table(report, full_labels)


def notes_of(report: Comparison | Difficulty) -> list[str]:
    """The verdict paragraph, then the baseline and published notes and the legend, each one line."""
    if isinstance(report, Difficulty):
        return [report.reading, *report.legend]
    return [report.reading, report.baseline_note, report.published_note, *report.legend]


def _notes(report: Comparison | Difficulty, width: int | None = None) -> str:
    """The notes, each wrapped to `width` (None: one line each)."""
    notes = notes_of(report)
    if width is None:
        return "\n".join(filter(None, notes))
    wrap = textwrap.TextWrapper(width, subsequent_indent="    ", break_on_hyphens=False)
    return "\n".join(wrap.fill(note) for note in notes if note)


def to_markdown(report: Comparison | Difficulty) -> str:
    header, body = _table_of(report)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    notes = _notes(report).replace("\n", "\n\n")  # one paragraph each in markdown
    return "\n".join(lines) + f"\n\n{notes}\n"


def to_csv(report: Comparison | Difficulty) -> str:
    header, body = _table_of(report, full_labels=True)
    out = io.StringIO()
    csv.writer(out).writerows([header, *body])
    return out.getvalue()


def line_width() -> int:
    """The terminal's width when stdout is one (or $COLUMNS), else LINE_WIDTH."""
    return shutil.get_terminal_size((LINE_WIDTH, 24)).columns


def to_text(report: Comparison | Difficulty, width: int = LINE_WIDTH) -> str:
    """The table in aligned columns; wider than `width`, it continues in blocks of columns, each led by
    the configuration, so no line runs off a terminal. The notes follow, wrapped."""
    header, body = _table_of(report)
    columns = list(zip(header, *body, strict=True))
    widths = [max(len(str(c)) for c in column) for column in columns]
    lead = 3 if isinstance(report, Difficulty) else 2  # the best mark, the key's value, the configuration
    blocks: list[list[int]] = [[]]
    used = sum(widths[:lead]) + 2 * lead
    for i in range(lead, len(columns)):
        if blocks[-1] and used + widths[i] > width:
            blocks.append([])
            used = sum(widths[:lead]) + 2 * lead
        blocks[-1].append(i)
        used += widths[i] + 2
    parts = []
    for block in blocks:
        shown = [*range(lead), *block]
        parts.append(
            "\n".join(
                "  ".join(cells[i].ljust(widths[i]) for i in shown).rstrip() for cells in [header, *body]
            )
        )
    return "\n\n".join(parts) + f"\n\n{_notes(report, width)}"


def plot(comparison: Comparison, client: MlflowClient, path: Path) -> Path:
    """The metric per configuration with 95% CI error bars, and the mean val/loss curves overlaid."""
    from seqlab.reports.plots import LEGEND_AT, plt, save

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.2))
    rows = comparison.rows
    means = [r.metrics[comparison.metric].mean if comparison.metric in r.metrics else math.nan for r in rows]
    errors = [
        r.metrics[comparison.metric].mean - r.metrics[comparison.metric].ci_low
        if comparison.metric in r.metrics
        else 0
        for r in rows
    ]
    left.bar(
        range(len(rows)),
        means,
        yerr=np.nan_to_num(errors),
        capsize=6,
        color=["tab:green"] + ["tab:gray"] * (len(rows) - 1),
    )
    for i, row in enumerate(rows):
        left.plot(
            [i] * len(row.values.get(comparison.metric, [])),
            row.values.get(comparison.metric, []),
            "k.",
            ms=5,
        )
        if row.published is not None:  # the paper's number as a red bar across the column
            left.hlines(row.published, i - 0.4, i + 0.4, colors="tab:red", lw=2)
    if any(row.published is not None for row in rows):
        left.plot([], [], color="tab:red", lw=2, label=comparison.published_source)
    for (name, scores), style in zip(
        comparison.baselines.items(), ("--", ":", "-.", (0, (1, 4))), strict=False
    ):
        if comparison.metric in scores:  # a trivial baseline: a line across every configuration
            left.axhline(
                scores[comparison.metric], color="tab:blue", ls=style, lw=1.5, label=f"baseline: {name}"
            )
    if left.get_legend_handles_labels()[0]:
        left.legend(fontsize=8, loc=LEGEND_AT)
    left.set_xticks(range(len(rows)), [r.name for r in rows], rotation=20, ha="right", fontsize=8)
    left.set(ylabel=comparison.metric, title=f"{comparison.metric}: mean and 95% CI over seeds")
    for row in rows:
        curves = [client.get_metric_history(r.info.run_id, names.VAL_LOSS) for r in row.runs]
        by_step: dict[int, list[float]] = {}
        for curve in curves:
            for m in curve:
                by_step.setdefault(m.step, []).append(m.value)
        if by_step:
            steps = sorted(by_step)
            right.plot(steps, [np.mean(by_step[s]) for s in steps], marker="o", ms=3, label=row.name)
    right.set(xlabel="step", ylabel=f"{names.VAL_LOSS} (mean over seeds)", title="learning curves")
    if right.lines:
        right.legend(fontsize=8)
    return save(fig, path)


def _fraction(runs: list[Run]) -> float | None:
    """The gradient horizon's threshold the runs measured with (callbacks.gradient_flow.fraction)."""
    found = {r.data.params.get("callbacks.gradient_flow.fraction", "") for r in runs}
    return float(found.pop()) if len(found) == 1 and "" not in found else None


def draw(
    report: Comparison | Difficulty, client: MlflowClient, folder: Path, stem: str
) -> list[tuple[str, Path]]:
    """The report's figures as (caption, file): `<stem>.png` first (the bar chart, or the difficulty curve
    with --x), then learning curves and gradient flow (of the hardest value with --x)."""
    from seqlab.reports import figures
    from seqlab.reports.histories import validation_key

    drawn = []
    rows = report.rows
    if isinstance(report, Difficulty):
        key, metric = report.key, report.metric
        path = figures.difficulty_curves(key, metric, report.lines, report.chance, folder / f"{stem}.png")
        drawn.append(
            (f"{metric} against {key}: mean and 95% CI over seeds; dashed: best trivial baseline", path)
        )
        reach = {
            row.name: [
                (value, row.horizon)
                for value, c in report.by_value.items()
                for row in c.rows
                if row.horizon.n
            ]
            for row in rows
        }
        reach = {name: points for name, points in reach.items() if points}
        if reach:
            path = figures.difficulty_curves(
                key, names.GRADIENT_HORIZON, reach, [], folder / f"{stem}-horizon.png"
            )
            drawn.append((f"gradient horizon against {key}: mean and 95% CI over seeds", path))
        hardest = list(report.by_value)[-1]
        rows, where = report.by_value[hardest].rows, f" at {key}={key_value(hardest)}"
    else:
        metric, where = report.metric, ""
        drawn.append(
            (
                f"{metric}: mean and 95% CI over seeds; validation loss by step",
                plot(report, client, folder / f"{stem}.png"),
            )
        )
    if any(row.curves for row in rows):
        path = figures.learning_curves(rows, validation_key(metric), folder / f"{stem}-learning.png")
        drawn.append(
            (f"learning curves{where}: {validation_key(metric)} per epoch, mean and +-1 std over seeds", path)
        )
    if any(row.flows for row in rows):
        fraction = _fraction([run for row in rows for run in row.runs])
        path = figures.gradient_flows(rows, folder / f"{stem}-gradient-flow.png", fraction)
        drawn.append((f"gradient flow{where}: norm k steps back over the last step's, mean over seeds", path))
    return drawn


def section(task: str, report: Comparison | Difficulty, drawn: list[tuple[str, Path]]) -> page.Section:
    """The report's part of the HTML page: its verdict, table, notes, figures and tuning."""

    header, body = _table_of(report)
    done = page.Section(task, report.reading, header, body, notes_of(report)[1:])
    done.figures = [(caption, path.read_bytes()) for caption, path in drawn]
    tuning = report.tuning
    if tuning is not None:
        done.tuning_header, done.tuning_rows = tuning.header, tuning.rows
        metric = report.metric
        for arm in tuning.arms:
            tuned = [row for row in report.rows if any(tuning.arm_of(run) is arm for run in row.runs)]
            result = "; ".join(
                f"{row.name}: {metric} mean {fmt(row.metrics[metric].mean)}, 95% CI "
                f"[{fmt(row.metrics[metric].ci_low)}, {fmt(row.metrics[metric].ci_high)}]"
                for row in tuned
                if metric in row.metrics
            )
            done.arms.append(
                page.Arm(arm.name, result or "no evaluated run of this arm", arm.importances, arm.picture)
            )
    return done


def log_to_parent(
    comparisons: Mapping[str, Comparison | Difficulty], client: MlflowClient, parent_run_id: str
) -> None:
    """comparison/comparison.md, .csv, .png and report.html (the whole report, images inline) on the
    sweep's parent run; a sweep over several tasks gets a section per task in the markdown and the page,
    and a CSV and plot per task (comparison-<n>.csv, .png)."""

    several = len(comparisons) > 1
    tuning = read_tuning(client, parent_run_id)
    for report in comparisons.values():
        report.tuning = report.tuning or tuning
        if (
            not report.read
        ):  # a caller other than main (the tuner) hands over comparisons as compare made them
            read_into(report.rows, client, report.metric)
            report.read = True
    with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryDirectory() as pictures:
        folder = Path(tmp)
        sections, parts = [], []
        for n, (task, report) in enumerate(comparisons.items(), 1):
            stem = f"comparison-{n}" if several else "comparison"
            (folder / f"{stem}.csv").write_text(to_csv(report))
            drawn = draw(report, client, Path(pictures), stem)
            shutil.copy(drawn[0][1], folder / f"{stem}.png")
            heading = f"## {task} ({stem}.csv, {stem}.png)\n\n" if several else ""
            sections.append(heading + to_markdown(report))
            parts.append(section(task, report, drawn))
        (folder / "comparison.md").write_text("\n".join(sections))
        title = f"seqlab-compare: sweep {parent_run_id}"
        (folder / REPORT_PAGE).write_text(page.render(title, parts))
        client.log_artifacts(parent_run_id, str(folder), names.COMPARISON_ARTIFACTS)


REPORT_PAGE = "report.html"


def _bad_x(key: str, runs: list[Run]) -> str | None:
    """Why --x KEY cannot be plotted against in these runs, or None."""
    values = sorted({r.data.params.get(key) for r in runs}, key=str)
    numeric = ", ".join(numeric_keys(runs)) or "none"
    if values == [None]:
        problem = f"no run has the param {key!r}"
    elif _numbers(runs, key) is None:
        problem = f"its values ({', '.join(map(str, values))}) are not all numbers"
    elif len(values) < 2:
        problem = f"every run has {key}={values[0]}: it does not vary"
    else:
        return None
    return (
        f"--x {key}: {problem}. --x takes a numeric param whose value varies between the runs; "
        f"here: {numeric}."
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="seqlab-compare", description=__doc__.splitlines()[0])
    parser.add_argument("parent_run_id", nargs="?", help="the sweep's parent run (seqlab prints it)")
    parser.add_argument("--experiment", help="compare every finished run of this experiment instead")
    add_tracking_uri_option(parser)
    parser.add_argument(
        "--metric",
        default=names.TEST_LOSS,
        help=f"the metric that ranks configurations (default {names.TEST_LOSS})",
    )
    parser.add_argument(
        "--x",
        metavar="KEY",
        help="a numeric param the sweep varies (e.g. task.length): the metric against it, a line per "
        "configuration, and a table row per configuration and value",
    )
    args = parser.parse_intermixed_args(argv)
    if bool(args.parent_run_id) == bool(args.experiment):
        parser.error("give a PARENT_RUN_ID or --experiment NAME (one of them)")
    from seqlab.errors import USAGE_ERROR, SeqlabError
    from seqlab.tracking.params import redact

    uri = tracking_uri(args.tracking_uri)
    try:
        client = read_store(uri)
        runs = runs_to_compare(client, args.parent_run_id, args.experiment)
    except SeqlabError as err:
        parser.exit(1, f"seqlab-compare: {err}\n")
    if not runs:
        parser.exit(1, f"seqlab-compare: no finished runs to compare in {redact(uri)}\n")
    if not any(args.metric in r.data.metrics for r in runs):
        available = sorted({k for r in runs for k in r.data.metrics if k.startswith(f"{names.TEST}/")})
        parser.exit(
            1,
            f"seqlab-compare: no run has the metric {args.metric!r}; test metrics logged: "
            f"{', '.join(available)}\n",
        )
    tasks = by_task(runs)
    if args.x:
        for group in tasks.values():
            problem = _bad_x(args.x, group)
            if problem:
                parser.exit(USAGE_ERROR, f"seqlab-compare: {problem}\n")
    tuning = read_tuning(client, args.parent_run_id) if args.parent_run_id else None
    comparisons: dict[str, Comparison | Difficulty] = {}
    for task, group in tasks.items():
        if any(args.metric in r.data.metrics for r in group):
            report = compare_over(group, args.x, args.metric) if args.x else compare(group, args.metric)
            report.tuning = tuning
            read_into(report.rows, client, args.metric)  # curves and time per epoch, from each run
            report.read = True
            comparisons[task] = report
    for task, group in tasks.items():
        if len(tasks) > 1:
            print(f"task {task}: {len(group)} run(s)\n")
        if task in comparisons:
            print(to_text(comparisons[task], line_width()) + "\n")
        else:
            logged = sorted({k for r in group for k in r.data.metrics if k.startswith(f"{names.TEST}/")})
            print(f"no run of this task has {args.metric}; its test metrics: {', '.join(logged)}\n")
    if args.parent_run_id:
        log_to_parent(comparisons, client, args.parent_run_id)
        print(
            f"Logged to the parent run {args.parent_run_id} as {names.COMPARISON_ARTIFACTS}/comparison.md, "
            f".csv, .png and {REPORT_PAGE} (the whole report in one page)"
            + (" (a CSV and a plot per task, numbered as above)" if len(comparisons) > 1 else "")
        )
    sys.stdout.flush()
