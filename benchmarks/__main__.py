"""`python -m benchmarks <name>`, run from the checkout (benchmarks/ is not installed with seqlab)."""

from benchmarks.cli import main

main()
