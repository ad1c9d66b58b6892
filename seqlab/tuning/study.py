"""Where a tuning sweep's Optuna studies live, and each arm's study with its budget of trials.

The studies are in a database, so trials in other processes (joblib workers, SLURM jobs, Ray tasks) report
to them and two tuning commands can share one. Optuna and MLflow both keep their schema version in a table
named `alembic_version`, so a study cannot share the MLflow store's tables: beside a SQLite store it is a
SQLite file of its own, in a PostgreSQL store a schema of its own (`optuna`) in the same database.

An arm's budget is `n_trials` trials, counted in the study, so the same command continues where a stopped
one left off. A trial whose process went away (its heartbeat stopped, or this process was stopped) is
marked FAIL and queued again with the same point; the failed copy does not count.
"""

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from seqlab.errors import ConfigError
from seqlab.tracking.params import redact
from seqlab.tracking.store import is_postgres, sqlite_path
from seqlab.tuning.options import TuneOptions, pruner, sampler
from seqlab.tuning.space import Arm, Dimension, grid_of

log = logging.getLogger(__name__)

STUDY_SCHEMA = "optuna"  # in a PostgreSQL tracking store
DEFAULT_STORAGE_FILE = Path("outputs") / "optuna.db"  # for a store that is not SQL: under the cwd
HEARTBEAT_S = 10  # how often a running trial's heartbeat is recorded
GRACE_S = 60  # a RUNNING trial with no heartbeat for this long was lost with its process
SQLITE_WAIT_S = 60  # how long a writer waits for another process's lock on the SQLite file
RETRY_OF = "seqlab.retry_of"  # user attr of a queued trial: the number of the lost trial it runs again
SURPLUS = "seqlab.surplus"  # user attr of a trial asked for beyond the budget by a concurrent command
BEST_PREFIX = "seqlab.best.seed"  # user attr + seed index: a job's best epoch value of the metric
PARENT_RUN_ATTR = "seqlab.parent_run_id"  # study user attr: the MLflow parent run of the tuning sweep
MAX_STUDY_NAME = 400


def storage_url(given: str | None, tracking: str) -> str:
    """`hydra.sweeper.storage`, else beside the tracking store: `<store>-optuna.db` next to a SQLite store,
    the schema `optuna` of a PostgreSQL store's database, else outputs/optuna.db under the cwd."""
    if given:
        return given
    path = sqlite_path(tracking)
    if path is not None:
        return f"sqlite:///{path.with_name(f'{path.stem}-optuna.db')}"
    if is_postgres(tracking):
        joiner = "&" if "?" in tracking else "?"
        return f"{tracking}{joiner}options={quote(f'-csearch_path={STUDY_SCHEMA}')}"
    return f"sqlite:///{Path.cwd() / DEFAULT_STORAGE_FILE}"


def _prepare(url: str) -> None:
    """The folder of a SQLite file, the schema of a PostgreSQL study: Optuna creates neither."""
    path = sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    elif is_postgres(url) and STUDY_SCHEMA in url:
        import sqlalchemy

        engine = sqlalchemy.create_engine(url.partition("?")[0], poolclass=sqlalchemy.pool.NullPool)
        try:
            with engine.begin() as connection:
                connection.execute(sqlalchemy.text(f"CREATE SCHEMA IF NOT EXISTS {STUDY_SCHEMA}"))
        finally:
            engine.dispose()


def quiet_optuna() -> None:
    """Optuna's notices about features it calls experimental (heartbeats, matplotlib plots) and about
    heartbeats outside Study.optimize, which seqlab records itself: not the user's to act on."""
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message=r"Heartbeat of storage is supposed to be used")


def open_storage(url: str) -> Any:
    """Optuna's RDBStorage with heartbeats (a lost trial is failed and queued again); ConfigError, the
    URL's credentials redacted, when the database cannot be used."""
    import optuna

    quiet_optuna()

    engine_kwargs = {"connect_args": {"timeout": SQLITE_WAIT_S}} if url.startswith("sqlite") else {}
    try:
        _prepare(url)
        return optuna.storages.RDBStorage(
            url,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=HEARTBEAT_S,
            grace_period=GRACE_S,
            heartbeat_stale_trial_callback=retry,
        )
    except Exception as exc:
        problem = " ".join(str(getattr(exc, "orig", None) or exc).split())
        raise ConfigError(
            f"Cannot open the study storage {redact(url)} (hydra.sweeper.storage): {redact(problem)[:400]}. "
            "Give a SQLAlchemy URL Optuna can use: sqlite:///path/to/optuna.db, or postgresql://user@host/db."
        ) from None


def retry(study: Any, trial: Any) -> None:
    """Queue a lost trial's point again; the FAIL left behind no longer counts against the budget."""
    study.enqueue_trial(trial.params, user_attrs={RETRY_OF: trial.number}, skip_if_exists=False)
    log.info(
        "study %s: trial %d was lost with its process; its point is queued again",
        study.study_name,
        trial.number,
    )


def study_name(options: TuneOptions, overrides: Iterable[str]) -> str:
    """hydra.sweeper.study_name, else the command's overrides (where runs are stored left out)."""
    if options.study_name:
        return options.study_name
    shown = [redact(o) for o in overrides if not o.lstrip("+~").startswith(("tracking.", "paths."))]
    name = " ".join(["tune", *shown])
    if len(name) > MAX_STUDY_NAME:
        import hashlib

        name = f"{name[: MAX_STUDY_NAME - 9]} {hashlib.sha1(name.encode()).hexdigest()[:8]}"
    return name


@dataclass
class ArmStudy:
    """An arm and its study."""

    arm: Arm
    study: Any  # optuna.Study

    @property
    def name(self) -> str:
        return self.arm.name

    def counted(self) -> list[Any]:
        """The trials that spend the budget: all but lost trials queued again and surplus ones."""
        from optuna.trial import TrialState

        trials = self.study.get_trials(deepcopy=False)
        retried = {t.user_attrs.get(RETRY_OF) for t in trials}
        return [
            t
            for t in trials
            if not (t.state == TrialState.FAIL and (t.number in retried or t.user_attrs.get(SURPLUS)))
        ]

    def remaining(self, n_trials: int) -> int:
        return max(0, n_trials - len(self.counted()))

    def running(self) -> int:
        from optuna.trial import TrialState

        return sum(t.state == TrialState.RUNNING for t in self.study.get_trials(deepcopy=False))

    def ask(self, n_trials: int, distributions: dict[str, Any]) -> Any | None:
        """A new trial with its point drawn, or None when a concurrent command took the last place of the
        budget first."""
        trial = self.study.ask(distributions)
        self.study._storage.record_heartbeat(trial._trial_id)
        earlier = [t for t in self.counted() if t.number < trial.number]
        if len(earlier) >= n_trials:
            trial.set_user_attr(SURPLUS, True)
            self.study.tell(trial, state=_fail())
            return None
        return trial

    def tell(self, trial: Any, values: list[float] | None) -> str:
        """The trial's outcome: the mean of its jobs' values, FAIL without one; a trial the pruner stopped
        (its job told the study) stays PRUNED. Returns the state's name."""
        from optuna.trial import TrialState

        state = self.study._storage.get_trial(trial._trial_id).state
        if state.is_finished():
            return str(state.name)
        if values is None or not values or any(not math.isfinite(v) for v in values):
            self.study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
            return "FAIL"
        self.study.tell(trial, sum(values) / len(values), skip_if_finished=True)
        return str(self.study._storage.get_trial(trial._trial_id).state.name)

    def stop(self, trial: Any) -> None:
        """A trial this process was running when it was stopped: FAIL, and its point queued again."""
        from optuna.trial import TrialState

        storage = self.study._storage
        if storage.get_trial(trial._trial_id).state != TrialState.RUNNING:
            return
        self.study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
        retry(self.study, storage.get_trial(trial._trial_id))


def _fail() -> Any:
    from optuna.trial import TrialState

    return TrialState.FAIL


def open_arm_studies(
    options: TuneOptions, name: str, arms: tuple[Arm, ...], space: tuple[Dimension, ...], storage: Any
) -> list[ArmStudy]:
    """Each arm's study (`<name> [<arm>]`), created or continued; trials lost with their process since the
    last heartbeat are failed and queued again."""
    import optuna

    grid = grid_of(space) if options.sampler == "grid" else None
    studies = []
    for arm in arms:
        arm_study = f"{name} [{arm.name}]"
        existing = {s.study_name: s.n_trials for s in optuna.get_all_study_summaries(storage)}
        study = optuna.create_study(
            storage=storage,
            study_name=arm_study,
            direction="maximize" if options.direction == "maximize" else "minimize",
            sampler=sampler(options, grid, existing.get(arm_study, 0)),
            pruner=pruner(options),
            load_if_exists=True,
        )
        if study.direction.name.lower() != options.direction:
            raise ConfigError(
                f"Study {arm_study!r} in {redact(str(storage.url))} was started to "
                f"{study.direction.name.lower()} its metric; hydra.sweeper.direction={options.direction} "
                "would mix the two. Name another study (hydra.sweeper.study_name=...) or keep the direction."
            )
        optuna.storages.fail_stale_trials(study)
        studies.append(ArmStudy(arm, study))
    return studies
