"""Metric and param names, defined once and used by training, tracking, reports and tests."""

TRAIN, VAL, TEST = "train", "val", "test"


def metric_key(stage: str, name: str) -> str:
    """The MLflow/Lightning key of metric `name` in `stage`, e.g. ("val", "loss") -> "val/loss"."""
    return f"{stage}/{name}"


TRAIN_LOSS = metric_key(TRAIN, "loss")  # per epoch
TRAIN_STEP_LOSS = metric_key(TRAIN, "step_loss")  # every trainer.log_every_n_steps steps
VAL_LOSS = metric_key(VAL, "loss")
TEST_LOSS = metric_key(TEST, "loss")
DATA_UNITS_SUFFIX = "_original"  # a metric in the data's own units, beside the z-score one: test/mse_original
# trivial forecasts and guesses, logged as metrics of every run (seqlab/tasks/baselines.py)
BASELINE = "baseline"


def baseline_key(stage: str, name: str) -> str:
    """A baseline's score, e.g. ("test", "persistence_mse") -> "test/baseline/persistence_mse"."""
    return f"{stage}/{BASELINE}/{name}"


# Params seqlab adds beside the flattened config.
N_PARAMS = "model.n_params"
N_TRAIN, N_VAL, N_TEST = "data.n_train", "data.n_val", "data.n_test"

# Tags.
GIT_COMMIT = "git.commit"
GIT_DIRTY = "git.dirty"
SEQLAB_VERSION = "seqlab.version"
ERROR_TAG = "seqlab.error"
SIGNAL_TAG = "seqlab.signal"
# tag: the logged metric keys where higher is better (comma-separated), from each torchmetrics Metric's
# own `higher_is_better`; a metric not listed is lower-is-better (losses, errors, NLL)
HIGHER_IS_BETTER_TAG = "seqlab.higher_is_better"

# Reproducibility (seqlab/reproduce): provenance, reruns, resumes.
RERUN_OF = "rerun_of"  # tag of a rerun: the run id it repeats
DATA_SHA256 = "data.sha256"  # tag: "<sha256>  <file>" per data file read; empty for generated data
TORCH_VERSION, LIGHTNING_VERSION, MLFLOW_VERSION = "torch.version", "lightning.version", "mlflow.version"
DETERMINISM = "seqlab.determinism"  # tag: the settings exact reproduction depends on
CHECKPOINT_DIR = "seqlab.checkpoint_dir"  # tag: the folder the run writes LAST_CHECKPOINT in
LAST_CHECKPOINT = "last.ckpt"  # callbacks.last_checkpoint rewrites it at every epoch end: what a resume reads
RESUMED_TAG = "seqlab.resumed"  # tag: the epochs a resume started from, e.g. "3" or "3,7"
CHECKPOINT_RUN_ID = "seqlab_run_id"  # key in a Lightning checkpoint dict: the MLflow run it belongs to

# --- tracking: sweeps, artifacts, system figures ---------------------------------------------
PARENT_RUN_TAG = "mlflow.parentRunId"  # MLflow's own tag: the UI nests a sweep's jobs under it
JOB_NUM_TAG = "seqlab.job.num"  # Hydra's job number within the sweep
JOB_OVERRIDES_TAG = "seqlab.job.overrides"  # the job's command-line overrides, e.g. "cell=gru seed=1"
SWEEP_DIR_TAG = "seqlab.sweep.dir"
SWEEP_JOBS_TAG = "seqlab.sweep.n_jobs"  # how many jobs the sweep launches
FAILED_JOBS_TAG = "seqlab.sweep.failed_jobs"  # on the parent: one line per job that did not finish
# on the parent: the command line's overrides (a JSON list, credentials redacted), which `seqlab
# resume=<parent run id>` splits into the sweep's jobs again to finish the ones that did not
SWEEP_OVERRIDES_TAG = "seqlab.sweep.overrides"
SWEEP_THREADS_TAG = "seqlab.sweep.torch_threads"  # on the parent: torch threads per job in a parallel sweep
# tag prefix: a path-valued config key, e.g. seqlab.path.paths.output_dir (paths are where a run was, not
# what it chose: as params they would differ between every two runs and flood the UI's params diff)
PATH_TAG_PREFIX = "seqlab.path."
SPOOL_TAG = "seqlab.spool"  # the folder that held what the tracking server could not take at the time
TORCH_THREADS = (
    "torch.num_threads"  # param: the threads torch trained with (torch_threads, or cores / n_jobs)
)

TIME_FIT = "time/fit_s"  # wall time of trainer.fit
TIME_TEST = "time/test_s"
TRAIN_THROUGHPUT = "time/train_samples_per_s"  # training examples per second of fit wall time
MEM_PEAK_RSS = "mem/peak_rss_mb"  # the process's peak resident memory

# Artifact paths inside a run.
CHECKPOINT_ARTIFACTS = "checkpoints"
PLOT_ARTIFACTS = "plots"
MODEL_ARTIFACT = "model"  # the pyfunc model: runs:/<id>/model
COMPARISON_ARTIFACTS = "comparison"  # seqlab-compare's table and plot, on the parent run

# Diagnostics measured once after training (seqlab/diagnostics).
GRADIENT_HORIZON = (
    "diag/gradient_horizon"  # steps back the last step's gradient keeps >= a fraction of itself
)
GRADIENT_FLOW_TAG = "seqlab.diag.gradient_flow"  # tag: what was measured, or why it was skipped
GRADIENT_FLOW_CSV = "gradient_flow.csv"  # under PLOT_ARTIFACTS: the curve behind the plot and the horizon
GRADIENT_FLOW_PLOT = "gradient_flow.png"

# --- tuning: hydra/sweeper=tune (seqlab/tuning) ------------------------------------------------
SWEEP_KIND_TAG = "seqlab.sweep.kind"  # on a tuning sweep's parent run: "tune"
TUNE_KIND = "tune"
TUNE_ROLE_TAG = "seqlab.tune.role"  # a tuning sweep's run: TUNE_TRIAL (a search trial) or TUNE_EVAL
TUNE_TRIAL, TUNE_EVAL = "trial", "eval"
TUNE_ARM_TAG = "seqlab.tune.arm"  # the arm (one value of each comma list) the run belongs to, e.g. cell-gru
TUNE_TRIAL_TAG = "seqlab.tune.trial"  # the trial's number in its arm's Optuna study
TUNE_STATE_TAG = "seqlab.tune.state"  # the trial's state in the study: COMPLETE, PRUNED or FAIL
TUNE_STUDY_TAG = "seqlab.tune.study"  # the arm's Optuna study name
PRUNED_TAG = "seqlab.pruned"  # on a trial's run the pruner stopped: the epoch it stopped after
TUNE_BEST_TAG_PREFIX = "seqlab.tune.best."  # + arm, on the parent: the arm's best params and value (JSON)
TUNING_ARTIFACTS = "tuning"  # on the parent: summary.csv, <arm>/importances.csv|png, <arm>/history.png
