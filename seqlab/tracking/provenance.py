"""Where a run came from: the code's git commit and whether its tree was dirty."""

import subprocess
from pathlib import Path

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
