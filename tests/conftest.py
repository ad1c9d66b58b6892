"""Shared fixtures: real configs composed with Hydra's compose API, a real SQLite MLflow store."""

import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from mlflow import MlflowClient
from omegaconf import DictConfig, open_dict

from seqlab.config import register_configs

register_configs()
REPO = Path(__file__).resolve().parents[1]

# A few batches of one epoch: enough to exercise every path, fast enough for the default test set.
TINY = [
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=3",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=2",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that uses the MLflow store is an integration test (`make test-fast` leaves it out), with no mark
    to remember: the tracking_uri fixture, asked for directly or through make_cfg or client, says so."""
    for item in items:
        if "tracking_uri" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.integration)


def compose_config(overrides: list[str] = ()) -> DictConfig:
    """The real seqlab config as `seqlab <overrides>` would compose it."""
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="seqlab.conf", version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


@pytest.fixture(scope="session")
def tracking_uri(tmp_path_factory) -> str:
    """One SQLite store for the session (its schema takes seconds to create); experiments keep tests apart."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


def tiny_config(output_root: Path, tracking_uri: str, *overrides: str, tiny: bool = True) -> DictConfig:
    """A tiny run of the real config writing under output_root, to a new experiment unless one is named."""
    cfg = compose_config([*(TINY if tiny else []), *overrides])
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_root / f"job-{uuid.uuid4().hex[:8]}")
        cfg.tracking.uri = tracking_uri
        if "tracking.experiment" not in " ".join(overrides):
            cfg.tracking.experiment = f"test-{uuid.uuid4().hex[:8]}"
    return cfg


@pytest.fixture
def make_cfg(tmp_path: Path, tracking_uri: str) -> Callable[..., DictConfig]:
    """Compose a tiny run of the real config that writes to tmp_path and a fresh experiment."""

    def make(*overrides: str, tiny: bool = True) -> DictConfig:
        return tiny_config(tmp_path, tracking_uri, *overrides, tiny=tiny)

    return make


@pytest.fixture
def client(tracking_uri: str) -> MlflowClient:
    return MlflowClient(tracking_uri)


def runs_of(client: MlflowClient, experiment: str):
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"experiment {experiment} was never created"
    return client.search_runs([exp.experiment_id], order_by=["start_time ASC"])


@pytest.fixture(autouse=True)
def _no_ambient_tracking_uri(monkeypatch):
    """A developer's MLFLOW_TRACKING_URI must not leak into tests."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def seqlab_env(tmp_path: Path) -> dict[str, str]:
    """Environment for running the `seqlab` console script in a subprocess."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["HYDRA_FULL_ERROR"] = "0"
    return env


# --- the data cache: seeded from ../shared/datasets, never downloaded ------------------------------

SHARED_DATASETS = REPO.parent / "shared" / "datasets"
NO_DOWNLOAD_MIRROR = "http://127.0.0.1:9"  # the discard port: a download attempt fails at once


@pytest.fixture(scope="session")
def _seeded_cache(tmp_path_factory) -> Path:
    """A data cache holding symlinks to the shared copies (seqlab still verifies each checksum)."""
    from seqlab.tasks.download import FILES

    cache = tmp_path_factory.mktemp("data-cache")
    for name in FILES:
        if (SHARED_DATASETS / name).is_file():
            (cache / name).symlink_to(SHARED_DATASETS / name)
    return cache


def require_files(cache: Path, *file_names: str) -> Path:
    """The cache, when it holds these files; else skip the test on a developer machine and fail it under
    CI=true (CI must not pass by skipping the real-data tests)."""
    missing = [n for n in file_names if not (cache / n).exists()]
    if missing:
        message = f"dataset file(s) {', '.join(missing)} not in {SHARED_DATASETS}"
        if os.environ.get("CI", "").lower() in {"true", "1"}:
            pytest.fail(message)
        pytest.skip(message)
    return cache


def use_cache(monkeypatch: pytest.MonkeyPatch, cache: Path) -> None:
    """Data files come from the cache only: a download attempt fails at once."""
    monkeypatch.setenv("SEQLAB_DATA_DIR", str(cache))
    monkeypatch.setenv("SEQLAB_DATA_MIRROR", NO_DOWNLOAD_MIRROR)


@pytest.fixture
def data_cache(_seeded_cache: Path, monkeypatch) -> Callable[..., Path]:
    """Point SEQLAB_DATA_DIR at the seeded cache; `data_cache("ETTh1.csv", ...)` requires those files."""
    use_cache(monkeypatch, _seeded_cache)
    return lambda *file_names: require_files(_seeded_cache, *file_names)


def seqlab_compare(
    parent_run_id: str, tracking_uri: str, cwd: Path, env: dict[str, str]
) -> tuple[str, set[str]]:
    """`seqlab-compare <parent>` as a user runs it: its output and the cell names its rows show."""
    done = subprocess.run(
        [Path(sys.executable).parent / "seqlab-compare", parent_run_id, "--tracking-uri", tracking_uri],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    cells = {
        line.split("cell.name=")[1].split()[0] for line in done.stdout.splitlines() if "cell.name=" in line
    }
    return done.stdout, cells
