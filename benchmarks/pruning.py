"""Pruning, measured: the same tuning search (hydra/sweeper=tune, the same sampler seed) without a pruner and
with the median pruner, in one run: the wall time of each, the ratio, and the best value each found.

The random sampler proposes the same points to both searches whatever the trials did, so the two differ in
pruning alone: what it saves, and whether it cut the trial that would have been best. The search is the
tuning of `chung2014_jsb`'s GRU (the presets' data cache: SEQLAB_DATA_DIR); --quick searches a tiny adding
problem instead, which only checks that the benchmark runs.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState

from benchmarks.harness import report

SEARCH = [
    "experiment=chung2014_jsb",
    "~hydra.sweeper.params.seed",
    "cell=gru",
    "optimizer.lr=tag(log, interval(1e-3, 3e-2))",
    "model.dropout=interval(0, 0.5)",
    "hydra.sweeper.metric=val/nll",
]
QUICK_SEARCH = ["task=adding", "task.n_train=256", "task.n_val=64", "task.n_test=64"]
QUICK_SEARCH += ["optimizer.lr=tag(log, interval(1e-4, 1e-1))"]
WARMUP = 5  # epochs of every trial never pruned: a curve's first epochs say little of its end
PRUNERS = {"none": ["hydra.sweeper.pruner=none"], "median": ["hydra.sweeper.pruner=median"]}


def _search(
    workdir: Path, name: str, pruner: list[str], trials: int, epochs: int, quick: bool
) -> tuple[float, optuna.Study]:
    seqlab = shutil.which("seqlab") or str(Path(sys.executable).with_name("seqlab"))
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    command = [
        seqlab,
        "--multirun",
        "hydra/sweeper=tune",
        *(QUICK_SEARCH if quick else SEARCH),
        f"trainer.max_epochs={epochs}",
        "tracking.system_metrics=false",
        "callbacks.gradient_flow=null",
        f"tracking.uri={uri}",
        f"tracking.experiment={name}",
        f"hydra.sweep.dir={workdir / name}",
        f"hydra.sweeper.study_name={name}",
        f"hydra.sweeper.n_trials={trials}",
        "hydra.sweeper.eval_seeds=[]",
        "hydra.sweeper.sampler=random",
        "hydra.sweeper.sampler_seed=0",
        "hydra.sweeper.pruner_startup_trials=3",
        f"hydra.sweeper.pruner_warmup_epochs={WARMUP}",
        *pruner,
    ]
    env = {k: v for k, v in os.environ.items() if k != "SEQLAB_TORCH_THREADS"}
    started = time.time()
    done = subprocess.run(command, capture_output=True, text=True, cwd=workdir, env=env)
    elapsed = time.time() - started
    if done.returncode:
        raise RuntimeError(
            f"the {name} search failed (exit {done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
        )
    storage = f"sqlite:///{workdir / 'mlflow-optuna.db'}"
    return elapsed, optuna.load_study(study_name=f"{name} [all]", storage=storage)


def run(quick: bool, accelerator: str = "cpu") -> float:
    trials, epochs = (4, 3) if quick else (16, 30)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name, pruner in PRUNERS.items():
            results[name] = _search(
                work, f"prune-{name}", [*pruner, f"trainer.accelerator={accelerator}"], trials, epochs, quick
            )
    search, metric = (QUICK_SEARCH, "val/loss") if quick else (SEARCH, "val/nll")
    print(
        f"pruning: the same search ({' '.join(search)}, {trials} trials of up to {epochs} epochs, random "
        f"sampler, seed 0) without a pruner and with the median pruner (3 startup trials, {WARMUP} warm-up "
        "epochs)"
    )
    print(f"  {'pruner':<8} {'wall s':>7} {'complete':>8} {'pruned':>6} {'epochs':>6} {'best ' + metric:>13}")
    for name, (elapsed, study) in results.items():
        complete = study.get_trials(states=[TrialState.COMPLETE])
        pruned = study.get_trials(states=[TrialState.PRUNED])
        epochs_run = sum(len(t.intermediate_values) for t in study.trials)
        counts = f"{len(complete):8d} {len(pruned):6d} {epochs_run:6d}"
        print(f"  {name:<8} {elapsed:7.1f} {counts} {study.best_value:13.5g}")
    none, median = results["none"], results["median"]
    gap = (median[1].best_value - none[1].best_value) / abs(none[1].best_value)
    print(
        f"  best value with pruning vs without: {gap:+.2%} (target: within 1%); the ratio below is the wall "
        "time without / with"
    )
    return report("pruning", none[0] / median[0])
