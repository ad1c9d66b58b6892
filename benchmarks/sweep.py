"""Sweep throughput: a 6-job sweep with Hydra's basic launcher versus the joblib launcher with 2 processes."""

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.harness import report

JOBS = ["cell=rnn,lstm,gru", "seed=0,1"]  # 6 jobs
QUICK_JOBS = ["cell=rnn,gru", "seed=0"]  # 2 jobs: enough to show both launchers still work


def _sweep(workdir: Path, name: str, jobs: list[str], extra: list[str], epochs: int, quick: bool) -> float:
    seqlab = shutil.which("seqlab") or str(Path(sys.executable).with_name("seqlab"))
    command = [
        seqlab,
        "--multirun",
        *jobs,
        "task=adding",
        f"trainer.max_epochs={epochs}",
        f"tracking.uri=sqlite:///{workdir / 'mlflow.db'}",
        f"tracking.experiment={name}",
        f"hydra.sweep.dir={workdir / name}",
        *extra,
    ]
    if quick:
        command += ["task.n_train=256", "task.n_val=64", "task.n_test=64"]
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, cwd=workdir)
    return time.perf_counter() - started


def run(quick: bool, accelerator: str = "cpu") -> float:
    # 12 epochs (~5 s of training a job): still far shorter than a preset's jobs (minutes), long enough
    # that the benchmark measures running jobs side by side, not only the workers' start-up (~5 s each).
    epochs = 1 if quick else 12
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if not quick:  # a first run creates the SQLite schema, so neither timing below pays for it
            _sweep(work, "warmup", ["cell=rnn"], [], 1, True)
        jobs = QUICK_JOBS if quick else JOBS
        on = [f"trainer.accelerator={accelerator}"]  # on a GPU, the two joblib jobs share it
        basic = _sweep(work, "basic", jobs, on, epochs, quick)
        # One torch thread per job: two jobs on two cores, not four threads fighting over them.
        joblib = _sweep(
            work,
            "joblib",
            jobs,
            [*on, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "torch_threads=1"],
            epochs,
            quick,
        )
    n = 2 if quick else 6
    print(
        f"sweep: {n} jobs ({' '.join(jobs)}, task=adding, {epochs} epochs each, "
        f"trainer.accelerator={accelerator})"
    )
    print(f"  basic launcher:            {basic:6.1f} s  {n * 60 / basic:5.1f} jobs/min")
    print(f"  joblib launcher, n_jobs=2: {joblib:6.1f} s  {n * 60 / joblib:5.1f} jobs/min")
    return report("sweep", basic / joblib)
