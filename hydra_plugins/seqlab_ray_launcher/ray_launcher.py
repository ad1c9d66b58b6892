"""`hydra/launcher=ray`: every job of a sweep as a Ray task (`ray.remote`), on a Ray this launcher starts
on 127.0.0.1 and stops with the sweep (`hydra.launcher.ray.init.address: null`) or on an existing cluster
(`auto`, `host:port`). Like Hydra's joblib launcher, each job gets the sweep's config and callbacks
pickled with it, so it learns its sweep (seqlab's JobContext) whatever environment its worker started in.
"""

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, run_job, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

log = logging.getLogger(__name__)

# ray.init's arguments that set up a Ray of its own: an existing cluster refuses them (its own `ray start`
# decided them), so they are passed to a local Ray only.
LOCAL_RAY_ONLY = (
    "num_cpus",
    "num_gpus",
    "resources",
    "labels",
    "object_store_memory",
    "_system_config",
    "_enable_object_reconstruction",
    "_node_name",
    "include_dashboard",
    "_node_ip_address",
)
# Ray on Linux takes this machine's network address even when told 127.0.0.1; in single-machine mode (the
# default on macOS and Windows) it stays on loopback. Read when ray is imported.
SINGLE_MACHINE_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
COLLECT_POLL_S = 1.0
REACH_TIMEOUT_S = 5.0
CANCELLED_WAIT_S = 3.0  # after the sweep's own wait: the whole stop stays within a container's 10 s


def on_loopback(address: str | None) -> bool:
    """Whether Ray runs on this machine alone: a Ray of the launcher's own, `auto` (the cluster started
    here) or an address on loopback. A cluster's head named by its network address is the cluster's."""
    if address is None or address == "auto":
        return True
    host = address.split("://")[-1].rsplit(":", 1)[0]
    return host in LOOPBACK_HOSTS or host.startswith("127.")


def execute_job(
    idx: int,
    overrides: Sequence[str],
    hydra_context: HydraContext,
    config: DictConfig,
    task_function: TaskFunction,
    singleton_state: dict[Any, Any],
) -> JobReturn:
    """One job, in a Ray worker: as Hydra's joblib launcher runs one in its worker."""
    setup_globals()
    Singleton.set_state(singleton_state)
    # relative paths (the store, the sweep folder) mean the launching folder, where this node has it
    if Path(config.hydra.runtime.cwd).is_dir():
        os.chdir(config.hydra.runtime.cwd)
    sweep_config = hydra_context.config_loader.load_sweep_config(config, list(overrides))
    with open_dict(sweep_config):
        sweep_config.hydra.job.id = f"{sweep_config.hydra.job.name}_{idx}"
        sweep_config.hydra.job.num = idx
    HydraConfig.instance().set_config(sweep_config)
    return run_job(
        hydra_context=hydra_context,
        config=sweep_config,
        task_function=task_function,
        job_dir_key="hydra.sweep.dir",
        job_subdir_key="hydra.sweep.subdir",
    )


class RayLauncher(Launcher):
    def __init__(self, ray: Mapping[str, Any]) -> None:
        plain = OmegaConf.to_container(ray, resolve=True) if isinstance(ray, DictConfig) else dict(ray)
        assert isinstance(plain, dict)
        self.ray: dict[str, Any] = {str(key): value for key, value in plain.items()}
        self.config: DictConfig | None = None
        self.task_function: TaskFunction | None = None
        self.hydra_context: HydraContext | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.task_function = task_function
        self.hydra_context = hydra_context

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        assert self.config is not None and self.task_function is not None and self.hydra_context is not None
        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        init = dict(self.ray.get("init") or {})
        remote = {k: v for k, v in (self.ray.get("remote") or {}).items() if v is not None}
        ray = _connect(init)
        log.info(f"Ray is launching {len(job_overrides)} jobs ({_describe(remote)}), sweep dir: {sweep_dir}")
        for idx, overrides in enumerate(job_overrides):
            log.info(f"\t#{initial_job_idx + idx} : {' '.join(filter_overrides(overrides))}")

        from seqlab.tracking.sweep import set_job_stopper

        job = ray.remote(execute_job).options(**remote)
        state = Singleton.get_state()
        refs = [
            job.remote(
                initial_job_idx + idx, overrides, self.hydra_context, self.config, self.task_function, state
            )
            for idx, overrides in enumerate(job_overrides)
        ]
        stopped_by: list[int] = []

        def stop(signum: int) -> None:
            stopped_by.append(signum)
            _cancel(ray, refs)

        set_job_stopper(stop)
        try:
            return self._collect(ray, refs, job_overrides, initial_job_idx)
        except BaseException:  # the sweep was stopped: no job goes on without it
            _cancel(ray, refs)
            _, left = ray.wait(refs, num_returns=len(refs), timeout=CANCELLED_WAIT_S)
            _cancel(ray, left, force=True)
            if stopped_by:  # Ray's wait turns the sweep's SystemExit(128 + signal) into exit status 1
                raise SystemExit(128 + stopped_by[0]) from None
            raise
        finally:
            set_job_stopper(None)
            if init.get("address") is None:
                ray.shutdown()

    def _collect(
        self, ray: Any, refs: list[Any], job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> list[JobReturn]:
        """Every job's JobReturn, in order; a job whose worker died fails, its run ended KILLED."""
        from seqlab.tracking.sweep import PARENT_RUN_ENV, end_lost_job

        assert self.config is not None
        results: dict[int, JobReturn] = {}
        pending = list(refs)
        while pending:
            # bounded waits: signals (a stop) are handled between them
            ready, pending = ray.wait(pending, num_returns=1, timeout=COLLECT_POLL_S)
            for ref in ready:
                idx = refs.index(ref)
                try:
                    results[idx] = ray.get(ref)
                except ray.exceptions.RayError as err:
                    num = initial_job_idx + idx
                    why = f"its Ray worker died: {type(err).__name__}: {str(err).splitlines()[0]}"
                    parent = os.environ.get(PARENT_RUN_ENV)
                    if parent:
                        end_lost_job(self.config, parent, num, why)
                    results[idx] = JobReturn(
                        overrides=list(job_overrides[idx]),
                        status=JobStatus.FAILED,
                        _return_value=RuntimeError(f"job {num}: {why}"),
                    )
        return [results[i] for i in range(len(refs))]


def _connect(init: dict[str, Any]) -> Any:
    """Ray, started on loopback for this sweep (address null) or connected to an existing cluster."""
    address = init.get("address")
    # Ray reads these as it is imported
    if on_loopback(address):
        os.environ[SINGLE_MACHINE_ENV] = "0"
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")  # each job's lines are its own, none folded into another's
    if address is not None and address != "auto":
        # Ray looks for the token `ray start` made (~/.ray/auth_token) with `auto` only: a host:port is told
        token = os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")
        if token or (Path.home() / ".ray" / "auth_token").is_file():
            os.environ.setdefault("RAY_AUTH_MODE", "token")
    import ray

    if on_loopback(address):  # ray imported before this launcher ran has read the variable already
        ray._private.ray_constants.ENABLE_RAY_CLUSTER = False
    if address is None:
        # "local": a new Ray even where one runs already (None would join it, or wait on a stale address)
        init = {**init, "address": "local", "_node_ip_address": "127.0.0.1", "include_dashboard": False}
    else:
        _check_reachable(address)
        dropped = sorted(k for k in LOCAL_RAY_ONLY if init.get(k) is not None)
        if dropped:
            log.warning(
                f"Left out ray.init's {', '.join(dropped)}: an existing cluster (address {address}) refuses "
                "them; its own `ray start` decided them."
            )
        init = {k: v for k, v in init.items() if k not in LOCAL_RAY_ONLY}
    init.setdefault("configure_logging", False)
    # ray.init takes SIGTERM for itself; the sweep's handler (seqlab's SweepParentRun) must keep it
    main = threading.current_thread() is threading.main_thread()
    sigterm = signal.getsignal(signal.SIGTERM) if main else None
    started = time.monotonic()
    ray.init(**init)
    if main and sigterm is not None:
        signal.signal(signal.SIGTERM, sigterm)
    where = "a local Ray on 127.0.0.1" if address is None else f"the Ray cluster at {address}"
    log.info(f"Connected to {where} in {time.monotonic() - started:.1f} s: {ray.cluster_resources()}")
    return ray


def _check_reachable(address: str) -> None:
    """A cluster's address that answers: ray.init would wait for one that does not, for minutes."""
    if address == "auto" or "://" in address:
        return  # Ray finds the cluster (its address file, $RAY_ADDRESS) or a Ray Client server
    from seqlab.errors import ConfigError

    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=REACH_TIMEOUT_S).close()
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"hydra.launcher.ray.init.address={address}: no Ray cluster answers there ({exc}). Give the "
            "address `ray start --head` printed (host:port of its GCS), `auto` for the cluster started on "
            "this machine, or null for a Ray of the sweep's own."
        ) from None


def _cancel(ray: Any, refs: list[Any], force: bool = False) -> None:
    """Cancel jobs: one not started never starts; a running one gets KeyboardInterrupt (its run ends KILLED
    at once), or with force its worker is killed."""
    for ref in refs:
        try:
            ray.cancel(ref, force=force)
        except Exception as exc:  # already finished, or Ray is going away: nothing left to cancel
            log.debug(f"cancelling {ref}: {exc}")


def _describe(remote: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in remote.items()) or "Ray's defaults"
