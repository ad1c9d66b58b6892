"""The tuning loop: trials of every arm through the chosen launcher, n_jobs at a time, until each arm's
study holds n_trials; then each arm's best configuration trained on every eval seed; then the report.
"""

import logging
import math
import threading
import time
from collections.abc import Sequence
from typing import Any

from omegaconf import DictConfig

from seqlab import names
from seqlab.tracking.sweep import say
from seqlab.tuning.plan import Tuning
from seqlab.tuning.space import point_overrides
from seqlab.tuning.study import BEST_PREFIX, HEARTBEAT_S, PARENT_RUN_ATTR, ArmStudy, open_arm_studies
from seqlab.tuning.trial import job_environment, job_folder

log = logging.getLogger(__name__)
WAIT_FOR_OTHERS_S = 2.0  # polling another command's running trials of the same study


class Heartbeat:
    """Records the heartbeat of the trials this process runs, so another command does not take them for
    lost (study.GRACE_S)."""

    def __init__(self, storage: Any) -> None:
        self.storage = storage
        self.trial_ids: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="seqlab-heartbeat", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            for trial_id in list(self.trial_ids):
                try:
                    self.storage.record_heartbeat(trial_id)
                except Exception as exc:  # a busy database: the next beat comes soon enough
                    log.debug("heartbeat of trial %d: %s", trial_id, exc)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=HEARTBEAT_S)


class Tuner:
    def __init__(
        self, tuning: Tuning, config: DictConfig, launcher: Any, storage: Any, parent_run_id: str
    ) -> None:
        self.tuning, self.config, self.launcher, self.storage = tuning, config, launcher, storage
        self.options = tuning.options
        self.parent_run_id = parent_run_id
        self.arms = open_arm_studies(self.options, tuning.name, tuning.plan.arms, tuning.plan.space, storage)
        for arm in self.arms:
            if PARENT_RUN_ATTR not in arm.study.user_attrs:
                arm.study.set_user_attr(PARENT_RUN_ATTR, parent_run_id)
        self.budget = self.options.n_trials
        if self.options.sampler == "grid":
            from seqlab.tuning.space import grid_of

            self.budget = min(self.budget, math.prod(len(v) for v in grid_of(tuning.plan.space).values()))
        self.next_job = 0
        self.distributions = {d.key: d.distribution for d in tuning.plan.space}

    def launch(self, jobs: list[list[str]]) -> Sequence[Any]:
        returns = self.launcher.launch(jobs, initial_job_idx=self.next_job)
        self.next_job += len(jobs)
        return returns

    # --- the search ------------------------------------------------------------------------------

    def search(self) -> None:
        heartbeat = Heartbeat(self.storage)
        in_flight: list[tuple[ArmStudy, Any]] = []
        try:
            while True:
                in_flight = self._ask_batch()
                if not in_flight:
                    if not any(arm.running() for arm in self.arms):
                        break
                    time.sleep(
                        WAIT_FOR_OTHERS_S
                    )  # another command runs the last trials; a lost one is retried
                    for arm in self.arms:
                        _fail_stale(arm)
                    continue
                heartbeat.trial_ids = [trial._trial_id for _, trial in in_flight]
                self._run_batch(in_flight)
                in_flight = []
                signum = self._stop_signal()
                if signum is not None:  # a job took the stop as its own: the sweep ends here
                    raise SystemExit(128 + signum)
        finally:
            heartbeat.close()
            for arm, trial in in_flight:  # stopped mid-batch: these run again when the command does
                arm.stop(trial)

    def _ask_batch(self) -> list[tuple[ArmStudy, Any]]:
        batch = []
        for _ in range(self.options.n_jobs):
            open_arms = [arm for arm in self.arms if arm.remaining(self.budget) > 0]
            if not open_arms:
                break
            arm = min(open_arms, key=lambda a: len(a.counted()))
            trial = arm.ask(self.budget, self.distributions)
            if trial is not None:
                batch.append((arm, trial))
        return batch

    def _run_batch(self, batch: list[tuple[ArmStudy, Any]]) -> None:
        plan = self.tuning.plan
        seeds: list[int | None] = list(self.options.search_seeds or [None])
        jobs = []
        for arm, trial in batch:
            for index, seed in enumerate(seeds):
                jobs.append(
                    [
                        *plan.fixed,
                        *arm.arm.overrides,
                        *point_overrides(trial.params),
                        *([f"seed={seed}"] if seed is not None else []),
                        *job_environment(
                            names.TUNE_TRIAL, arm.name, trial.number, arm.study._study_id, index
                        ),
                        job_folder(names.TUNE_TRIAL, arm.name, trial.number, seed),
                    ]
                )
        returns = self.launch(jobs)
        stopping = self._stop_signal()
        for n, (arm, trial) in enumerate(batch):
            mine = returns[n * len(seeds) : (n + 1) * len(seeds)]
            runs = self._runs(names.TUNE_TRIAL, arm.name, trial.number)
            if stopping or any(r.info.status == "KILLED" for r in runs):
                # stopped, not failed: a stopped sweep or a preempted job trains this point again
                arm.stop(trial)
                self._tag_trial_runs(arm, trial.number, "FAIL")
                say(f"seqlab: tune {arm.name} trial {trial.number} was stopped; its point is queued again")
                continue
            values = None
            if all(_value(r) is not None for r in mine):
                attrs = self.storage.get_trial(trial._trial_id).user_attrs
                found = [attrs.get(f"{BEST_PREFIX}{i}") for i in range(len(seeds))]
                values = [float(v) for v in found if v is not None] if None not in found else None
            state = arm.tell(trial, values)
            self._tag_trial_runs(arm, trial.number, state)
            shown = " ".join(point_overrides(trial.params))
            value = self.storage.get_trial(trial._trial_id).value
            say(
                f"seqlab: tune {arm.name} trial {trial.number}: {state}"
                + (f" {self.options.metric}={value:.4g}" if value is not None else "")
                + f" ({shown}); {sum(t.state.is_finished() for t in arm.counted())}/{self.budget} trials done"
            )

    def _stop_signal(self) -> int | None:
        """The signal that stopped the sweep (SweepParentRun's stop file in the sweep folder), if any."""
        from seqlab.tracking.sweep import stop_file

        stop = stop_file(str(self.config.hydra.sweep.dir))
        if not stop.is_file():
            return None
        try:
            return int(stop.read_text())
        except ValueError:
            return 15

    def _tag_trial_runs(self, arm: ArmStudy, number: int, state: str) -> None:
        client = _client(self.config)
        for run in self._runs(names.TUNE_TRIAL, arm.name, number):
            client.set_tag(run.info.run_id, names.TUNE_STATE_TAG, state)
            client.set_tag(run.info.run_id, names.TUNE_STUDY_TAG, arm.study.study_name)

    def _runs(self, role: str, arm: str, number: int | None = None) -> list[Any]:
        from seqlab.tracking.store import open_experiment, tracking_uri

        client, experiment_id = open_experiment(
            tracking_uri(self.config.tracking.uri), self.config.tracking.experiment
        )
        query = (
            f"tags.`{names.PARENT_RUN_TAG}` = '{self.parent_run_id}' "
            f"and tags.`{names.TUNE_ROLE_TAG}` = '{role}' and tags.`{names.TUNE_ARM_TAG}` = '{arm}'"
        )
        if number is not None:
            query += f" and tags.`{names.TUNE_TRIAL_TAG}` = '{number}'"
        return client.search_runs([experiment_id], filter_string=query, max_results=50000)

    # --- the evaluation --------------------------------------------------------------------------

    def evaluate(self) -> None:
        """Each arm's best trial trained on every eval seed; a seed with a FINISHED run of that trial under
        this parent already (a continued command) is not trained again."""
        jobs = []
        for arm in self.arms:
            best = _best(arm)
            if best is None:
                say(f"seqlab: tune {arm.name}: no trial completed, so there is no configuration to evaluate")
                continue
            done = {
                r.data.params.get("seed")
                for r in self._runs(names.TUNE_EVAL, arm.name, best.number)
                if r.info.status == "FINISHED"
            }
            for seed in self.options.eval_seeds:
                if str(seed) in done:
                    continue
                jobs.append(
                    [
                        *self.tuning.plan.fixed,
                        *arm.arm.overrides,
                        *point_overrides(best.params),
                        f"seed={seed}",
                        *job_environment(names.TUNE_EVAL, arm.name, best.number),
                        job_folder(names.TUNE_EVAL, arm.name, best.number, seed),
                    ]
                )
        at_once = self.options.n_jobs
        for start in range(0, len(jobs), at_once):
            self.launch(jobs[start : start + at_once])

    def eval_runs(self) -> list[Any]:
        """The FINISHED evaluation runs of each arm's best trial, one per eval seed."""
        runs = []
        for arm in self.arms:
            best = _best(arm)
            if best is None:
                continue
            by_seed = {}
            for run in self._runs(names.TUNE_EVAL, arm.name, best.number):
                if (
                    run.info.status == "FINISHED"
                    and int(run.data.params.get("seed", -1)) in self.options.eval_seeds
                ):
                    by_seed[run.data.params["seed"]] = run
            runs += list(by_seed.values())
        return runs


def _value(job_return: Any) -> float | None:
    """A job's returned value, None for a job that failed or diverged (returned NaN)."""
    from hydra.core.utils import JobStatus

    if job_return.status != JobStatus.COMPLETED:
        return None
    value = job_return.return_value
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def _best(arm: ArmStudy) -> Any | None:
    try:
        return arm.study.best_trial
    except ValueError:  # no COMPLETE trial
        return None


def _fail_stale(arm: ArmStudy) -> None:
    import optuna

    optuna.storages.fail_stale_trials(arm.study)


def _client(config: DictConfig) -> Any:
    from seqlab.tracking.store import open_experiment, tracking_uri

    return open_experiment(tracking_uri(config.tracking.uri), config.tracking.experiment)[0]


def run_tuning(config: DictConfig, launcher: Any) -> list[Any]:
    """The whole tuning sweep, under the parent run TuneParentRun started; returns the evaluation runs.
    A bad option or search space (met here only when preflight did not run) is one paragraph and exit
    status USAGE_ERROR."""
    import os
    import sys

    from seqlab.errors import USAGE_ERROR, SeqlabError
    from seqlab.tracking.hydra_callbacks import ENDED_SWEEPS
    from seqlab.tracking.store import tracking_uri
    from seqlab.tracking.sweep import PARENT_RUN_ENV
    from seqlab.tuning.parent_run import REPORTED
    from seqlab.tuning.plan import tuning_of_config
    from seqlab.tuning.report import log_report
    from seqlab.tuning.study import open_storage, storage_url

    parent_run_id = os.environ.get(PARENT_RUN_ENV)
    try:
        tuning = tuning_of_config(config)
        if not parent_run_id:
            raise SeqlabError(
                "hydra/sweeper=tune runs under seqlab's tuning parent run, which did not start: "
                "hydra.callbacks.sweep_parent_run must name hydra.sweeper.parent_run, as seqlab's "
                "conf/config.yaml does."
            )
        storage = open_storage(storage_url(tuning.options.storage, tracking_uri(config.tracking.uri)))
        tuner = Tuner(tuning, config, launcher, storage, parent_run_id)
    except SeqlabError as err:
        say(f"seqlab: {err}", sys.stderr)
        ENDED_SWEEPS.append("FAILED")
        raise SystemExit(USAGE_ERROR) from None
    say(
        f"seqlab: tuning {len(tuner.arms)} arm(s) ({', '.join(a.name for a in tuner.arms)}), "
        f"{tuner.budget} trials each, {tuning.options.sampler} sampler, pruner {tuning.options.pruner}; "
        f"studies '{tuning.name} [<arm>]' in {storage_redacted(storage)}; parent run {parent_run_id}"
    )
    tuner.search()
    tuner.evaluate()
    runs = tuner.eval_runs()
    keys = [d.key for d in tuning.plan.space]
    log_report(_client(config), parent_run_id, tuner.arms, keys, tuning.options.metric, runs)
    REPORTED.add(parent_run_id)
    return runs


def storage_redacted(storage: Any) -> str:
    from seqlab.tracking.params import redact

    return redact(str(storage.url))
