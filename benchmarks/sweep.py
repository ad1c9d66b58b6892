"""Sweep throughput: the same 8-job sweep through Hydra's basic launcher, joblib, submitit_local and Ray on
this machine, in one run: jobs per minute, the speed-up over the basic launcher, and where the wall time
goes (before the first job's run starts, inside the jobs' runs, after the last one ends)."""

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from mlflow import MlflowClient

from benchmarks.harness import report

JOBS = ["cell=rnn,gru", "seed=0,1,2,3"]  # 8 jobs
QUICK_JOBS = ["cell=rnn,gru", "seed=0"]  # 2 jobs: enough to show every launcher still works
SLOTS = 2  # jobs at a time for the parallel launchers: this machine's cores
LAUNCHERS = {  # name -> its overrides; every parallel launcher gives each job one core (one torch thread)
    "basic": [],
    "joblib": ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={SLOTS}"],
    # the local executor starts every job at once; cpus_per_task=1 keeps each to one torch thread
    "submitit_local": ["hydra/launcher=submitit_local", "hydra.launcher.cpus_per_task=1"],
    "ray": [
        "hydra/launcher=ray",
        f"hydra.launcher.ray.init.num_cpus={SLOTS}",
        "hydra.launcher.ray.remote.num_cpus=1",
    ],
}


@dataclass
class Timing:
    wall: float  # the whole command
    before: float  # from the command's start to the first job's run starting
    after: float  # from the last job's run ending to the command's end
    busy: float  # the jobs' runs, added up


def _sweep(workdir: Path, name: str, jobs: list[str], extra: list[str], epochs: int, quick: bool) -> Timing:
    seqlab = shutil.which("seqlab") or str(Path(sys.executable).with_name("seqlab"))
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    command = [
        seqlab,
        "--multirun",
        *jobs,
        "task=adding",
        f"trainer.max_epochs={epochs}",
        "tracking.system_metrics=false",
        f"tracking.uri={uri}",
        f"tracking.experiment={name}",
        f"hydra.sweep.dir={workdir / name}",
        *extra,
    ]
    if quick:
        command += ["task.n_train=256", "task.n_val=64", "task.n_test=64"]
    env = {k: v for k, v in os.environ.items() if k != "SEQLAB_TORCH_THREADS"}
    started = time.time()
    done = subprocess.run(command, capture_output=True, text=True, cwd=workdir, env=env)
    ended = time.time()
    if done.returncode:
        raise RuntimeError(
            f"the {name} sweep failed (exit {done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
        )
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(name)
    runs = client.search_runs([experiment.experiment_id], "tags.mlflow.parentRunId != ''")
    spans = [(r.info.start_time / 1000, r.info.end_time / 1000) for r in runs if r.info.end_time]
    if len(spans) != len(runs) or not runs:
        raise RuntimeError(f"the {name} sweep left {len(runs) - len(spans)} of {len(runs)} job runs unended")
    return Timing(
        wall=ended - started,
        before=min(s for s, _ in spans) - started,
        after=ended - max(e for _, e in spans),
        busy=sum(e - s for s, e in spans),
    )


def run(quick: bool, accelerator: str = "cpu") -> float:
    # Jobs of some seconds each: far shorter than a preset's jobs (minutes), long enough that the benchmark
    # measures jobs running side by side, not only the start-up of the processes that run them.
    epochs = 1 if quick else 20
    jobs = QUICK_JOBS if quick else JOBS
    n = 2 if quick else 8
    timings = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if not quick:  # a first run creates the SQLite schema, so no timing below pays for it
            _sweep(work, "warmup", ["cell=rnn"], [], 1, True)
        on = [f"trainer.accelerator={accelerator}"]  # on a GPU, the parallel jobs share it
        for name, overrides in LAUNCHERS.items():
            timings[name] = _sweep(work, name, jobs, [*on, *overrides], epochs, quick)
    print(
        f"sweep: the same {n} jobs ({' '.join(jobs)}, task=adding, {epochs} epochs each, "
        f"trainer.accelerator={accelerator}) through each launcher; parallel ones {SLOTS} jobs at a time"
    )
    basic = timings["basic"].wall
    print(
        f"  {'launcher':<15} {'wall s':>7} {'jobs/min':>8} {'speed-up':>8} {'before 1st':>10} "
        f"{'after last':>10} {'job s (mean)':>12} {'jobs at once':>12}"
    )
    for name, t in timings.items():
        print(
            f"  {name:<15} {t.wall:7.1f} {n * 60 / t.wall:8.1f} {basic / t.wall:7.2f}x {t.before:10.1f} "
            f"{t.after:10.1f} {t.busy / n:12.1f} {t.busy / t.wall:12.2f}"
        )
    print(
        "  before 1st: start-up, the parent run and every job's config checked, workers started; after last: "
        "the parent's end and the listing. job s: a job's run, start to end (slower when jobs share the "
        "cores). jobs at once: the job runs' time added up over the wall time."
    )
    best = max((name for name in timings if name != "basic"), key=lambda name: basic / timings[name].wall)
    print(f"  fastest: {best}, {basic / timings[best].wall:.2f}x the basic launcher")
    return report("sweep", basic / timings["joblib"].wall)
