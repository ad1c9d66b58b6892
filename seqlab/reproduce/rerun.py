"""`seqlab-rerun RUN_ID [overrides...]`: train a logged run again, as a new run tagged rerun_of.

The config is the one the run logged (not today's defaults), so on the same machine and commit the
rerun's val and test metrics equal the original's exactly; overrides after the id make a rerun with
a change. A different git commit, dirty tree or data file is warned about, not refused.
"""

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from seqlab import names
from seqlab.config import _unknown_key, check_override_keys, validate
from seqlab.errors import ConfigError, SeqlabError
from seqlab.preflight import CONFIG_MODULE, CONFIG_NAME, _compose_job, input_line
from seqlab.tracking.params import leaves
from seqlab.tracking.server import SCRIPT_OPTION
from seqlab.tracking.store import add_tracking_uri_option, read_store, tracking_uri

log = logging.getLogger("seqlab.rerun")
_MISSING = object()


def rebase_paths(node: Any, old: str, new: str) -> Any:
    """Point every path under the original run's output folder (checkpoints, Lightning files) to `new`."""
    if isinstance(node, dict):
        return {k: rebase_paths(v, old, new) for k, v in node.items()}
    if isinstance(node, list):
        return [rebase_paths(v, old, new) for v in node]
    if isinstance(node, str) and old and (node == old or node.startswith(old.rstrip("/") + "/")):
        return new + node[len(old.rstrip("/")) :] if node != old else new
    return node


def relink_interpolations(plain: dict[str, Any]) -> dict[str, Any]:
    """Turn values the logged (resolved) config got from an interpolation back into it.

    The defaults write task.seed as ${seed} and the checkpoint folder as ${paths.output_dir}/...;
    where the run's value is exactly what that interpolation gives, it is restored, so `seed=3` or a
    new output folder move what followed them in the original run too.
    """
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
        template = leaves(OmegaConf.to_container(compose(CONFIG_NAME, overrides=[]), resolve=False))
    GlobalHydra.instance().clear()
    run = OmegaConf.create(plain)
    for key, link in template.items():
        if (
            not (isinstance(link, str) and "${" in link) or ":" in link
        ):  # resolvers (hydra:, oc.env:) stay resolved
            continue
        value = OmegaConf.select(run, key, default=_MISSING)
        if value is _MISSING:
            continue
        probe = run.copy()
        OmegaConf.update(probe, key, link)
        if OmegaConf.select(probe, key) == value:
            OmegaConf.update(run, key, link)
    return cast(dict[str, Any], OmegaConf.to_container(run, resolve=False))


def _apply_group_choice(cfg: DictConfig, override: Override, groups: set[str]) -> None:
    """A group choice (cell=gru, task=adding) replaces that section with the option as composed today;
    a global one (debug=fast) sets the keys it changes. The rest of the run's config stays."""
    chosen = _compose_job([input_line(override)], groups)
    group = override.key_or_group
    if group in chosen and group in cfg:
        cfg[group] = chosen[group]
        return
    base = leaves(OmegaConf.to_container(compose(CONFIG_NAME, overrides=[]), resolve=False))
    for key, value in leaves(OmegaConf.to_container(chosen, resolve=False)).items():
        if key in base and base[key] == value:
            continue
        OmegaConf.update(cfg, key, value, force_add=True)


def _apply_value(cfg: DictConfig, override: Override) -> None:
    key = override.key_or_group
    parent, _, leaf = key.rpartition(".")
    if override.is_delete():
        node = OmegaConf.select(cfg, parent) if parent else cfg
        if not isinstance(node, DictConfig) or leaf not in node:
            raise ConfigError(f"Cannot delete '{key}' (~{key}): the run's config has no such key.")
        with open_dict(node):
            del node[leaf]
        return
    adding = override.is_add() or override.is_force_add()
    if not adding and OmegaConf.select(cfg, key, default=_MISSING) is _MISSING:
        node = OmegaConf.select(cfg, parent) if parent else cfg
        if isinstance(node, DictConfig):
            raise _unknown_key(parent or "<root>", leaf, {str(k) for k in node})
        raise ConfigError(f"Unknown config key '{key}': '{parent}' is not a config section of the run.")
    try:
        if adding:
            with open_dict(cfg):
                OmegaConf.update(cfg, key, override.value(), force_add=True)
        else:
            OmegaConf.update(cfg, key, override.value())
    except OmegaConfBaseException as exc:
        reason = str(exc.msg).splitlines()[0].rstrip(".")
        raise ConfigError(f"Invalid override {override.input_line}: {reason}.") from exc


def apply_overrides(cfg: DictConfig, overrides: list[str]) -> None:
    """Hydra-style overrides on top of a run's config: key=value, +key=value, ~key, group=option."""
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException as exc:
        raise ConfigError(f"Cannot parse the overrides [{' '.join(overrides)}]: {exc}") from exc
    keys = [o.key_or_group for o in parsed if not o.is_delete() and o.value() is not None]
    check_override_keys(keys)
    if "resume" in keys:
        raise ConfigError(
            "seqlab-rerun starts a new run; to continue an interrupted one use `seqlab resume=<run id>`."
        )
    if cfg.model.get("param_budget") is not None and "model.hidden_size" in keys:
        raise ConfigError(
            f"The run chose its hidden size with model.param_budget={cfg.model.param_budget}, so "
            "model.hidden_size cannot be set alone; add model.param_budget=null to set the hidden size "
            "yourself."
        )
    for override in parsed:
        if override.is_sweep_override():
            raise ConfigError(f"{override.input_line} is a sweep; a rerun is one run: give one value.")
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
        groups = set(GlobalHydra.instance().config_loader().list_groups(""))
        for override in parsed:
            if override.key_or_group in groups and not override.is_delete():
                _apply_group_choice(cfg, override, groups)
            else:
                _apply_value(cfg, override)
    GlobalHydra.instance().clear()


def rerun_config(client, run_id: str, overrides: list[str], uri: str, output_dir: Path) -> DictConfig:
    """The run's logged config, its paths moved to `output_dir`, this store, the overrides on top;
    validated."""
    from seqlab.reproduce.run_config import as_seqlab_config, logged_config

    plain = relink_interpolations(logged_config(client, run_id, SCRIPT_OPTION))
    plain = rebase_paths(plain, str(plain.get("paths", {}).get("output_dir", "")), str(output_dir))
    cfg = as_seqlab_config(plain, run_id)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        cfg.tracking.uri = uri  # the logged one may be redacted
    apply_overrides(cfg, overrides)
    validate(cfg)
    return cfg


def warn_about_differences(original_tags: dict[str, str]) -> None:
    from seqlab.tracking.provenance import git_state

    commit, dirty = git_state()
    logged = original_tags.get(names.GIT_COMMIT, "unknown")
    if commit != logged:
        log.warning(
            "the code differs from the run's: this checkout is at git commit %s, the run was made at %s; "
            "metrics may differ (check out %s for an exact rerun)",
            commit,
            logged,
            logged,
        )
    if original_tags.get(names.GIT_DIRTY) == "true" or dirty:
        log.warning("the run or this checkout had uncommitted changes (git.dirty): the code may differ")


def rerun(run_id: str, overrides: list[str], given_uri: str | None = None) -> str:
    """Train run `run_id` again (with `overrides`) as a new run; returns the new run's id.

    It trains with the torch thread count the run logged unless the run's config or the overrides set
    torch_threads."""
    from seqlab.reproduce.run_config import get_run, logged_threads
    from seqlab.train import train

    uri = tracking_uri(given_uri)
    client = read_store(uri)
    original = get_run(client, run_id, "rerun", SCRIPT_OPTION)
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S-%f")
    cfg = rerun_config(
        client, run_id, overrides, uri, Path.cwd() / "outputs" / "reruns" / f"{stamp}-{run_id[:8]}"
    )
    warn_about_differences(original.data.tags)
    # torch_threads, where the run's config or the overrides set it, is what train sets
    threads = logged_threads(original) if cfg.get("torch_threads") is None else None
    with run_threads(threads):
        # the data files the run read, checked before training (a changed file would not repeat it)
        train(
            cfg, extra_tags={names.RERUN_OF: run_id}, expected_data=original.data.tags.get(names.DATA_SHA256)
        )
    [new] = client.search_runs(
        [original.info.experiment_id, *_experiment_ids(client, cfg)],
        filter_string=f"tags.{names.RERUN_OF} = '{run_id}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    report(client, original, client.get_run(new.info.run_id))
    return new.info.run_id


@contextlib.contextmanager
def run_threads(count: int | None) -> Iterator[None]:
    """torch's thread count set to the run's for the rerun (this process's own restored after): the same
    seed gives other sums at another count, and a run trained with its process's count logs only that."""
    import torch

    before = torch.get_num_threads()
    if count is not None:
        log.info("training with %d torch threads, as the run did", count)
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _experiment_ids(client, cfg: DictConfig) -> list[str]:
    found = client.get_experiment_by_name(cfg.tracking.experiment)
    return [found.experiment_id] if found is not None else []


def report(client, original, new) -> None:
    """Say where the rerun went and how its val/test metrics compare with the original's."""
    if original.data.tags.get(names.DATA_SHA256) != new.data.tags.get(names.DATA_SHA256):
        log.warning("the data files differ from the run's (tag %s)", names.DATA_SHA256)
    keys = sorted(k for k in original.data.metrics if k.startswith((names.VAL, names.TEST)))
    same = all(new.data.metrics.get(k) == original.data.metrics[k] for k in keys)
    print(f"seqlab-rerun: run {new.info.run_id} ({new.info.status}) reran {original.info.run_id}")
    for key in keys:
        print(f"  {key:<14} original {original.data.metrics[key]!r:<24} rerun {new.data.metrics.get(key)!r}")
    print("  val and test metrics identical" if same else "  val and test metrics differ")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="seqlab-rerun",
        description=(
            "Train a logged seqlab run again from the config it logged, as a new run tagged rerun_of."
        ),
    )
    parser.add_argument("run_id", help="the MLflow run id to repeat")
    parser.add_argument(
        "overrides", nargs="*", help="Hydra-style overrides applied on top (key=value, cell=gru, ...)"
    )
    add_tracking_uri_option(parser)
    # options and overrides in any order: `ID --tracking-uri URI seed=1`, as users type them
    args = parser.parse_intermixed_args(argv)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one config.yaml: no bar
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    try:
        rerun(args.run_id, args.overrides, args.tracking_uri)
    except SeqlabError as err:
        print(f"seqlab-rerun: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
