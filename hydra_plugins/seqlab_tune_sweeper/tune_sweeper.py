"""`hydra/sweeper=tune`: Hydra's side of seqlab's tuner, which lives in seqlab.tuning.

Hydra imports every module under hydra_plugins whenever seqlab starts, so this one imports nothing heavy
at module level: Optuna and MLflow are imported when a tuning sweep runs.
"""

from typing import Any

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class TuneSweeper(Sweeper):
    """Arms from plain comma lists, an Optuna search over the sweep functions in each, trials through the
    configured launcher; the options are conf/hydra/sweeper/tune.yaml's."""

    def __init__(self, **options: Any) -> None:
        self.options = options  # checked by seqlab.tuning.options.tune_options, with the search space
        self.config: DictConfig | None = None
        self.launcher: Any = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from hydra.core.plugins import Plugins

        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> Any:
        from seqlab.tuning.search import run_tuning

        assert self.config is not None
        return run_tuning(self.config, self.launcher)
