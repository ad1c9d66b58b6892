"""The `seqlab` command: compose -> validate -> instantiate -> fit -> test, the run tracked in MLflow.

Only Hydra and the config schema are imported at module level, so `seqlab --help` and
`seqlab --cfg job` answer without loading torch, Lightning or MLflow.
"""

import logging
import os
import sys
import warnings
from typing import NoReturn

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import CompactHydraException
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, open_dict

from seqlab.config import check_batch_limits, register_configs, validate
from seqlab.errors import USAGE_ERROR, SeqlabError
from seqlab.preflight import preflight

log = logging.getLogger(__name__)
register_configs()


# Per-run notices at INFO, named one by one: Lightning and MLflow set their package loggers to INFO on import
LIBRARY_NOTICES = (
    "lightning.pytorch.utilities.rank_zero",  # banners and advice (GPU available, model summary)
    "lightning.pytorch.accelerators.cuda",  # LOCAL_RANK / CUDA_VISIBLE_DEVICES, each run on a GPU
    "mlflow.store.db.utils",  # SQLite store set-up
    "mlflow.system_metrics.system_metrics_monitor",  # started / stopped monitoring, each run
    "lightning.pytorch.trainer.connectors.signal_connector",  # "Received SIGTERM", each stopped job
)


def quiet_library_notices() -> None:
    """Keep Lightning's and MLflow's per-run notices out of sweep logs and benchmark reports; their
    warnings about our choices stay."""
    for notice in LIBRARY_NOTICES:
        logging.getLogger(notice).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=r".*LeafSpec.*is deprecated")
    warnings.filterwarnings("ignore", message=r".*smaller than the logging interval.*")
    warnings.filterwarnings("ignore", message=r".*does not have many workers.*")


def build(cfg: DictConfig, expected_data: str | None = None):
    """Instantiate the task (its data built and checked) and the LightningModule for a valid config.

    The one way to build what a run trains: training, reports and the benchmarks all use it. With
    `expected_data` (a run's names.DATA_SHA256 tag, for a rerun or a resume) data files whose bytes differ
    from the run's are refused before anything trains.
    """
    import lightning as L

    from seqlab.assemble import instantiate_choice, network
    from seqlab.models.module import SequenceModule

    _set_torch_threads(cfg)
    _set_torch_numerics(cfg)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    task = instantiate(cfg.task)
    if expected_data:
        task.verify_files(expected_data)
    task.prepare()  # data is built and checked before any MLflow run exists
    loss = instantiate_choice(cfg.loss)
    module = SequenceModule(
        network(cfg, task.spec(), loss),
        loss,
        optimizer=instantiate(cfg.optimizer),
        scheduler=instantiate(cfg.scheduler) if cfg.scheduler else None,
        metrics=task.metrics(),
    )
    return task, module


def train(
    cfg: DictConfig, extra_tags: dict[str, str] | None = None, expected_data: str | None = None
) -> float:
    """Train and test one configuration; returns the best val/loss (the value a sweeper minimizes).

    extra_tags go on the new run (seqlab-rerun sets rerun_of); expected_data is the data a rerun must
    train on (see build). With cfg.resume set, the config and the MLflow run are those of that run id,
    and training continues from its last checkpoint on the data that run read.
    """
    import lightning as L
    import torch
    from lightning.pytorch.callbacks import ModelCheckpoint

    from seqlab import names
    from seqlab.assemble import choice_name
    from seqlab.callbacks import StopOnInterrupt
    from seqlab.models.network import count_parameters
    from seqlab.reproduce.checkpoint import RunCheckpointLink
    from seqlab.reproduce.provenance import determinism_tag, provenance_tags
    from seqlab.reproduce.resume import resume_point, resumed_tag
    from seqlab.reproduce.seeding import BatchReseed
    from seqlab.tracking.artifacts import SystemFigures, add_run_artifacts
    from seqlab.tracking.run import tracked_run
    from seqlab.tracking.store import tracking_uri
    from seqlab.tuning.trial import trial_callbacks

    resume = resume_point(cfg) if cfg.get("resume") else None
    if resume is not None:
        cfg = resume.cfg
        expected_data = resume.run_tags.get(names.DATA_SHA256) or expected_data
    validate(cfg)
    quiet_library_notices()
    task, module = build(cfg, expected_data)
    with open_dict(cfg):  # the logged config holds what the task resolved (an absolute task.path)
        for key, value in task.resolved_config().items():
            cfg.task[key] = value
    check_batch_limits(cfg.trainer, task.batch_counts(), task.batch_size)
    net = module.net
    # BatchReseed first: callbacks that draw random numbers per batch (weight_noise) draw after the reseed
    callbacks = [BatchReseed(cfg.seed), *configured_callbacks(cfg)]
    callbacks += trial_callbacks(tracking_uri(cfg.tracking.uri))  # a tuning trial reports to its study
    # the task's label, not its name: it tells runs apart where the name does not (csv: file and target)
    name = resume.run_name if resume else f"{choice_name(cfg.cell)}-{task.label}-s{cfg.seed}"
    if cfg.model.param_budget is not None:  # the params and config.yaml show the size the budget chose
        with open_dict(cfg):
            cfg.model.hidden_size = net.hidden_size
            if cfg.model.head_hidden is None and net.head_hidden != net.hidden_size:
                cfg.model.head_hidden = net.head_hidden  # the budget resized the head to land within 2%
    extra_params = {names.N_PARAMS: count_parameters(net)} | task.split_sizes() | task.extra_params()
    extra_params[names.TORCH_THREADS] = torch.get_num_threads()
    log.info(
        "%s: %d parameters (hidden size %d), splits %s",
        name,
        extra_params[names.N_PARAMS],
        net.hidden_size,
        task.split_sizes(),
    )
    tags = provenance_tags(cfg, task.data_files()) | {names.HIGHER_IS_BETTER_TAG: higher_is_better(module)}
    tags |= extra_tags or {}
    if resume is not None:
        previous = resume.run_tags.get(names.RESUMED_TAG)
        tags |= {names.RESUMED_TAG: resumed_tag(previous, resume.epoch)}

    figures = SystemFigures()
    reopen = resume.run_id if resume else None
    run_id = None
    try:
        with tracked_run(cfg, name, extra_params, tags, reopen_run_id=reopen) as run:
            run_id = run.run_id
            stop = StopOnInterrupt(run.interrupts.raise_if_interrupted)
            callbacks += [RunCheckpointLink(run.client, run.run_id), figures, stop]
            trainer: L.Trainer = instantiate(
                cfg.trainer,
                logger=run.logger,
                callbacks=callbacks,
                enable_checkpointing=checkpointing(cfg, callbacks),
            )
            run.client.set_tag(run.run_id, names.DETERMINISM, determinism_tag(cfg))
            # weights_only: a checkpoint is loaded as tensors and plain values, never as pickled code
            resume_from = str(resume.checkpoint) if resume else None
            trainer.fit(module, datamodule=task, ckpt_path=resume_from, weights_only=True)
            final_val_loss = trainer.callback_metrics.get(names.VAL_LOSS)  # before trainer.test replaces them
            checkpoint = trainer.checkpoint_callback
            if not (isinstance(checkpoint, ModelCheckpoint) and checkpoint.best_model_path):
                checkpoint = None
            # The first checkpoint callback's file by path, as ckpt_path="best" would pick it, without
            # Lightning's warning about the second ModelCheckpoint (callbacks.last_checkpoint) at the end
            # of every run.
            tested = checkpoint.best_model_path if checkpoint is not None else None
            trainer.test(module, datamodule=task, ckpt_path=tested, verbose=False, weights_only=True)
            run.log_metrics(figures.figures | baseline_scores(task))
            add_run_artifacts(run, trainer, module, task, cfg, name)
            # No best score without a monitoring checkpoint callback (when the user dropped
            # callbacks.model_checkpoint, Lightning's checkpoint_callback is callbacks.last_checkpoint)
            best = checkpoint.best_model_score if checkpoint is not None else None
            best = final_val_loss if best is None else best
            return float(best) if best is not None else float("nan")
    except SeqlabError as err:
        if run_id is not None:  # no run summary is printed after an error: the message names the run
            err.add_note(f"In MLflow run {run_id}:")
        raise


def baseline_scores(task) -> dict[str, float]:
    """The task's trivial baselines on the validation and test splits, as metrics (names.baseline_key);
    logged in every run, so every comparison shows what doing nothing clever scores."""
    from seqlab import names

    return {
        names.baseline_key(stage, name): value
        for stage in (names.VAL, names.TEST)
        for name, value in task.baselines(stage).items()
    }


def higher_is_better(module) -> str:
    """The logged metric keys where higher is better (the tag names.HIGHER_IS_BETTER_TAG), from each
    torchmetrics Metric's own `higher_is_better`; seqlab-compare ranks by it."""
    keys = [
        f"{collection.prefix}{name}"
        for collection in (module.val_metrics, module.test_metrics)
        for name, metric in collection.items(keep_base=True)
        if getattr(metric, "higher_is_better", None)
    ]
    return ",".join(keys)


def configured_callbacks(cfg: DictConfig) -> list:
    """The callbacks of cfg.callbacks, instantiated; `callbacks.<name>=null` (or `~callbacks.<name>`)
    switches one off.

    One that would do nothing in this run (`active` False: weight_noise at std 0) is left out too: Lightning
    calls six hooks of every callback each training step, whether the callback defines them or not.
    """
    callbacks = [instantiate(c) for c in (cfg.callbacks or {}).values() if c is not None]
    return [callback for callback in callbacks if getattr(callback, "active", True)]


def checkpointing(cfg: DictConfig, callbacks: list) -> bool:
    """trainer.enable_checkpointing, or where it is null (Lightning's "auto"), whether any checkpoint
    callback is left: with both switched off (callbacks.model_checkpoint=null callbacks.last_checkpoint=null)
    Lightning would otherwise put its default one in their place and save every epoch all the same."""
    from lightning.pytorch.callbacks import Checkpoint

    enabled = cfg.trainer.get("enable_checkpointing")
    return bool(enabled) if enabled is not None else any(isinstance(c, Checkpoint) for c in callbacks)


def _set_torch_threads(cfg: DictConfig) -> None:
    """torch_threads, else the share of cores a parallel sweep gave this job (two jobs must not fight over
    them)."""
    import torch

    from seqlab.tracking.sweep import TORCH_THREADS_ENV

    threads = cfg.get("torch_threads") or os.environ.get(TORCH_THREADS_ENV)
    if threads:
        torch.set_num_threads(int(threads))


def _set_torch_numerics(cfg: DictConfig) -> None:
    """Deterministic algorithms as trainer.deterministic asks, set here as well as by the Trainer, so
    that code that builds a run's module without a Trainer computes exactly what the run computes.

    Without PyTorch's NaN fill of fresh tensors, which deterministic mode turns on by default: the fill
    only matters to an op that reads memory it never wrote (a bug), and it costs time on every
    allocation (docs/performance.md); PyTorch's docs call a valid program deterministic without it.
    tests/test_reproducibility.py checks that reruns still match exactly.
    """
    import torch
    import torch.utils.deterministic

    deterministic = cfg.trainer.get("deterministic")
    if deterministic is not None:  # None: the Trainer leaves torch's setting alone, so do we
        torch.use_deterministic_algorithms(bool(deterministic), warn_only=deterministic == "warn")
    if deterministic:  # as the Trainer does: cuBLAS refuses deterministic mode on a GPU without it
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = ":4096:8"
    # the module sets this attribute at run time; torch's stubs do not declare it
    torch.utils.deterministic.fill_uninitialized_memory = False  # type: ignore[attr-defined]


class ReportedError(CompactHydraException):
    """A SeqlabError on its way out of a Hydra job: Hydra prints a compact error's message alone."""


def full_errors() -> bool:
    return os.environ.get("HYDRA_FULL_ERROR") == "1"


def paragraph(err: SeqlabError) -> str:
    """The message, after the run it concerns: messages may end with a command to copy."""
    return " ".join([*getattr(err, "__notes__", []), str(err)])


def exit_with(err: SeqlabError) -> NoReturn:
    print(f"seqlab: {paragraph(err)}", file=sys.stderr, flush=True)
    raise SystemExit(USAGE_ERROR) from err


@hydra.main(version_base="1.3", config_path="pkg://seqlab.conf", config_name="config")
def hydra_main(cfg: DictConfig) -> float:
    try:
        from seqlab.tracking.sweep import resume_sweep, say  # MLflow: heavy
        from seqlab.tuning.trial import job_tags

        finished = resume_sweep(cfg, train) if cfg.get("resume") else None  # resume=<a sweep's parent run>
        return finished if finished is not None else train(cfg, job_tags())
    except SeqlabError as err:
        if full_errors():
            raise ReportedError(paragraph(err)) from err
        if HydraConfig.get().mode is RunMode.MULTIRUN:
            # The job's run is FAILED; the sweep goes on to its next job, its parent run ends FAILED naming
            # this one, and the command exits USAGE_ERROR (main). Raised, Hydra would add its own lines.
            say(f"seqlab: {paragraph(err)}", sys.stderr)
            return float("nan")
        # A lone run ends here, with the paragraph alone: Hydra would print a summary of runs before it
        # and a hint about stack traces after it.
        exit_with(err)


# A tracking.uri given with credentials reaches the job through this variable: Hydra writes every
# override into job folder names, .hydra/*.yaml and the lines it prints.
TRACKING_URI_ENV = "SEQLAB_TRACKING_URI"


def hide_tracking_credentials(argv: list[str]) -> list[str]:
    """argv with a credentialed `tracking.uri=<uri>` replaced by an interpolation of TRACKING_URI_ENV,
    set to the URI: the job resolves the real store, and whatever Hydra prints or writes shows the
    interpolation."""
    from seqlab.tracking.params import redact

    hidden = []
    for arg in argv:
        key, equals, value = arg.partition("=")
        if equals and key.lstrip("+~") == "tracking.uri":
            uri = value[1:-1] if len(value) > 1 and value[0] == value[-1] and value[0] in "'\"" else value
            if redact(uri) != uri:
                os.environ[TRACKING_URI_ENV] = uri
                arg = f"{key}=${{oc.env:{TRACKING_URI_ENV}}}"
        hidden.append(arg)
    return hidden


def main() -> None:
    """Console script: check every job of the command line, then hand over to Hydra."""
    sys.argv[1:] = hide_tracking_credentials(sys.argv[1:])
    try:
        preflight(sys.argv[1:], data=True)
    except SeqlabError as err:
        if full_errors():
            raise
        exit_with(err)
    hydra_main()
    from seqlab.tracking.hydra_callbacks import ENDED_SWEEPS

    if "FAILED" in ENDED_SWEEPS:  # a job failed with a user's error: the status of every such error
        raise SystemExit(USAGE_ERROR)
    if "KILLED" in ENDED_SWEEPS:  # a job was stopped (preempted, cancelled): resumable, not a success
        raise SystemExit(1)


if __name__ == "__main__":
    main()
