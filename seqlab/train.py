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


def build(cfg: DictConfig):
    """Instantiate the task (its data built and checked) and the LightningModule for a valid config.

    Shared by `train` and the benchmarks, so that both train exactly the same thing.
    """
    import lightning as L
    import torch

    from seqlab.models.module import SequenceModule
    from seqlab.tasks.base import Task

    if cfg.torch_threads:
        torch.set_num_threads(cfg.torch_threads)
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
    return task, module


def train(cfg: DictConfig) -> float:
    """Train and test one configuration; returns the best val/loss (the value a sweeper minimizes)."""
    import lightning as L

    from seqlab import names
    from seqlab.models.network import count_parameters
    from seqlab.tracking.run import tracked_run

    validate(cfg)
    _quiet_lightning()
    task, module = build(cfg)
    callbacks = [instantiate(c) for c in (cfg.callbacks or {}).values()]
    name = f"{cfg.cell.name}-{task.name}-s{cfg.seed}"
    extra_params = {names.N_PARAMS: count_parameters(module.net)} | task.split_sizes()
    log.info("%s: %d parameters, splits %s", name, extra_params[names.N_PARAMS], task.split_sizes())

    with tracked_run(cfg, name, extra_params) as run:
        trainer: L.Trainer = instantiate(cfg.trainer, logger=run.logger, callbacks=callbacks)
        trainer.fit(module, datamodule=task)
        checkpoint = trainer.checkpoint_callback
        has_best = checkpoint is not None and bool(checkpoint.best_model_path)
        trainer.test(module, datamodule=task, ckpt_path="best" if has_best else None, verbose=False)
        best = checkpoint.best_model_score if has_best else trainer.callback_metrics.get(names.VAL_LOSS)
        return float(best) if best is not None else float("nan")


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
