"""Remote tracking servers: fail fast when one is down, and never let MLflow retry for minutes."""

import os
import urllib.error
import urllib.request

from seqlab.errors import TrackingError
from seqlab.tracking.params import redact

REACHABILITY_TIMEOUT_S = 5
# MLflow retries a failed request 7 times with exponential backoff (minutes in all). seqlab keeps what a
# dead server cannot take and retries it itself, so each request gives up after a few seconds.
BOUNDED_HTTP = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
}
# MLflow prints "View run ... at: <url>" on stdout as each run against a server ends, unless this is "true"
QUIET_RUN_LINKS = "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"
# How each kind of command sets the store: the `seqlab` override, and the console scripts' option
SEQLAB_OPTION = "tracking.uri"
SCRIPT_OPTION = "--tracking-uri"


def is_remote(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def bound_http_retries(uri: str) -> None:
    """Bound MLflow's HTTP retries and timeouts, unless the user set them; and stop MLflow printing
    "View run at <uri>" when the URI carries credentials (it would print them)."""
    for key, value in BOUNDED_HTTP.items():
        os.environ.setdefault(key, value)
    if redact(uri) != uri:
        os.environ[QUIET_RUN_LINKS] = "true"


def check_reachable(uri: str, option: str = SEQLAB_OPTION) -> None:
    """Raise TrackingError within seconds when the server at `uri` does not answer its /health.

    `option` is how the command at hand sets the store (`tracking.uri` for seqlab, `--tracking-uri` for
    the console scripts), so the hint names what the user can type."""
    if not is_remote(uri):
        return
    bound_http_retries(uri)
    url = uri.rstrip("/") + "/health"
    # credentials in the URI are not for /health (it needs none), and urllib would refuse them
    plain = url.split("://", 1)[0] + "://" + url.split("://", 1)[1].rsplit("@", 1)[-1]
    try:
        with urllib.request.urlopen(plain, timeout=REACHABILITY_TIMEOUT_S) as response:
            if response.status == 200:
                return
            problem = f"HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        problem = f"HTTP {exc.code} {exc.reason}"
    except (urllib.error.URLError, OSError) as exc:
        problem = str(getattr(exc, "reason", exc))
    raise TrackingError(unreachable(uri, problem, option))


def unreachable(uri: str, problem: str, option: str = SEQLAB_OPTION) -> str:
    """The one paragraph every command prints for a tracking server that does not answer."""
    return (
        f"The MLflow tracking server {redact(uri)} ({option} / MLFLOW_TRACKING_URI) is not reachable: "
        f"{problem}. seqlab stopped before doing anything: nothing was trained, read or logged. Start the "
        f"server (e.g. `mlflow server --host 127.0.0.1 --port 5000`), fix {option}, or leave it unset to "
        "use the local SQLite store outputs/mlflow.db."
    )
