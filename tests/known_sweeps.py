"""Sweeps with known numbers, written straight into a real MLflow store, for seqlab-compare's tests: each
job with the metrics, per-epoch curves and gradient flow CSV a real run logs."""

import tempfile
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import Metric, Param

from seqlab import names

TASK = "seqlab.tasks.synthetic.AddingTask"


def job(
    client: MlflowClient,
    experiment_id: str,
    parent: str,
    params: dict[str, str],
    test_mse: float,
    *,
    fit_s: float = 12.0,
    val_curve: tuple[float, ...] = (),
    horizon: float | None = None,
    w: float | None = None,
    baseline: float | None = None,
    tags: dict[str, str] | None = None,
) -> str:
    """One finished job: test/mse (= test/loss), time/fit_s, the validation curve and train/loss per
    epoch, the gradient horizon, a gradient flow CSV falling as w^k, and the trivial mean baseline."""
    run_id = client.create_run(experiment_id, tags={names.PARENT_RUN_TAG: parent, **(tags or {})}).info.run_id
    metrics = [
        Metric(names.TEST_LOSS, test_mse, 0, 0),
        Metric("test/mse", test_mse, 0, 0),
        Metric(names.TIME_FIT, fit_s, 0, 0),
    ]
    for epoch, value in enumerate(val_curve):  # steps as Lightning logs them: batches so far
        metrics += [
            Metric("val/mse", value, 0, 10 * (epoch + 1)),
            Metric(names.VAL_LOSS, value, 0, 10 * (epoch + 1)),
            Metric(names.TRAIN_LOSS, value * 1.1, 0, 10 * (epoch + 1)),
        ]
    if horizon is not None:
        metrics.append(Metric(names.GRADIENT_HORIZON, horizon, 0, 0))
    if baseline is not None:
        metrics.append(Metric(names.baseline_key(names.TEST, "mean_mse"), baseline, 0, 0))
    all_params = {"task._target_": TASK, names.N_PARAMS: "1000", **params}
    client.log_batch(run_id, metrics=metrics, params=[Param(k, v) for k, v in all_params.items()])
    if w is not None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / names.GRADIENT_FLOW_CSV
            rows = [f"{k},{w**k:.6g},{w**k:.6g},8" for k in range(20)]
            path.write_text("steps_back,gradient_norm,relative,sequences\n" + "\n".join(rows) + "\n")
            client.log_artifact(run_id, str(path), names.PLOT_ARTIFACTS)
    client.set_terminated(run_id, "FINISHED")
    return run_id


def parent_run(client: MlflowClient, experiment: str, tags: dict[str, str] | None = None) -> tuple[str, str]:
    experiment_id = client.create_experiment(experiment)
    parent = client.create_run(experiment_id, tags={names.SWEEP_JOBS_TAG: "12", **(tags or {})}).info.run_id
    return experiment_id, parent


def finish(client: MlflowClient, parent: str) -> str:
    client.set_terminated(parent, "FINISHED")
    return parent


# test/mse by (cell, task.length), three seeds: gru holds up as the sequences grow, rnn falls to chance
# (the mean baseline scores 0.167 at every length)
MSE = {
    ("rnn", 10): [0.020, 0.024, 0.022],
    ("gru", 10): [0.004, 0.005, 0.0045],
    ("rnn", 40): [0.170, 0.168, 0.175],
    ("gru", 40): [0.010, 0.012, 0.011],
}
CHANCE = 0.167
HORIZON = {("rnn", 10): [5, 6, 4], ("gru", 10): [9, 9, 9], ("rnn", 40): [4, 4, 5], ("gru", 40): [30, 28, 33]}
W = {"rnn": 0.6, "gru": 0.95}


def difficulty_sweep(client: MlflowClient, experiment: str, parent_tags: dict[str, str] | None = None) -> str:
    experiment_id, parent = parent_run(client, experiment, parent_tags)
    for (cell, length), values in MSE.items():
        for seed, value in enumerate(values):
            job(
                client,
                experiment_id,
                parent,
                {"cell.name": cell, "task.length": str(length), "seed": str(seed)},
                value,
                fit_s=length * (2.0 if cell == "gru" else 1.0) + seed,
                val_curve=tuple(value * (4 - e) for e in range(3 + seed)),  # seeds stop at other epochs
                horizon=HORIZON[cell, length][seed],
                w=W[cell],
                baseline=CHANCE,
            )
    return finish(client, parent)


def epochs_of(seed: int) -> int:
    return 3 + seed


def per_epoch_s(cell: str, length: int) -> float:
    """Mean over the three seeds of fit time / epochs, as difficulty_sweep logs them."""
    return sum((length * (2.0 if cell == "gru" else 1.0) + s) / epochs_of(s) for s in range(3)) / 3
