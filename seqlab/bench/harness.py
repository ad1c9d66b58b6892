"""What every benchmark shares: composing a real seqlab config for a job, timing a command, reporting the ratio."""

import statistics
import subprocess
import sys
import time
from pathlib import Path

from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, open_dict

from seqlab.config import register_configs, validate


def bench_config(workdir: Path, overrides: list[str]) -> DictConfig:
    """The config `seqlab <overrides>` would run, writing into `workdir` (its own SQLite store by default)."""
    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="seqlab.conf", version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"tracking.uri=sqlite:///{workdir / 'mlflow.db'}", *overrides])
    with open_dict(cfg):
        cfg.paths.output_dir = str(workdir / "job")
    validate(cfg)
    return cfg


def wall(command: list[str], repeats: int = 3, **kwargs) -> float:
    """Median wall time of a command, in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, **kwargs)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def python_command(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def report(name: str, ratio: float) -> float:
    print(f"{name} ratio: {ratio:.3f}")
    return ratio
