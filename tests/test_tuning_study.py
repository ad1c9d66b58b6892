"""An arm's budget in a real Optuna study on a SQLite file: what counts, a lost trial queued again, and a
place taken by another command first."""

import time

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from seqlab.tuning.options import tune_options
from seqlab.tuning.space import Arm
from seqlab.tuning.study import RETRY_OF, ArmStudy, open_arm_studies, retry

SPACE = {"optimizer.lr": FloatDistribution(1e-3, 1e-1, log=True)}


def _arm_study(storage, name: str = "s") -> ArmStudy:
    study = optuna.create_study(storage=storage, study_name=name, load_if_exists=True)
    return ArmStudy(Arm("all", ()), study)


def test_a_place_another_command_took_first_is_given_up_and_does_not_count(tmp_path):
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'optuna.db'}")
    first, second = _arm_study(storage), _arm_study(storage)  # two commands, one study
    assert first.remaining(2) == 2 and second.remaining(2) == 2  # both see room for two trials
    taken = [first.ask(2, SPACE), second.ask(2, SPACE), first.ask(2, SPACE)]
    assert [t is not None for t in taken] == [True, True, False]
    assert len(first.counted()) == 2 and first.remaining(2) == 0
    assert [t.number for t in first.counted()] == [0, 1]


def test_a_trial_lost_with_its_process_is_failed_queued_again_and_counted_once(tmp_path):
    storage = optuna.storages.RDBStorage(
        f"sqlite:///{tmp_path / 'optuna.db'}",
        heartbeat_interval=1,
        grace_period=1,
        heartbeat_stale_trial_callback=retry,
    )
    arm = _arm_study(storage)
    lost = arm.ask(3, SPACE)
    time.sleep(2.5)  # no heartbeat since: its process is gone
    optuna.storages.fail_stale_trials(arm.study)
    states = {t.number: t.state for t in arm.study.trials}
    assert states == {0: TrialState.FAIL, 1: TrialState.WAITING}
    again = arm.study.trials[1]
    assert again.user_attrs[RETRY_OF] == 0
    assert [t.number for t in arm.counted()] == [1]  # the lost attempt spends no budget
    rerun = arm.ask(3, SPACE)
    assert rerun.number == 1 and rerun.params == lost.params


def test_a_stopped_trial_is_failed_and_its_point_queued_again(tmp_path):
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'optuna.db'}")
    arm = _arm_study(storage)
    trial = arm.ask(3, SPACE)
    arm.stop(trial)
    assert [t.state for t in arm.study.trials] == [TrialState.FAIL, TrialState.WAITING]
    assert arm.remaining(3) == 2


def test_the_same_command_proposes_the_same_points_and_a_continued_study_new_ones(tmp_path):
    options = tune_options({"sampler": "tpe", "sampler_seed": 3})

    def first_points(folder: str) -> list[float]:
        storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / folder}.db")
        (arm,) = open_arm_studies(options, "s", (Arm("all", ()),), (), storage)
        return [arm.ask(10, SPACE).params["optimizer.lr"] for _ in range(3)]

    assert first_points("a") == first_points("b")
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'a'}.db")
    (continued,) = open_arm_studies(options, "s", (Arm("all", ()),), (), storage)
    assert continued.ask(10, SPACE).params["optimizer.lr"] not in first_points("c")
