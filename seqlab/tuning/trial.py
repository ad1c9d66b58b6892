"""Inside a job of a tuning sweep: which trial it is, its tags, and the callback that reports its metric to
the trial in the study database each epoch and stops it when the pruner says so.

The sweeper hands each job its place through `hydra.job.env_set` (Hydra sets those variables in the job's
own process, whichever launcher started it); the study's storage and the pruner come from the job's own
`hydra.sweeper` config, read the way the sweeper read it.
"""

import contextlib
import logging
import math
import os
from dataclasses import dataclass
from typing import Any

import lightning as L

from seqlab import names
from seqlab.errors import ConfigError
from seqlab.tuning.study import BEST_PREFIX

log = logging.getLogger(__name__)

ROLE_ENV = "SEQLAB_TUNE_ROLE"  # names.TUNE_TRIAL or names.TUNE_EVAL
ARM_ENV = "SEQLAB_TUNE_ARM"
STUDY_ENV = "SEQLAB_TUNE_STUDY_ID"  # the arm's study, by its id in the storage
TRIAL_ENV = "SEQLAB_TUNE_TRIAL"  # the trial's number in the study (an eval run: the best trial's)
SEED_INDEX_ENV = "SEQLAB_TUNE_SEED_INDEX"  # which of the trial's search seeds this job trains on
ENVIRONMENT = (ROLE_ENV, ARM_ENV, STUDY_ENV, TRIAL_ENV, SEED_INDEX_ENV)


def job_environment(
    role: str, arm: str, trial: int, study_id: int | None = None, seed_index: int = 0
) -> list[str]:
    """The overrides that tell a job its place in the tuning sweep (values of plain characters only)."""
    values = {ROLE_ENV: role, ARM_ENV: arm, TRIAL_ENV: trial, SEED_INDEX_ENV: seed_index}
    if study_id is not None:
        values[STUDY_ENV] = study_id
    return [f"+hydra.job.env_set.{key}={value}" for key, value in values.items()]


def job_folder(role: str, arm: str, trial: int, seed: int | None) -> str:
    """The job's folder in the sweep's: `<job num>-<arm>-trial<N>[-s<seed>]` (eval: `-eval<N>-s<seed>`).
    Hydra's default names it after every override, which a trial's drawn values make too long a name."""
    seed_part = "" if seed is None else f"-s{seed}"
    return f"hydra.sweep.subdir=${{hydra.job.num}}-{arm}-{role}{trial}{seed_part}"


def job_tags() -> dict[str, str]:
    """The tags of this job's run: its role in the tuning sweep, its arm and trial; none outside one."""
    role = os.environ.get(ROLE_ENV)
    if not role:
        return {}
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    # The job's overrides as typed: read through the config they would be resolved, and a tracking.uri
    # hidden behind ${oc.env:...} (seqlab.train.hide_tracking_credentials) would show its password.
    typed = OmegaConf.to_container(HydraConfig.get().overrides.task, resolve=False)
    assert isinstance(typed, list)
    return {
        names.TUNE_ROLE_TAG: role,
        names.TUNE_ARM_TAG: os.environ.get(ARM_ENV, ""),
        names.TUNE_TRIAL_TAG: os.environ.get(TRIAL_ENV, ""),
        names.JOB_OVERRIDES_TAG: " ".join(str(o) for o in typed),
    }


@dataclass(frozen=True)
class TrialPlace:
    study_id: int
    number: int
    seed_index: int


def trial_place() -> TrialPlace | None:
    if os.environ.get(ROLE_ENV) != names.TUNE_TRIAL or not os.environ.get(STUDY_ENV):
        return None
    return TrialPlace(
        int(os.environ[STUDY_ENV]), int(os.environ[TRIAL_ENV]), int(os.environ.get(SEED_INDEX_ENV, 0))
    )


def trial_callbacks(tracking_uri: str) -> list[L.Callback]:
    """[the reporting callback] in a trial's job, [] in any other run."""
    place = trial_place()
    if place is None:
        return []
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    from seqlab.tuning.options import tune_options
    from seqlab.tuning.study import open_storage, storage_url

    raw = OmegaConf.to_container(HydraConfig.get().sweeper, resolve=True)
    assert isinstance(raw, dict)
    options = tune_options({str(k): v for k, v in raw.items()})
    storage = open_storage(storage_url(options.storage, tracking_uri))
    return [ReportToTrial(storage, place, options)]


class ReportToTrial(L.Callback):
    """Each validation epoch: the metric to the trial (the first search seed's job reports it, the others
    follow its fate), this job's best value so far as a user attr of the trial (the sweeper averages them),
    and a stop when the pruner prunes the trial: the job's run then ends FINISHED with the tag
    names.PRUNED_TAG (the epoch), and the trial is PRUNED in the study."""

    def __init__(self, storage: Any, place: TrialPlace, options: Any) -> None:
        import optuna

        from seqlab.tuning.options import pruner

        self.storage, self.place, self.metric = storage, place, options.metric
        self.maximize = options.direction == "maximize"
        name = storage.get_study_name_from_id(place.study_id)
        self.study = optuna.load_study(study_name=name, storage=storage, pruner=pruner(options))
        self.trial_id = storage.get_trial_id_from_study_id_trial_number(place.study_id, place.number)
        self.best: float | None = None
        self.pruned_at: int | None = None

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        from optuna.exceptions import UpdateFinishedTrialError
        from optuna.trial import Trial, TrialState

        if trainer.sanity_checking or self.pruned_at is not None:
            return
        logged = trainer.callback_metrics.get(self.metric)
        if logged is None:
            available = sorted(k for k in trainer.callback_metrics if k.startswith(f"{names.VAL}/"))
            raise ConfigError(
                f"hydra.sweeper.metric={self.metric} is not logged by this run; its validation metrics: "
                f"{', '.join(available)}."
            )
        value = float(logged)
        epoch = trainer.current_epoch
        if math.isfinite(value) and (
            self.best is None or (value > self.best if self.maximize else value < self.best)
        ):
            self.best = value
            with contextlib.suppress(UpdateFinishedTrialError):  # pruned meanwhile by the first seed's job
                self.storage.set_trial_user_attr(
                    self.trial_id, f"{BEST_PREFIX}{self.place.seed_index}", value
                )
        trial = Trial(self.study, self.trial_id)
        if self.place.seed_index == 0:
            if math.isfinite(value):
                trial.report(value, epoch)
            pruned = trial.should_prune()
            if pruned:
                self.study.tell(self.place.number, state=TrialState.PRUNED, skip_if_finished=True)
        else:
            pruned = self.storage.get_trial(self.trial_id).state == TrialState.PRUNED
        if pruned:
            self.pruned_at = epoch
            trainer.should_stop = True
            with contextlib.suppress(Exception):  # the run's other records matter more than this tag
                logger = trainer.logger
                logger.client.set_tag(logger.run_id, names.PRUNED_TAG, str(epoch))  # type: ignore[union-attr]
            log.info("trial %d pruned after epoch %d (%s=%.4g)", self.place.number, epoch, self.metric, value)
