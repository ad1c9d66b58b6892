"""`python -m benchmarks <name> [--quick] [--accelerator cpu|gpu]`: run one benchmark (or all) and print
its ratio."""

import argparse
import importlib
import logging
import subprocess
import sys
import warnings

from seqlab.errors import SeqlabError

BENCHMARKS = {  # name -> the module whose run(quick, accelerator) prints it
    "overhead": "benchmarks.overhead",
    "logging": "benchmarks.tracking_cost",
    "data": "benchmarks.data_pipeline",
    "sweep": "benchmarks.sweep",
    "startup": "benchmarks.startup",
    "cells": "benchmarks.cells",
    "pruning": "benchmarks.pruning",
}
# The data benchmark times building batches, which happens on the CPU whatever trains on them.
ON_GPU = [name for name in BENCHMARKS if name != "data"]


def _check_accelerator(name: str, accelerator: str) -> None:
    if accelerator != "gpu":
        return
    if name != "all" and name not in ON_GPU:
        raise SeqlabError(
            f"--accelerator gpu: the {name} benchmark times work done on the CPU "
            f"whatever the accelerator, so it runs on the CPU only; the ones that take --accelerator gpu "
            f"are {', '.join(ON_GPU)}."
        )
    import torch

    if not torch.cuda.is_available():
        raise SeqlabError(
            f"--accelerator gpu: torch {torch.__version__} sees no CUDA GPU "
            f"(torch.cuda.is_available() is False). Run it on a machine with an NVIDIA GPU and a CUDA "
            f"build of torch, or leave out --accelerator (cpu); `python -m benchmarks all` adds the GPU runs "
            f"by itself where there is a GPU."
        )


def _run_all(quick: bool, accelerator: str) -> None:
    """Each benchmark in a fresh process, as if run one by one: a benchmark sets process-wide torch state
    (the logging one runs torch on one thread), which the next one would otherwise measure under. Where
    torch sees a GPU (never required), the ones that train run again on it."""
    from benchmarks.harness import checkout_env

    runs = [(name, accelerator) for name in BENCHMARKS if accelerator == "cpu" or name in ON_GPU]
    if accelerator == "cpu":
        import torch

        if torch.cuda.is_available():
            runs += [(name, "gpu") for name in ON_GPU]
    failed = []
    for name, on in runs:
        if on == "gpu":
            print(f"== python -m benchmarks {name} --accelerator gpu", flush=True)
        command = [
            sys.executable,
            "-m",
            "benchmarks",
            name,
            *(["--quick"] if quick else []),
            *(["--accelerator", on] if on != "cpu" else []),
        ]
        if subprocess.run(command, env=checkout_env()).returncode:
            failed.append(name if on == "cpu" else f"{name} (gpu)")
    if failed:
        sys.exit(f"python -m benchmarks all: {', '.join(failed)} failed (their messages are above)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("name", choices=[*BENCHMARKS, "all"])
    parser.add_argument(
        "--quick", action="store_true", help="a tiny run that only checks the benchmark works"
    )
    parser.add_argument(
        "--accelerator",
        choices=["cpu", "gpu"],
        default="cpu",
        help="where the runs train (trainer.accelerator); gpu needs a CUDA GPU, never required",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore")
    from seqlab.train import quiet_library_notices

    # a report of figures: Lightning's and MLflow's notices of each run would bury them
    quiet_library_notices()
    try:
        _check_accelerator(args.name, args.accelerator)
        if args.name == "all":
            _run_all(args.quick, args.accelerator)
        else:
            importlib.import_module(BENCHMARKS[args.name]).run(args.quick, args.accelerator)
    except SeqlabError as exc:  # a missing data file, a bad override, no GPU: the message says what to do
        sys.exit(f"python -m benchmarks {args.name}: {exc}")
