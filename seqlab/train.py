"""The `seqlab` command: compose -> validate -> instantiate -> fit -> test, the run tracked in MLflow."""

import logging
import os
import sys

import hydra
import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig

from seqlab import names
from seqlab.config import register_configs, validate
from seqlab.errors import SeqlabError
from seqlab.models.module import SequenceModule
from seqlab.models.network import count_parameters
from seqlab.preflight import preflight
from seqlab.tasks.base import Task
from seqlab.tracking.run import tracked_run

log = logging.getLogger(__name__)
register_configs()


def run_name(cfg: DictConfig, task: Task) -> str:
    return f"{cfg.cell.name}-{task.name}-s{cfg.seed}"


def train(cfg: DictConfig) -> float:
    """Train and test one configuration; returns the best val/loss (the value a sweeper minimizes)."""
    validate(cfg)
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
    extra_params = {names.N_PARAMS: count_parameters(net)} | task.split_sizes()
    log.info("%s: %s parameters, splits %s", run_name(cfg, task), extra_params[names.N_PARAMS], task.split_sizes())

    with tracked_run(cfg, run_name(cfg, task), extra_params) as run:
        trainer: L.Trainer = instantiate(cfg.trainer, logger=run.logger, callbacks=callbacks)
        trainer.fit(module, datamodule=task)
        has_best = trainer.checkpoint_callback is not None and trainer.checkpoint_callback.best_model_path
        trainer.test(module, datamodule=task, ckpt_path="best" if has_best else None, verbose=False)
        best = trainer.checkpoint_callback.best_model_score if has_best else None
        return float(best) if best is not None else float(trainer.callback_metrics[names.VAL_LOSS])


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
