"""What a tracking server could not take, kept on disk until it can: `seqlab-upload SPOOL_DIR`.

A run's spool folder (`<job output dir>/mlflow-spool/`) holds
  metrics.jsonl   metric batches not yet written, oldest first, one JSON list of [key, value, ts, step] a line
  artifacts/      files laid out as their artifact paths in the run
  run.json        the run id, the tags and the final status still to set
It exists only while something is pending; an empty spool is removed.
"""

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import Metric

from seqlab.tracking.params import redact
from seqlab.tracking.store import MAX_METRICS_PER_BATCH, add_tracking_uri_option, read_store, tracking_uri

SPOOL_DIRNAME = "mlflow-spool"


class Spool:
    def __init__(self, directory: Path, run_id: str) -> None:
        self.directory, self.run_id = Path(directory), run_id

    @property
    def metrics_file(self) -> Path:
        return self.directory / "metrics.jsonl"

    @property
    def artifacts_dir(self) -> Path:
        return self.directory / "artifacts"

    def save_metrics(self, batches: list[list[Metric]]) -> None:
        """Replace the pending metrics with `batches` (written whole, then renamed: never half a file)."""
        if not batches:
            self.metrics_file.unlink(missing_ok=True)
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        partial = self.metrics_file.with_suffix(".partial")
        with partial.open("w") as f:
            for batch in batches:
                f.write(json.dumps([[m.key, m.value, m.timestamp, m.step] for m in batch]) + "\n")
        os.replace(partial, self.metrics_file)

    def keep_artifact(self, local_path: Path, artifact_path: str | None) -> None:
        """Keep a file as artifacts/<artifact_path>/<name>, a folder's contents as
        artifacts/<artifact_path>/."""
        local_path = Path(local_path)
        folder = self.artifacts_dir / (artifact_path or "")
        if local_path.is_dir():
            shutil.copytree(local_path, folder, dirs_exist_ok=True)
        else:
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copy2(local_path, folder / local_path.name)

    def save_run(self, status: str, tags: dict[str, str]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "run.json").write_text(
            json.dumps({"run_id": self.run_id, "status": status, "tags": tags})
        )

    def is_empty(self) -> bool:
        return not self.directory.exists() or not any(self.directory.iterdir())

    def remove_if_empty(self) -> None:
        if (
            self.directory.exists()
            and not self.metrics_file.exists()
            and not (self.directory / "run.json").exists()
            and (not self.artifacts_dir.exists() or not any(self.artifacts_dir.rglob("*")))
        ):
            shutil.rmtree(self.directory, ignore_errors=True)


def upload(directory: Path, client: MlflowClient) -> str:
    """Send a spool to its run (metrics, artifacts, tags, then the final status); returns the run id.

    Metrics are keyed by (key, step, timestamp, value), so a batch sent twice is stored once.
    """
    directory = Path(directory)
    run = json.loads((directory / "run.json").read_text())
    run_id = run["run_id"]
    metrics_file = directory / "metrics.jsonl"
    if metrics_file.exists():
        metrics = [
            Metric(k, v, ts, step)
            for line in metrics_file.read_text().splitlines()
            for k, v, ts, step in json.loads(line)
        ]
        for i in range(0, len(metrics), MAX_METRICS_PER_BATCH):
            client.log_batch(run_id, metrics=metrics[i : i + MAX_METRICS_PER_BATCH])
    artifacts = directory / "artifacts"
    if artifacts.exists():
        client.log_artifacts(run_id, str(artifacts))
    for key, value in run["tags"].items():
        client.set_tag(run_id, key, value)
    client.set_terminated(run_id, run["status"])
    shutil.rmtree(directory)
    return run_id


def main(argv: list[str] | None = None) -> None:
    """Console script `seqlab-upload SPOOL_DIR... [--tracking-uri URI]`."""
    parser = argparse.ArgumentParser(
        prog="seqlab-upload",
        description="Upload the metrics and artifacts a tracking server could not take at the time.",
    )
    parser.add_argument(
        "spools", nargs="+", type=Path, help=f"{SPOOL_DIRNAME} folders (or folders containing them)"
    )
    add_tracking_uri_option(parser)
    args = parser.parse_intermixed_args(argv)
    uri = tracking_uri(args.tracking_uri)
    from seqlab.errors import TrackingError

    spools = [
        p
        for given in args.spools
        for p in ([given] if (given / "run.json").exists() else sorted(given.rglob(f"{SPOOL_DIRNAME}")))
    ]
    if not spools:
        parser.error(f"no spool (a folder with run.json) under {', '.join(map(str, args.spools))}")
    try:
        client = read_store(uri)
    except TrackingError as err:
        print(f"seqlab-upload: {err}", file=sys.stderr)
        sys.exit(1)
    for spool in spools:
        run_id = upload(spool, client)
        print(f"seqlab-upload: {spool} -> run {run_id} in {redact(uri)}")


if __name__ == "__main__":
    main()
