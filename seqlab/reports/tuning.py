"""What a tuning sweep's parent run says about its search (artifacts another part of seqlab logs there):
tuning/summary.csv, and per arm tuning/<arm>/importances.csv (param,importance) and importances.png."""

import csv
import io
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlflow import MlflowClient

from seqlab import names

# summary.csv's columns that count an arm's trials by their end (complete, pruned, failed): their sum is the
# arm's search budget
TRIAL_COUNTS = ("n_complete", "n_pruned", "n_failed")


@dataclass
class Arm:
    """One arm of the search (a value of the sweep's comma lists, e.g. "cell=gru")."""

    name: str
    importances: list[tuple[str, float]] = field(default_factory=list)  # most important first
    picture: bytes | None = None  # importances.png

    def settings(self) -> dict[str, str]:
        """The arm's overrides as key=value pairs ("cell=gru lr=..." -> {"cell": "gru", ...})."""
        pairs = (part.partition("=") for part in self.name.replace(",", " ").split())
        return {key: value for key, equals, value in pairs if equals}


@dataclass
class Tuning:
    header: list[str]  # tuning/summary.csv as it is
    rows: list[list[str]]
    arms: list[Arm]

    @property
    def equal_budgets(self) -> bool | None:
        """Whether every arm's search ran the same number of trials; None where the summary does not say."""
        return None if not self.budgets else len(set(self.budgets.values())) == 1

    @property
    def budgets(self) -> dict[str, int]:
        """Trials each arm ran (complete + pruned + failed); {} where the summary does not count them."""
        if not self.rows or not all(c in self.header for c in TRIAL_COUNTS):
            return {}
        at = [self.header.index(c) for c in TRIAL_COUNTS]
        try:
            return {row[0]: sum(int(row[i]) for i in at) for row in self.rows}
        except (ValueError, IndexError):
            return {}

    def arm_of(self, run: Any) -> Arm | None:
        """The arm a run belongs to: its names.TUNE_ARM_TAG, else the arm whose overrides (key=value) all
        agree with the run's params (a config group such as `cell` is logged as its choice, cell.name)."""
        tag = run.data.tags.get(names.TUNE_ARM_TAG)
        for arm in self.arms:
            settings = arm.settings()
            params = run.data.params
            if arm.name == tag or (
                settings and all(params.get(k, params.get(f"{k}.name")) == v for k, v in settings.items())
            ):
                return arm
        return None


def _text(client: MlflowClient, run_id: str, path: str, folder: str) -> bytes:
    return Path(client.download_artifacts(run_id, path, folder)).read_bytes()


def read(client: MlflowClient, parent_run_id: str) -> Tuning | None:
    """The parent's tuning artifacts, or None when the parent is not a tuning sweep (tag
    names.SWEEP_KIND_TAG) or logged none."""
    parent = client.get_run(parent_run_id)
    if parent.data.tags.get(names.SWEEP_KIND_TAG) != names.TUNE_KIND:
        return None
    listed = client.list_artifacts(parent_run_id, names.TUNING_ARTIFACTS)
    if not listed:
        return None
    header: list[str] = []
    rows: list[list[str]] = []
    arms = []
    with tempfile.TemporaryDirectory() as tmp:
        for item in listed:
            if not item.is_dir and item.path.endswith("/summary.csv"):
                header, *rows = list(
                    csv.reader(io.StringIO(_text(client, parent_run_id, item.path, tmp).decode()))
                )
            if not item.is_dir:
                continue
            arm = Arm(item.path.split("/", 1)[1])
            files = {
                f.path.rsplit("/", 1)[-1]: f.path for f in client.list_artifacts(parent_run_id, item.path)
            }
            if "importances.csv" in files:
                text = _text(client, parent_run_id, files["importances.csv"], tmp).decode()
                found = [(r["param"], float(r["importance"])) for r in csv.DictReader(io.StringIO(text))]
                arm.importances = sorted(found, key=lambda pair: -pair[1])
            if "importances.png" in files:
                arm.picture = _text(client, parent_run_id, files["importances.png"], tmp)
            arms.append(arm)
    return Tuning(header, rows, arms)
