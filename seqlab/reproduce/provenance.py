"""The provenance tags every run gets beside git commit and config: data hashes, versions, determinism.

A rerun can only be trusted to repeat a run when the data bytes, the library versions and the
settings that make torch deterministic are the same; these tags let anyone check that.
"""

from pathlib import Path

from omegaconf import DictConfig

from seqlab import names
from seqlab.tasks.download import sha256_of


def data_sha256(files: list[Path]) -> str:
    """One `<sha256>  <file>` line per file (sha256sum's format, so `sha256sum -c` can check it)."""
    return "\n".join(f"{sha256_of(Path(f))}  {f}" for f in sorted(files, key=str))


def version_tags() -> dict[str, str]:
    import lightning
    import mlflow
    import torch

    return {
        names.TORCH_VERSION: torch.__version__,
        names.LIGHTNING_VERSION: lightning.__version__,
        names.MLFLOW_VERSION: mlflow.__version__,
    }


def determinism_tag(cfg: DictConfig) -> str:
    """The settings exact reproduction depends on, read after the Trainer has applied its own."""
    import torch
    import torch.utils.deterministic

    settings = {
        "trainer.deterministic": cfg.trainer.get("deterministic"),
        "torch.deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        # the module sets this attribute at run time; torch's stubs do not declare it
        "torch.fill_uninitialized_memory": torch.utils.deterministic.fill_uninitialized_memory,  # type: ignore[attr-defined]
        "trainer.accelerator": cfg.trainer.get("accelerator"),
        "trainer.precision": cfg.trainer.get("precision"),
        "torch.num_threads": torch.get_num_threads(),
        "seed": cfg.seed,
        "reseed": "before every training batch from (seed, epoch, batch)",
    }
    return "; ".join(f"{k}={v}" for k, v in settings.items())


def provenance_tags(cfg: DictConfig, data_files: list[Path]) -> dict[str, str]:
    """Tags known before training starts (the determinism tag follows once the Trainer exists)."""
    return {names.DATA_SHA256: data_sha256(data_files)} | version_tags()
