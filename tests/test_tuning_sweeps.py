"""hydra/sweeper=tune end to end: the `seqlab` command in a subprocess on a tiny adding problem, a real
SQLite MLflow store and a real Optuna study beside it. Arms and evaluation runs, the parent's report,
pruning, a failing trial, continuing a stopped sweep, and two commands sharing one study."""

import csv
import io
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from conftest import seqlab_env
from mlflow import MlflowClient
from optuna.trial import TrialState

from seqlab import names
from seqlab.tuning.study import RETRY_OF

pytestmark = pytest.mark.integration

TINY = [
    "task=adding",
    "task.n_train=256",
    "task.n_val=64",
    "task.n_test=64",
    "tracking.system_metrics=false",
    "callbacks.gradient_flow=null",
]
LR = "optimizer.lr=tag(log, interval(1e-3, 1e-1))"
TIMEOUT_S = 240


def command(folder: Path, *args: str) -> list[str]:
    store = f"tracking.uri=sqlite:///{folder / 'mlflow.db'}"
    return [sys.executable, "-m", "seqlab.train", "-m", "hydra/sweeper=tune", *TINY, *args, store]


def tune(folder: Path, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run(
        command(folder, *args),
        cwd=folder,
        env=seqlab_env(folder),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def studies(folder: Path) -> dict[str, optuna.Study]:
    storage = f"sqlite:///{folder / 'mlflow-optuna.db'}"
    return {
        name.rpartition("[")[2].rstrip("]"): optuna.load_study(study_name=name, storage=storage)
        for name in optuna.study.get_all_study_names(storage)
    }


def runs(folder: Path) -> tuple[MlflowClient, list]:
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("seqlab")
    return client, client.search_runs([experiment.experiment_id], max_results=1000)


def parent_of(all_runs: list):
    parents = [r for r in all_runs if r.data.tags.get(names.SWEEP_KIND_TAG) == names.TUNE_KIND]
    assert len(parents) == 1
    return parents[0]


def role(all_runs: list, which: str) -> list:
    return [r for r in all_runs if r.data.tags.get(names.TUNE_ROLE_TAG) == which]


def artifacts(client: MlflowClient, run_id: str, path: str | None = None) -> set[str]:
    found = set()
    for item in client.list_artifacts(run_id, path):
        found |= artifacts(client, run_id, item.path) if item.is_dir else {item.path}
    return found


def test_each_arm_is_searched_alike_and_its_best_trained_on_fresh_seeds(tmp_path):
    tune(
        tmp_path,
        "cell=rnn,gru",
        LR,
        "model.hidden_size=range(8,33,8)",
        "trainer.max_epochs=2",
        "hydra.sweeper.n_trials=3",
        "hydra.sweeper.eval_seeds=[10,11]",
    )

    by_arm = studies(tmp_path)
    assert set(by_arm) == {"cell-rnn", "cell-gru"}
    assert all(len(s.get_trials(states=[TrialState.COMPLETE])) == 3 for s in by_arm.values())
    client, all_runs = runs(tmp_path)
    parent = parent_of(all_runs)
    assert parent.info.status == "FINISHED"
    for arm, study in by_arm.items():
        trials = [r for r in role(all_runs, names.TUNE_TRIAL) if r.data.tags[names.TUNE_ARM_TAG] == arm]
        assert sorted(r.data.tags[names.TUNE_TRIAL_TAG] for r in trials) == ["0", "1", "2"]
        assert {r.data.tags[names.TUNE_STATE_TAG] for r in trials} == {"COMPLETE"}
        assert {r.data.tags[names.PARENT_RUN_TAG] for r in trials} == {parent.info.run_id}
        best = json.loads(parent.data.tags[f"{names.TUNE_BEST_TAG_PREFIX}{arm}"])
        assert best["trial"] == study.best_trial.number and best["value"] == pytest.approx(study.best_value)
        assert parent.data.metrics[f"tune/{arm}/n_complete"] == 3
        evals = [r for r in role(all_runs, names.TUNE_EVAL) if r.data.tags[names.TUNE_ARM_TAG] == arm]
        assert sorted(r.data.params["seed"] for r in evals) == ["10", "11"]
        for run in evals:  # the best trial's configuration, on seeds the search never saw
            assert float(run.data.params["optimizer.lr"]) == pytest.approx(study.best_params["optimizer.lr"])
            assert run.data.params["model.hidden_size"] == str(study.best_params["model.hidden_size"])
            assert run.data.tags[names.TUNE_TRIAL_TAG] == str(study.best_trial.number)
    best_gru = str(by_arm["cell-gru"].best_trial.number)
    logged = artifacts(client, parent.info.run_id)
    for arm in by_arm:
        assert {
            f"tuning/{arm}/importances.csv",
            f"tuning/{arm}/importances.png",
            f"tuning/{arm}/history.png",
        } <= logged
    assert {
        "tuning/summary.csv",
        "comparison/comparison.md",
        "comparison/comparison.csv",
        "comparison/comparison.png",
    } <= logged
    summary = list(
        csv.DictReader(
            io.StringIO(Path(client.download_artifacts(parent.info.run_id, "tuning/summary.csv")).read_text())
        )
    )
    assert [row["arm"] for row in summary] == ["cell-rnn", "cell-gru"]
    assert {row["n_complete"] for row in summary} == {"3"} and "optimizer.lr" in summary[0]
    # job folders named by arm, trial and seed: Hydra's default (every override) outgrows a file name
    folders = {
        p.name.partition("-")[2] for p in (tmp_path / "outputs" / "multirun").glob("*/*") if p.is_dir()
    }
    assert {"cell-rnn-trial0", "cell-gru-trial2", "cell-gru-eval" + best_gru + "-s11"} <= folders
    importances = Path(
        client.download_artifacts(parent.info.run_id, "tuning/cell-rnn/importances.csv")
    ).read_text()
    assert importances.splitlines()[0] == "param,importance"
    assert {line.split(",")[0] for line in importances.splitlines()[1:]} == {
        "optimizer.lr",
        "model.hidden_size",
    }


def test_a_pruned_trial_ends_its_run_finished_tagged_with_the_epoch_and_pruned_in_the_study(tmp_path):
    tune(
        tmp_path,
        "optimizer.lr=tag(log, interval(1e-4, 1e-1))",
        "trainer.max_epochs=4",
        "hydra.sweeper.n_trials=5",
        "hydra.sweeper.eval_seeds=[]",
        "hydra.sweeper.pruner=median",
        "hydra.sweeper.pruner_startup_trials=1",
        "hydra.sweeper.sampler=random",
    )

    (study,) = studies(tmp_path).values()
    pruned = study.get_trials(states=[TrialState.PRUNED])
    assert pruned, "no trial was pruned"
    client, all_runs = runs(tmp_path)
    trial_runs = {r.data.tags[names.TUNE_TRIAL_TAG]: r for r in role(all_runs, names.TUNE_TRIAL)}
    for trial in pruned:
        run = trial_runs[str(trial.number)]
        assert run.info.status == "FINISHED" and run.data.tags[names.TUNE_STATE_TAG] == "PRUNED"
        epoch = int(run.data.tags[names.PRUNED_TAG])
        assert epoch == trial.last_step < 3
        # training stopped there: no epoch was validated after it
        assert len(client.get_metric_history(run.info.run_id, names.VAL_LOSS)) == epoch + 1
    assert parent_of(all_runs).data.metrics["tune/all/n_pruned"] == len(pruned)


def test_a_diverging_trial_is_failed_in_the_study_and_in_mlflow_and_the_search_goes_on(tmp_path):
    tune(
        tmp_path,
        "optimizer=sgd",
        "optimizer.lr=choice(0.01,1e30)",
        "trainer.max_epochs=1",
        "hydra.sweeper.sampler=grid",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.eval_seeds=[12]",
    )

    (study,) = studies(tmp_path).values()
    states = {t.params["optimizer.lr"]: t.state for t in study.trials}
    assert states == {0.01: TrialState.COMPLETE, 1e30: TrialState.FAIL}
    _, all_runs = runs(tmp_path)
    by_lr = {float(r.data.params["optimizer.lr"]): r for r in role(all_runs, names.TUNE_TRIAL)}
    assert by_lr[1e30].info.status == "FAILED" and by_lr[1e30].data.tags[names.TUNE_STATE_TAG] == "FAIL"
    (evaluation,) = role(all_runs, names.TUNE_EVAL)  # the search went on to evaluate the one that trained
    assert float(evaluation.data.params["optimizer.lr"]) == 0.01 and evaluation.info.status == "FINISHED"


def _study_file(folder: Path) -> str:
    return f"sqlite:///{folder / 'mlflow-optuna.db'}"


def test_the_same_command_after_a_stop_continues_without_redoing_finished_trials(tmp_path):
    args = [
        LR,
        "trainer.max_epochs=40",
        "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=1",
        "hydra.sweeper.n_trials=3",
        "hydra.sweeper.eval_seeds=[]",
    ]
    proc = subprocess.Popen(
        command(tmp_path, *args),
        cwd=tmp_path,
        env=seqlab_env(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while True:  # one trial finished and the next one training
            assert time.monotonic() < deadline and proc.poll() is None
            try:
                (study,) = studies(tmp_path).values()
                states = [t.state for t in study.trials]
                if TrialState.COMPLETE in states and TrialState.RUNNING in states:
                    break
            except (ValueError, KeyError, Exception):
                pass
            time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) != 0
    finally:
        if proc.poll() is None:
            proc.kill()
    (study,) = studies(tmp_path).values()
    stopped = [t for t in study.trials if t.state == TrialState.FAIL]
    assert len(stopped) == 1 and not study.get_trials(states=[TrialState.RUNNING])
    waiting = study.get_trials(states=[TrialState.WAITING])
    assert [t.user_attrs[RETRY_OF] for t in waiting] == [stopped[0].number]
    finished_before = {t.number for t in study.get_trials(states=[TrialState.COMPLETE])}

    tune(tmp_path, *args)

    (study,) = studies(tmp_path).values()
    complete = study.get_trials(states=[TrialState.COMPLETE])
    assert len(complete) == 3  # the budget, with the stopped trial's point trained again
    assert stopped[0].params in [t.params for t in complete]
    _, all_runs = runs(tmp_path)
    trial_runs = [r.data.tags[names.TUNE_TRIAL_TAG] for r in role(all_runs, names.TUNE_TRIAL)]
    for number in finished_before:  # not trained again
        assert trial_runs.count(str(number)) == 1
    parent = parent_of(all_runs)  # one parent for the whole sweep, across both commands
    assert parent.info.status == "FINISHED"


def test_two_commands_on_one_study_share_it_without_duplicate_trials(tmp_path):
    # the second machine joins a study and a store that exist (as they do once a sweep has started)
    MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").create_experiment("seqlab")
    optuna.storages.RDBStorage(_study_file(tmp_path))
    args = [LR, "trainer.max_epochs=1", "hydra.sweeper.n_trials=6", "hydra.sweeper.eval_seeds=[]"]
    procs = [
        subprocess.Popen(
            command(tmp_path, *args),
            cwd=tmp_path,
            env=seqlab_env(tmp_path),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        outputs = [p.communicate(timeout=TIMEOUT_S)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert [p.returncode for p in procs] == [0, 0], "\n".join(o[-2000:] for o in outputs)
    assert all("seqlab: tune all trial " in o for o in outputs), (
        "one command ran no trial: nothing was shared"
    )
    (study,) = studies(tmp_path).values()
    numbers = [t.number for t in study.trials]
    assert sorted(numbers) == list(range(len(numbers)))
    assert len(study.get_trials(states=[TrialState.COMPLETE])) == 6
    _, all_runs = runs(tmp_path)
    trained = [r.data.tags[names.TUNE_TRIAL_TAG] for r in role(all_runs, names.TUNE_TRIAL)]
    assert sorted(trained, key=int) == [str(n) for n in range(6)]  # each trial trained once, by one command
