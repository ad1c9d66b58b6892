"""What a tuning sweep's parent run carries once the search and the evaluation are done.

Per arm: its best params and value (tag names.TUNE_BEST_TAG_PREFIX + arm, metrics tune/<arm>/...), the
counts of complete, pruned and failed trials, the hyper-parameter importances (Optuna's fANOVA) and the
optimisation history; for the whole sweep: tuning/summary.csv and seqlab-compare's table over the
evaluation runs (comparison/).
"""

import csv
import io
import json
import logging
import tempfile
from pathlib import Path
from typing import Any

from seqlab import names
from seqlab.tracking.store import MAX_TAG_LENGTH
from seqlab.tracking.sweep import say
from seqlab.tuning.study import ArmStudy

log = logging.getLogger(__name__)
FANOVA_SEED = 0  # the forest's seed: the same trials give the same importances


def counts(arm: ArmStudy) -> dict[str, int]:
    from optuna.trial import TrialState

    counted = arm.counted()
    return {
        "n_complete": sum(t.state == TrialState.COMPLETE for t in counted),
        "n_pruned": sum(t.state == TrialState.PRUNED for t in counted),
        "n_failed": sum(t.state == TrialState.FAIL for t in counted),
    }


def summary_csv(arms: list[ArmStudy], keys: list[str]) -> str:
    """One row per arm: arm, best_value, best_trial, each searched key's best value, the counts."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["arm", "best_value", "best_trial", *keys, "n_complete", "n_pruned", "n_failed"])
    for arm in arms:
        best = best_trial(arm)
        params = best.params if best else {}
        writer.writerow(
            [
                arm.name,
                best.value if best else "",
                best.number if best else "",
                *(params.get(k, "") for k in keys),
                *counts(arm).values(),
            ]
        )
    return out.getvalue()


def best_trial(arm: ArmStudy) -> Any | None:
    try:
        return arm.study.best_trial
    except ValueError:
        return None


def importances(arm: ArmStudy) -> dict[str, float] | None:
    """fANOVA importances of the arm's complete trials; None where they cannot be told (fewer than two
    complete trials, or no key that varied)."""
    import optuna
    from optuna.importance import FanovaImportanceEvaluator

    try:
        return optuna.importance.get_param_importances(
            arm.study, evaluator=FanovaImportanceEvaluator(seed=FANOVA_SEED)
        )
    except (ValueError, RuntimeError) as exc:
        log.info("tune %s: no importances (%s)", arm.name, exc)
        return None


def _figures(arm: ArmStudy, folder: Path, importance: dict[str, float] | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import warnings

    import matplotlib.pyplot as plt
    from optuna.visualization.matplotlib import plot_optimization_history

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
        axes = plot_optimization_history(arm.study)
    axes.set_title(f"{arm.name}: optimisation history")
    figure = axes.get_figure(root=True)
    assert figure is not None
    figure.savefig(folder / "history.png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    if importance:
        fig, axes = plt.subplots(figsize=(6, 0.5 + 0.4 * len(importance)))
        keys = list(importance)[::-1]
        axes.barh(keys, [importance[k] for k in keys], color="tab:blue")
        axes.set(
            xlabel="importance (fANOVA, share of the variance)",
            title=f"{arm.name}: hyper-parameter importances",
        )
        fig.savefig(folder / "importances.png", dpi=110, bbox_inches="tight")
        plt.close(fig)


def compared_metric(metric: str, eval_runs: list[Any]) -> str:
    """The test metric to rank the evaluation runs by: the tuned metric's test twin (val/nll -> test/nll)
    where the runs log it, else test/loss."""
    twin = f"{names.TEST}/{metric.partition('/')[2]}"
    return twin if any(twin in r.data.metrics for r in eval_runs) else names.TEST_LOSS


def log_report(
    client: Any, parent_run_id: str, arms: list[ArmStudy], keys: list[str], metric: str, eval_runs: list[Any]
) -> str:
    """Log the report to the parent run; returns the text to print."""
    from mlflow.entities import Metric

    from seqlab.reports.compare import by_task, compare, log_to_parent, to_text

    lines = []
    metrics = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / names.TUNING_ARTIFACTS
        root.mkdir()
        (root / "summary.csv").write_text(summary_csv(arms, keys))
        for arm in arms:
            best, n = best_trial(arm), counts(arm)
            metrics += [Metric(f"tune/{arm.name}/{k}", float(v), 0, 0) for k, v in n.items()]
            if best is not None:
                metrics.append(Metric(f"tune/{arm.name}/best_value", float(best.value), 0, 0))
                record = json.dumps({"value": best.value, "trial": best.number, "params": best.params})
                client.set_tag(
                    parent_run_id, f"{names.TUNE_BEST_TAG_PREFIX}{arm.name}", record[:MAX_TAG_LENGTH]
                )
            folder = root / arm.name
            folder.mkdir()
            importance = importances(arm)
            if importance:
                table = "param,importance\n" + "".join(f"{k},{v:.6g}\n" for k, v in importance.items())
                (folder / "importances.csv").write_text(table)
            _figures(arm, folder, importance)
            shown = " ".join(
                f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                for k, v in (best.params if best else {}).items()
            )
            lines.append(
                f"  {arm.name}: best {metric}={best.value:.4g} (trial {best.number}: {shown})"
                if best
                else f"  {arm.name}: no trial completed"
            )
            lines[-1] += f"; {n['n_complete']} complete, {n['n_pruned']} pruned, {n['n_failed']} failed"
            if importance:
                lines[-1] += "; importances " + ", ".join(f"{k} {v:.2f}" for k, v in importance.items())
        client.log_batch(parent_run_id, metrics=[Metric(m.key, m.value, _now(), 0) for m in metrics])
        client.log_artifacts(parent_run_id, str(root), names.TUNING_ARTIFACTS)
    text = "\n".join(["seqlab: tuning per arm (the search's validation value, not the answer):", *lines])
    if eval_runs:
        test_metric = compared_metric(metric, eval_runs)
        comparisons = {
            task: compare(group, test_metric)
            for task, group in by_task(eval_runs).items()
            if any(test_metric in r.data.metrics for r in group)
        }
        if comparisons:
            log_to_parent(comparisons, client, parent_run_id)
            seeds = len({r.data.params.get("seed") for r in eval_runs})
            text += f"\nseqlab: each arm's best configuration on {seeds} fresh seed(s), the answer:\n"
            text += "\n\n".join(to_text(c) for c in comparisons.values())
    say(text)
    return text


def _now() -> int:
    import time

    return int(time.time() * 1000)
