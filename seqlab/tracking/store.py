"""Which MLflow store a command uses, how to open it, and the limits of its requests.

Every console script (`seqlab`, `seqlab-rerun`, `seqlab-compare`, `seqlab-upload`, the reports) and the
Hydra callbacks find the store with `tracking_uri`, so one command line means one store everywhere.
Light on purpose: MLflow is imported only when a store is opened.
"""

import argparse
import contextlib
import os
import shutil
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from seqlab.errors import TrackingError
from seqlab.tracking.params import redact
from seqlab.tracking.server import SCRIPT_OPTION, SEQLAB_OPTION, check_reachable

if TYPE_CHECKING:
    from mlflow import MlflowClient

TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
DEFAULT_STORE = Path("outputs") / "mlflow.db"  # under the cwd: where `mlflow ui` started there looks too
TRACKING_URI_HELP = (
    f"the MLflow store (default: ${TRACKING_URI_ENV}, else sqlite:///{DEFAULT_STORE} under the cwd)"
)

# The experiment tag MLflow's UI reads to choose an experiment's first page: without it, MLflow 3 opens its
# GenAI overview (traces) and the runs are a tab away; with this value it opens the runs table.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING = "custom_model_development"
# The kinds a user (or MLflow's UI on the user's word) chose; any other value is MLflow's guess or none.
CHOSEN_KINDS = (MODEL_TRAINING, "genai_development")
UI_ADDRESS = "http://127.0.0.1:5000"  # where `mlflow ui` serves by default

# MLflow's limits for one log_batch request, and for one value.
MAX_METRICS_PER_BATCH = 1000
MAX_PARAMS_PER_BATCH = 100
MAX_PARAM_LENGTH = 6000
MAX_TAG_LENGTH = 5000

# MLflow creates its tables from any client that finds them missing; on an empty PostgreSQL database,
# clients that do so at once fail with duplicate keys. seqlab's clients take this advisory lock (any
# fixed key: it names the lock within the database) to create them one at a time, and retry while a
# client that takes no lock (`mlflow server`, `mlflow ui`) is creating them.
SCHEMA_LOCK_KEY = 0x5E9_1AB
SCHEMA_WAIT_S = 60.0
CONNECT_TIMEOUT_S = 10
_schema_ready: set[str] = set()  # the databases this process found or made ready


def tracking_uri(given: str | None) -> str:
    """`given` (tracking.uri or --tracking-uri), else $MLFLOW_TRACKING_URI, else outputs/mlflow.db under
    the cwd."""
    return given or os.environ.get(TRACKING_URI_ENV) or f"sqlite:///{Path.cwd() / DEFAULT_STORE}"


def is_postgres(uri: str) -> bool:
    """`postgresql://...` or `postgresql+<driver>://...`."""
    return uri.partition("://")[0].partition("+")[0] == "postgresql"


def ensure_schema(uri: str, option: str = SEQLAB_OPTION) -> None:
    """Create MLflow's tables in a PostgreSQL database once, however many clients open it at once (no-op
    for other stores); raise TrackingError, credentials redacted, when the database cannot be used."""
    if not is_postgres(uri) or uri in _schema_ready:
        return
    import sqlalchemy
    from mlflow.exceptions import MlflowException
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    def racing(exc: Exception) -> bool:
        """Another client is creating the tables: they exist in part, or not yet at MLflow's version."""
        if isinstance(exc, MlflowException):
            return "schema" in str(exc)
        return isinstance(exc, sqlalchemy.exc.IntegrityError | sqlalchemy.exc.ProgrammingError)

    deadline = time.monotonic() + SCHEMA_WAIT_S
    engine = sqlalchemy.create_engine(
        uri, poolclass=sqlalchemy.pool.NullPool, connect_args={"connect_timeout": CONNECT_TIMEOUT_S}
    )
    try:
        with engine.connect() as lock:  # held until this connection closes
            take = sqlalchemy.text("SELECT pg_try_advisory_lock(:key)")
            while not lock.execute(take, {"key": SCHEMA_LOCK_KEY}).scalar():
                if time.monotonic() > deadline:
                    raise TimeoutError(f"another client held the schema lock for over {SCHEMA_WAIT_S:.0f} s")
                time.sleep(0.2)
            while True:
                try:
                    # the artifact root is not created here; the experiments say where artifacts go
                    SqlAlchemyStore(uri, str(Path.cwd() / "mlruns"))
                    break
                except Exception as exc:
                    if not racing(exc) or time.monotonic() > deadline:
                        raise
                    time.sleep(1.0)
    except (sqlalchemy.exc.SQLAlchemyError, MlflowException, TimeoutError) as exc:
        problem = " ".join(str(getattr(exc, "orig", None) or exc).split())
        raise TrackingError(
            f"Cannot use the MLflow tracking store {redact(uri)} ({option}): {redact(problem)}. Check "
            f"{option} / {TRACKING_URI_ENV}: that the database server runs, the database exists and the "
            "user and password are right."
        ) from None
    finally:
        engine.dispose()
    _schema_ready.add(uri)


def add_tracking_uri_option(parser: argparse.ArgumentParser) -> None:
    """--tracking-uri, the same in every console script; resolve its value with `tracking_uri`."""
    parser.add_argument(SCRIPT_OPTION, default=None, help=TRACKING_URI_HELP)


def sqlite_path(uri: str) -> Path | None:
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None


def as_typed(script: str) -> str:
    """How to call one of this environment's console scripts from the cwd: its bare name when the shell
    finds that one, else its path (after `make run`, .venv is not activated: `.venv/bin/mlflow`)."""
    beside = Path(sys.executable).parent / script
    on_path = shutil.which(script)
    if not beside.exists() or (on_path is not None and os.path.samefile(on_path, beside)):
        return script
    try:
        return str(beside.relative_to(Path.cwd()))
    except ValueError:
        return str(beside)


def runs_page(address: str, experiment_id: str) -> str:
    """The address of an experiment's runs table in the MLflow UI served at `address`."""
    return f"{redact(address).rstrip('/')}/#/experiments/{experiment_id}/runs"


def ui_command(uri: str, experiment_id: str | None = None) -> str:
    """The command that opens this store in the MLflow UI, with a path relative to the cwd when it can;
    for a server, the page of the experiment's runs (given its id)."""
    db = sqlite_path(uri)
    if db is not None:
        with contextlib.suppress(ValueError):  # a store outside the cwd keeps its absolute path
            uri = f"sqlite:///{db.resolve().relative_to(Path.cwd())}"
        return f"{as_typed('mlflow')} ui --backend-store-uri {uri}"
    if is_postgres(uri):  # the UI reads the database itself; its password is not printed here
        shown = redact(uri)
        hint = "  (with the user and password in place of ***)" if shown != uri else ""
        return f"{as_typed('mlflow')} ui --backend-store-uri '{shown}'{hint}"
    page = runs_page(uri, experiment_id) if experiment_id is not None else redact(uri)
    return f"open {page} in a browser"


def read_store(uri: str, option: str = SCRIPT_OPTION) -> "MlflowClient":
    """A client of a store that a command reads (reruns, comparisons, uploads), refused in seconds when it
    is a server that does not answer. `option` is how the command sets the store, for the hint."""
    from mlflow import MlflowClient

    check_reachable(uri, option)
    ensure_schema(uri, option)
    return MlflowClient(uri)


def mark_model_training(client: "MlflowClient", experiment_id: str, tags: dict[str, str]) -> None:
    """Tag the experiment as model training, so MLflow's UI opens on its runs, unless a kind was chosen."""
    if tags.get(EXPERIMENT_KIND_TAG) not in CHOSEN_KINDS:
        client.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING)


def open_experiment(uri: str, experiment: str) -> "tuple[MlflowClient, str]":
    """The client and id of `experiment`, created if missing (artifacts beside a SQLite store), and marked
    as model training for MLflow's UI."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    db = sqlite_path(uri)
    artifact_location = None
    if db is not None:
        db.parent.mkdir(parents=True, exist_ok=True)
        artifact_location = (db.resolve().parent / "mlartifacts").as_uri()
    check_reachable(uri)  # a dead server: a clear error in seconds, not minutes of MLflow retries
    ensure_schema(uri)  # before MLflow's client, which would create the tables without a lock
    client = MlflowClient(uri)
    try:
        found = client.get_experiment_by_name(experiment)
        if found is None:
            try:
                created = client.create_experiment(
                    experiment,
                    artifact_location=artifact_location,
                    tags={EXPERIMENT_KIND_TAG: MODEL_TRAINING},
                )
                return client, created
            except MlflowException:  # created meanwhile by a parallel job
                found = client.get_experiment_by_name(experiment)
                if found is None:
                    raise
        mark_model_training(client, found.experiment_id, found.tags)
        return client, found.experiment_id
    except MlflowException as exc:
        raise TrackingError(
            f"Cannot use the MLflow tracking store {redact(uri)} ({SEQLAB_OPTION}): {exc}. "
            f"Check {SEQLAB_OPTION} / {TRACKING_URI_ENV} and that the store is reachable and writable."
        ) from exc
