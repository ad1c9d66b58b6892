"""Diagnostics of a trained network that explain a result: pure torch, measured once after training."""
