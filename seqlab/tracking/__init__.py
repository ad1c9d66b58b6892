"""Tracking: every run in MLflow, from creation to a final status."""
