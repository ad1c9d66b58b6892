"""Start-up: from `seqlab` invocation to the first training step, and `seqlab --help`, against
`import torch`."""

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.harness import checkout_env, python_command, report, wall


def _seqlab() -> str:
    return shutil.which("seqlab") or str(Path(sys.executable).with_name("seqlab"))


def time_to_first_step(workdir: Path, accelerator: str) -> float:
    stamp = workdir / "first_step.json"
    command = [
        _seqlab(),
        "debug=fast",
        f"trainer.accelerator={accelerator}",
        f"tracking.uri=sqlite:///{workdir / 'mlflow.db'}",
        "+callbacks.first_step._target_=benchmarks.clocks.FirstStepClock",
        f"+callbacks.first_step.path={stamp}",
        f"hydra.run.dir={workdir / 'run'}",
    ]
    started = time.time()
    # checkout_env: the run's config names FirstStepClock, a class of benchmarks/, which is not installed
    subprocess.run(command, check=True, capture_output=True, cwd=workdir, env=checkout_env())
    return json.loads(stamp.read_text())["first_step_at"] - started


def run(quick: bool, accelerator: str = "cpu") -> float:
    repeats = 1 if quick else 3
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        time_to_first_step(
            work, accelerator
        )  # creates the SQLite schema once: a first-ever run, not every run, pays it
        first_step = sorted(time_to_first_step(work, accelerator) for _ in range(repeats))[repeats // 2]
    import_torch = wall(python_command("import torch"), repeats)
    help_s = wall([_seqlab(), "--help"], repeats)
    print("startup (median wall seconds)")
    print(f"  python -c 'import torch':      {import_torch:.2f} s")
    print(f"  seqlab --help:                 {help_s:.2f} s")
    print(f"  seqlab debug=fast trainer.accelerator={accelerator}, first step: {first_step:.2f} s")
    return report("startup", first_step / import_torch)
