"""A music run's test NLL per time step under the other ways papers average it.

"NLL per time step" leaves open what the mean runs over. seqlab's `test/nll` is the mean over every test
step, as the datasets' authors ask (Boulanger-Lewandowski et al. 2012) and Bai et al. 2018 do; the mean of
each piece's own mean instead weights a short piece as much as a long one; and the first step of a piece
is predicted from silence. On MuseData, whose pieces run from tens to thousands of steps, the two means
differ by more than the cells do, so before a gap to a published number is blamed on training, check it
here. Recomputed from the run's best checkpoint (the weights its test metrics come from), so the per-step
column must equal the logged `test/nll`.

    python -m seqlab.reports.nll_averaging [RUN_ID ...] [--sweep PARENT_RUN_ID ...] [--tracking-uri URI]
"""

import argparse
import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from mlflow import MlflowClient

from seqlab import names
from seqlab.errors import SeqlabError, TrackingError
from seqlab.tracking.server import SCRIPT_OPTION
from seqlab.tracking.store import add_tracking_uri_option, read_store, tracking_uri


@dataclass(frozen=True)
class PieceNLLs:
    """Per test piece: the NLL summed over its predicted steps, their number, and its first step's NLL."""

    total: torch.Tensor  # (pieces,) float64
    steps: torch.Tensor  # (pieces,)
    first: torch.Tensor  # (pieces,) float64

    def per_step(self) -> float:
        return float(self.total.sum() / self.steps.sum())

    def per_piece(self) -> float:
        return float((self.total / self.steps).mean())

    def without_first_step(self) -> float:
        return float((self.total - self.first).sum() / (self.steps - 1).sum())


def piece_nlls(
    net: torch.nn.Module,
    batches: Iterable[dict[str, torch.Tensor]],
    logits: Callable[[torch.Tensor], torch.Tensor],
) -> PieceNLLs:
    """The NLLs of every piece in padded, masked batches (the task's test loader: the batches seqlab tests
    on); `logits` turns the network's output into logits (Loss.logits), as the run's own test/nll read it."""
    from seqlab.tasks.music import bernoulli_nll

    totals, counts, firsts = [], [], []
    net.eval()
    with torch.inference_mode():
        for batch in batches:
            nll = (
                bernoulli_nll(logits(net(batch["x"])), batch["y"]).sum(-1).double() * batch["mask"]
            )  # (B, T)
            totals.append(nll.sum(1))
            counts.append(batch["mask"].sum(1))
            firsts.append(nll[:, 0])
    return PieceNLLs(torch.cat(totals), torch.cat(counts), torch.cat(firsts))


def best_checkpoint(client: MlflowClient, run_id: str, folder: Path) -> Path:
    """The run's logged best checkpoint, downloaded into folder."""
    logged = [
        a.path for a in client.list_artifacts(run_id, names.CHECKPOINT_ARTIFACTS) if a.path.endswith(".ckpt")
    ]
    if not logged:
        raise TrackingError(
            f"Run '{run_id}' has no checkpoint under its '{names.CHECKPOINT_ARTIFACTS}' artifacts: only a "
            "run that finished training (seqlab logs its best checkpoint then) can be re-evaluated."
        )
    return Path(client.download_artifacts(run_id, logged[0], str(folder)))


@dataclass(frozen=True)
class RunNLLs:
    name: str
    dataset: str
    cell: str
    logged: float | None  # the run's test/nll
    nlls: PieceNLLs


def run_nlls(client: MlflowClient, run_id: str) -> RunNLLs:
    """A finished music run's test pieces' NLLs, recomputed from its logged best checkpoint."""
    from seqlab.assemble import choice_name
    from seqlab.reproduce.run_config import as_seqlab_config, get_run, logged_config
    from seqlab.tasks.music import MusicTask
    from seqlab.train import build

    run = get_run(client, run_id, "re-evaluate", SCRIPT_OPTION)
    cfg = as_seqlab_config(logged_config(client, run_id), run_id)
    task, module = build(cfg)
    if not isinstance(task, MusicTask):
        raise TrackingError(
            f"Run '{run_id}' trained {cfg.task._target_}; NLL averaging applies to the music task only "
            f"(datasets {', '.join(MusicTask.DATASETS)})."
        )
    with tempfile.TemporaryDirectory() as tmp:
        state = torch.load(best_checkpoint(client, run_id, Path(tmp)), weights_only=True)["state_dict"]
    module.load_state_dict(state)
    nlls = piece_nlls(module.net, task.test_dataloader(), module.loss.logits)
    return RunNLLs(
        run.info.run_name or run_id,
        cfg.task.dataset,
        choice_name(cfg.cell),
        run.data.metrics.get(f"{names.TEST}/nll"),
        nlls,
    )


def _row(
    label: str, logged: str, per_step: float, per_piece: float, without_first: float, pieces: str
) -> str:
    return f"{label:<28} {logged:>15} {per_step:>9.3f} {per_piece:>9.3f} {without_first:>11.3f} {pieces:>6}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m seqlab.reports.nll_averaging", description=__doc__.splitlines()[0]
    )
    parser.add_argument("run_ids", nargs="*", help="finished music runs (MLflow run ids)")
    parser.add_argument(
        "--sweep",
        metavar="PARENT_RUN_ID",
        action="append",
        default=[],
        help="and every finished job of this sweep (repeatable)",
    )
    add_tracking_uri_option(parser)
    args = parser.parse_intermixed_args(argv)
    from seqlab.reports.compare import runs_to_compare

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    uri = tracking_uri(args.tracking_uri)
    run_ids = list(args.run_ids)
    try:
        client = read_store(uri)  # a dead server: a clear error in seconds, not MLflow's minutes of retries
        for parent in args.sweep:
            jobs = sorted(runs_to_compare(client, parent), key=lambda r: r.info.run_name or "")
            run_ids += [r.info.run_id for r in jobs]
    except SeqlabError as err:
        parser.exit(2, f"nll_averaging: {err}\n")
    if not run_ids:
        parser.error("give RUN_IDs, or --sweep PARENT_RUN_ID (a sweep with finished jobs)")
    print(
        f"{'run':<28} {'logged test/nll':>15} {'per step':>9} {'per piece':>9} {'no 1st step':>11} "
        f"{'pieces':>6}"
    )
    by_cell: dict[tuple[str, str], list[PieceNLLs]] = {}
    try:
        for run_id in run_ids:
            result = run_nlls(client, run_id)
            nlls = result.nlls
            by_cell.setdefault((result.dataset, result.cell), []).append(nlls)
            print(
                _row(
                    f"{result.name} {result.dataset}",
                    "-" if result.logged is None else f"{result.logged:.3f}",
                    nlls.per_step(),
                    nlls.per_piece(),
                    nlls.without_first_step(),
                    str(len(nlls.steps)),
                ),
                flush=True,
            )
    except SeqlabError as err:
        parser.exit(2, f"nll_averaging: {err}\n")
    print("mean over the runs of each cell:")
    for (dataset, cell), runs in by_cell.items():
        per_step, per_piece, without_first = (
            sum(getattr(n, f)() for n in runs) / len(runs)
            for f in ("per_step", "per_piece", "without_first_step")
        )
        print(_row(f"{cell} {dataset}", "", per_step, per_piece, without_first, f"x{len(runs)}"))


if __name__ == "__main__":
    main()
