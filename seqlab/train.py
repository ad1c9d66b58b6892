"""The `seqlab` command: compose -> validate -> instantiate -> fit -> test, the run tracked in MLflow.

Only Hydra and the config schema are imported at module level, so `seqlab --help` and
`seqlab --cfg job` answer without loading torch, Lightning or MLflow.
"""

import logging
import os
import sys
import warnings

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig

from seqlab.config import register_configs, validate
from seqlab.errors import SeqlabError
from seqlab.preflight import preflight

log = logging.getLogger(__name__)
register_configs()


def _quiet_lightning() -> None:
    """Keep Lightning's banners and advice out of sweep logs; its warnings about our choices stay."""
    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=r".*LeafSpec.*is deprecated")
    warnings.filterwarnings("ignore", message=r".*smaller than the logging interval.*")
    warnings.filterwarnings("ignore", message=r".*does not have many workers.*")


def train(cfg: DictConfig) -> float:
    """Train and test one configuration; returns the best val/loss (the value a sweeper minimizes)."""
    import lightning as L
    import torch

    from seqlab import names
    from seqlab.models.module import SequenceModule
    from seqlab.models.network import count_parameters
    from seqlab.tasks.base import Task
    from seqlab.tracking.run import tracked_run

    validate(cfg)
    _quiet_lightning()
    _set_torch_threads(cfg)
    L.seed_everything(cfg.seed, workers=True, verbose=False)

    task: Task = instantiate(cfg.task)
    task.prepare()  # data is built and checked before any MLflow run exists
    loss = instantiate(cfg.loss)
    net = instantiate(
        cfg.model,
        spec=task.spec(),
        cell=cfg.cell.name,
        nonlinearity=cfg.cell.nonlinearity,
        norm=cfg.norm.name,
        num_groups=cfg.norm.num_groups,
        output=loss.output,
    )
    module = SequenceModule(
        net,
        loss,
        optimizer=instantiate(cfg.optimizer),
        scheduler=instantiate(cfg.scheduler) if cfg.scheduler else None,
        metrics=task.metrics(),
    )
    callbacks = [instantiate(c) for c in (cfg.callbacks or {}).values()]
    name = f"{cfg.cell.name}-{task.name}-s{cfg.seed}"
    extra_params = {names.N_PARAMS: count_parameters(net)} | task.split_sizes()
    extra_params[names.TORCH_THREADS] = torch.get_num_threads()
    log.info("%s: %d parameters, splits %s", name, extra_params[names.N_PARAMS], task.split_sizes())

    # --- tracking: system figures, artifacts, served model (seqlab.tracking.artifacts) ---
    from seqlab.tracking.artifacts import SystemFigures, add_run_artifacts

    figures = SystemFigures()
    with tracked_run(cfg, name, extra_params) as run:
        trainer: L.Trainer = instantiate(cfg.trainer, logger=run.logger, callbacks=[*callbacks, figures])
        trainer.fit(module, datamodule=task)
        checkpoint = trainer.checkpoint_callback
        has_best = checkpoint is not None and bool(checkpoint.best_model_path)
        # weights_only: a checkpoint is a state_dict of tensors and plain values, never pickled code
        trainer.test(module, datamodule=task, ckpt_path="best" if has_best else None, verbose=False, weights_only=True)
        run.log_metrics(figures.figures)
        add_run_artifacts(run, trainer, module, task, cfg, name)
        best = checkpoint.best_model_score if has_best else trainer.callback_metrics.get(names.VAL_LOSS)
        return float(best) if best is not None else float("nan")


def _set_torch_threads(cfg: DictConfig) -> None:
    """torch_threads, else the share of cores a parallel sweep gave this job (two jobs must not fight over them)."""
    import torch

    from seqlab.tracking.sweep import TORCH_THREADS_ENV

    threads = cfg.get("torch_threads") or os.environ.get(TORCH_THREADS_ENV)
    if threads:
        torch.set_num_threads(int(threads))


@hydra.main(version_base="1.3", config_path="pkg://seqlab.conf", config_name="config")
def hydra_main(cfg: DictConfig) -> float:
    return train(cfg)


def main() -> None:
    """Console script: check every job of the command line, then hand over to Hydra."""
    try:
        preflight(sys.argv[1:])
    except SeqlabError as err:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(f"seqlab: {err}", file=sys.stderr)
        sys.exit(2)
    hydra_main()


if __name__ == "__main__":
    main()
