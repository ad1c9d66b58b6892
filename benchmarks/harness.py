"""What every benchmark shares: composing a real seqlab config for a job, handing a run the benchmark's own
callbacks and checkpoint writer through that config, timing a command, reporting the ratio."""

import copy
import os
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, open_dict

from seqlab.config import register_configs, validate
from seqlab.reproduce.checkpoint import BackgroundCheckpointIO

CHECKOUT = Path(__file__).resolve().parents[1]  # benchmarks/ is run from the checkout, never installed


class DrainableCheckpointIO(BackgroundCheckpointIO):
    """seqlab's background checkpoint writer, which a benchmark can also wait for: the overhead benchmark
    charges the writes an epoch queued to that epoch, not to the bare loop's epoch that runs after it."""

    def wait(self) -> None:
        """Block until every write and removal queued so far is done (the one worker takes them in order)."""
        if self._executor is not None:
            self._executor.submit(lambda: None).result()


def drainable_checkpoints(cfg: DictConfig) -> None:
    """Swap seqlab's background writer in cfg.trainer.plugins for DrainableCheckpointIO, in place."""
    production = f"{BackgroundCheckpointIO.__module__}.{BackgroundCheckpointIO.__qualname__}"
    with open_dict(cfg):
        for plugin in cfg.trainer.get("plugins") or []:
            if isinstance(plugin, DictConfig) and plugin.get("_target_") == production:
                plugin._target_ = f"{__name__}.{DrainableCheckpointIO.__qualname__}"


def bench_config(workdir: Path, overrides: list[str]) -> DictConfig:
    """The config `seqlab <overrides>` would run, writing into `workdir` (its own SQLite store by default),
    its checkpoints written by DrainableCheckpointIO."""
    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="seqlab.conf", version_base="1.3"):
        cfg = compose(
            config_name="config", overrides=[f"tracking.uri=sqlite:///{workdir / 'mlflow.db'}", *overrides]
        )
    with open_dict(cfg):
        cfg.paths.output_dir = str(workdir / "job")
    drainable_checkpoints(cfg)
    validate(cfg)
    return cfg


# A config names classes, not objects: the callbacks a benchmark built beforehand (a Lockstep holding its
# bare loop) wait here under a key, and the config's entry for each names `handed_over` with that key.
_HANDED_OVER: dict[str, object] = {}


def handed_over(key: str) -> object:
    """The callback `with_callbacks` left under `key`: instantiated from the config like any callback."""
    return _HANDED_OVER[key]


@contextmanager
def with_callbacks(cfg: DictConfig, *callbacks: object):
    """A copy of cfg whose cfg.callbacks also holds these callbacks, for the ordinary `seqlab.train.train`."""
    cfg = copy.deepcopy(cfg)
    keys = []
    with open_dict(cfg):
        for i, callback in enumerate(callbacks):
            keys.append(key := f"{type(callback).__name__}-{id(callback)}")
            _HANDED_OVER[key] = callback
            cfg.callbacks[f"bench_{i}"] = {"_target_": f"{__name__}.handed_over", "key": key}
    try:
        yield cfg
    finally:
        for key in keys:
            _HANDED_OVER.pop(key, None)


def train_with(cfg: DictConfig, *callbacks: object) -> float:
    """`seqlab.train.train(cfg)`, the run it tracks also calling these callbacks."""
    from seqlab.train import train

    with with_callbacks(cfg, *callbacks) as cfg_with:
        return train(cfg_with)


def checkout_env() -> dict[str, str]:
    """This environment, with the checkout on PYTHONPATH: a `seqlab` subprocess can then instantiate a
    class of benchmarks/ named in its config, and `python -m benchmarks` runs from any folder."""
    paths = [str(CHECKOUT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return os.environ | {"PYTHONPATH": os.pathsep.join(paths)}


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
