"""Where a run came from: the code's git commit, whether its tree was dirty, and seqlab's version."""

import subprocess
from pathlib import Path

import seqlab
from seqlab import names

SOURCE_DIR = Path(__file__).resolve().parents[2]  # the checkout seqlab runs from (editable install)


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(SOURCE_DIR), *args], capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def git_state() -> tuple[str, bool | None]:
    """(commit, dirty) of seqlab's own source tree; ("unknown", None) outside a git checkout."""
    commit = _git("rev-parse", "HEAD")
    if not commit:
        return "unknown", None
    status = _git("status", "--porcelain", "--untracked-files=no")
    return commit, bool(status)


def run_tags() -> dict[str, str]:
    """The tags every run and sweep parent gets at creation: git commit, dirty tree, seqlab's version."""
    commit, dirty = git_state()
    tags = {
        names.GIT_COMMIT: commit,
        names.GIT_DIRTY: "unknown" if dirty is None else str(dirty).lower(),
        names.SEQLAB_VERSION: seqlab.__version__,
    }
    if dirty is not None:
        tags["mlflow.source.git.commit"] = commit  # shown by the MLflow UI
    return tags
