"""The verdict paragraph of a comparison, generated from its numbers only.

What it says: the best configuration and whether Welch's t-test separates it from the runner-up; whether
the configurations had the same number of parameters and were tuned with equal budgets (and that the
comparison is weaker where not); each one's time per epoch and gradient horizon. Every figure it quotes
is a string of the table beside it (seqlab.reports.numbers writes both).
"""

from typing import Any

from seqlab.reports.numbers import fmt

MATCHED_WITHIN = 0.02  # parameter counts this close (relative) are a parameter-matched comparison


def _counts(rows: list[Any]) -> list[tuple[str, int]]:
    """Each row's parameter counts as the table shows them ("4417" or "4417/4420" across seeds)."""
    return [(row.name, int(n)) for row in rows for n in row.n_params.split("/") if n.isdigit()]


def parameters(rows: list[Any]) -> str:
    counts = _counts(rows)
    if len(rows) < 2 or not counts:
        return ""
    (low_row, low), (high_row, high) = min(counts, key=lambda c: c[1]), max(counts, key=lambda c: c[1])
    if high <= low * (1 + MATCHED_WITHIN):
        span = f"{low} parameters each" if low == high else f"{low} to {high} parameters"
        return f"The configurations are parameter-matched ({span})."
    return (
        f"The configurations are not parameter-matched ({low_row} has {low} parameters, {high_row} {high}), "
        "which weakens the comparison: a larger network can win by its size alone."
    )


def tuning(report: Any) -> str:
    if len(report.rows) < 2:
        return ""
    if report.tuning is None:
        return (
            "They were not tuned: every configuration ran with the hyper-parameters it was given, which "
            "weakens the comparison (a cell can lose on a learning rate that suits another)."
        )
    equal = report.tuning.equal_budgets
    if equal is None:
        return "They were tuned, but tuning/summary.csv does not give each arm's number of trials."
    if equal:
        return "Each arm was tuned with the same number of trials (tuning/summary.csv)."
    return (
        "The arms were tuned with different numbers of trials (tuning/summary.csv), which weakens the "
        "comparison."
    )


def per_epoch(rows: list[Any], where: str = "") -> str:
    timed = [f"{row.name} {fmt(row.epoch_s)} s" for row in rows if row.epoch_s == row.epoch_s]  # not nan
    return f"Time per epoch{where}: {', '.join(timed)}." if timed else ""


def horizons(rows: list[Any]) -> str:
    measured = [f"{row.name} {fmt(row.horizon.mean)}" for row in rows if row.horizon.n]
    if not measured:
        return ""
    return f"Gradient horizons (steps back, mean over seeds): {', '.join(measured)}."


def means(comparison: Any) -> str:
    """The best and the runner-up's means on the ranked metric."""
    shown = [
        f"{row.name} {fmt(row.metrics[comparison.metric].mean)}"
        for row in comparison.rows[:2]
        if comparison.metric in row.metrics
    ]
    return f"Mean {comparison.metric}: {' and '.join(shown)}." if shown else ""


def paragraph(comparison: Any) -> str:
    """One comparison's verdict (seqlab.reports.compare.Comparison)."""
    rows = comparison.rows
    parts = [
        f"{comparison.verdict}.",
        means(comparison),
        parameters(rows),
        tuning(comparison),
        per_epoch(rows),
        horizons(rows),
    ]
    return " ".join(part for part in parts if part)


def difficulty_paragraph(difficulty: Any) -> str:
    """The verdict over a swept key (seqlab.reports.compare.Difficulty): the test at each value, where
    each configuration beats the best trivial baseline, and time and gradient horizons by value."""
    key, values = difficulty.key, list(difficulty.by_value)
    shown = [f"{value:g}" for value in values]
    parts = [
        f"At {key}={at}: {c.verdict}. {means(c)}"
        for at, c in zip(shown, difficulty.by_value.values(), strict=True)
    ]
    parts += [parameters(difficulty.rows), tuning(difficulty)]
    by_name: dict[str, dict[str, Any]] = {}
    for at, comparison in zip(shown, difficulty.by_value.values(), strict=True):
        for row in comparison.rows:
            by_name.setdefault(row.name, {})[at] = (row, comparison.beats_chance(row))
    beating = []
    for name, found in sorted(by_name.items()):
        judged = {at: beats for at, (_, beats) in found.items() if beats is not None}
        if judged:
            yes = [at for at, beats in judged.items() if beats]
            no = [at for at, beats in judged.items() if not beats]
            if not no:
                beating.append(f"{name} at every {key} ({', '.join(yes)})")
            elif not yes:
                beating.append(f"{name} at none ({key}={', '.join(no)})")
            else:
                beating.append(f"{name} at {key}={', '.join(yes)} (not at {', '.join(no)})")
    if beating:
        parts.append(
            f"Better than the best trivial baseline (the whole 95% CI over seeds beyond its score): "
            f"{'; '.join(beating)}."
        )
    timed, reach = [], []
    for name, found in sorted(by_name.items()):
        seconds = [
            f"{at}: {fmt(row.epoch_s)} s" for at, (row, _) in found.items() if row.epoch_s == row.epoch_s
        ]
        steps = [f"{at}: {fmt(row.horizon.mean)}" for at, (row, _) in found.items() if row.horizon.n]
        timed += [f"{name} ({', '.join(seconds)})"] if seconds else []
        reach += [f"{name} ({', '.join(steps)})"] if steps else []
    if timed:
        parts.append(f"Time per epoch by {key}: {'; '.join(timed)}.")
    if reach:
        parts.append(f"Gradient horizons (steps back, mean over seeds) by {key}: {'; '.join(reach)}.")
    return " ".join(part for part in parts if part)
