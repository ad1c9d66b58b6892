"""`seqlab-bench <name> [--quick]`: run one benchmark (or all) and print its ratio."""

import argparse
import importlib
import logging
import subprocess
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
    if args.name == "all":
        # Each in a fresh process, as if run one by one: a benchmark sets process-wide torch state (the
        # logging one runs torch on one thread), which the next one would otherwise measure under.
        failed = [name for name in BENCHMARKS if subprocess.run(
            [sys.executable, "-m", "seqlab.bench.cli", name, *(["--quick"] if args.quick else [])]).returncode]
        if failed:
            sys.exit(f"seqlab-bench all: {', '.join(failed)} failed (their messages are above)")
        return
    try:
        importlib.import_module(BENCHMARKS[args.name]).run(args.quick)
    except SeqlabError as exc:  # a missing data file, a bad override: the message says what to do
        sys.exit(f"seqlab-bench {args.name}: {exc}")


if __name__ == "__main__":
    main()
