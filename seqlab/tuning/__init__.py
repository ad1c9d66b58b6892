"""Tuning with Optuna as a Hydra sweeper (`hydra/sweeper=tune`, docs/tuning.md): arms, a search space, a
study in a database, trials through any launcher, evaluation on fresh seeds, a report on the parent run."""
