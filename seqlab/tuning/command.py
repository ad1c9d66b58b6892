"""Whether a command line tunes (`hydra/sweeper=tune`), and what the entry point adds to it. Light: read
by `seqlab` before anything heavy is imported."""

SWEEPER_CHOICES = ("hydra/sweeper=tune", "override hydra/sweeper=tune")
# conf/config.yaml's sweep parent run is merged after the sweeper's own config, so the tuning sweep's
# parent run is chosen on the command line: it knows the study, where the plain one would split the
# search space into jobs.
TUNE_PARENT_RUN = "hydra.callbacks.sweep_parent_run._target_=seqlab.tuning.parent_run.TuneParentRun"


def tunes(argv: list[str]) -> bool:
    return any(arg.strip() in SWEEPER_CHOICES for arg in argv)


def with_tuning_parent_run(argv: list[str]) -> list[str]:
    """argv with the tuning parent run chosen when it tunes, unchanged otherwise."""
    return [*argv, TUNE_PARENT_RUN] if tunes(argv) and TUNE_PARENT_RUN not in argv else argv
