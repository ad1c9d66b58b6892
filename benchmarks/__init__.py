"""Benchmarks (`python -m benchmarks <name>`): each measures seqlab against a baseline in one run and
prints a ratio."""
