"""Reproducibility: what a run records to be trusted, reruns from MLflow, resumes after an interruption."""
