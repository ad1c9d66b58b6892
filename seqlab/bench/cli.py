"""`seqlab-bench <name> [--quick]`: run one benchmark (or all) and print its ratio."""

import argparse
import importlib
import logging
import sys
import warnings

from seqlab.errors import SeqlabError

BENCHMARKS = {
    "overhead": "seqlab.bench.overhead",
    "logging": "seqlab.bench.tracking_cost",
    "data": "seqlab.bench.data_pipeline",
    "sweep": "seqlab.bench.sweep",
    "startup": "seqlab.bench.startup",
    "cells": "seqlab.bench.cells",
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="seqlab-bench", description=__doc__)
    parser.add_argument("name", choices=[*BENCHMARKS, "all"])
    parser.add_argument("--quick", action="store_true", help="a tiny run that only checks the benchmark works")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore")
    names = list(BENCHMARKS) if args.name == "all" else [args.name]
    for name in names:
        try:
            importlib.import_module(BENCHMARKS[name]).run(args.quick)
        except SeqlabError as exc:  # a missing data file, a bad override: the message says what to do
            sys.exit(f"seqlab-bench {name}: {exc}")


if __name__ == "__main__":
    main()
