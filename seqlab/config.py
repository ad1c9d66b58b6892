"""The config schema (dataclasses in Hydra's ConfigStore) and the checks Hydra cannot express.

Typed sections (model, tracking, paths, published) reject a wrong type at composition; every other
section is a `_target_` (cell, norm, loss, task, optimizer, scheduler, trainer, callbacks) whose keys must
be parameters of its target. `validate` runs each target's own checks and the rules that span sections,
before any data is built or any MLflow run is created.
"""

import collections.abc
import contextlib
import difflib
import enum
import inspect
import logging
import os
import types
import typing
import warnings
from collections.abc import Callable, Iterator, Set
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import PurePath
from typing import Any, Literal, Union, cast, get_args, get_origin

from hydra.core.config_store import ConfigStore
from hydra.utils import get_object, instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf

from seqlab import names
from seqlab.checks import at_least
from seqlab.errors import ConfigError
from seqlab.models.options import NetworkOptions
from seqlab.tracking.params import flatten


@dataclass
class ModelConfig(NetworkOptions):
    """The network's options (declared once, in NetworkOptions) plus how the config builds it."""

    _target_: str = "seqlab.models.budget.build_network"
    param_budget: int | None = None  # trainable parameters to match; chooses hidden_size (models/budget.py)


@dataclass
class TrackingConfig:
    uri: str | None = None  # None: $MLFLOW_TRACKING_URI, else sqlite:///<cwd>/outputs/mlflow.db
    experiment: str = "seqlab"
    system_metrics: bool = True  # MLflow's system metrics (system/cpu_utilization_percentage, ...) per run
    outage_wait_s: float = 120.0  # at the end of a run, how long to wait for a tracking server that went down


@dataclass
class PathsConfig:
    output_dir: str = "${hydra:runtime.output_dir}"  # checkpoints and Lightning files of this job


@dataclass
class PublishedConfig:
    """A paper's numbers for an experiment preset, which seqlab-compare prints beside the runs' own.

    Logged with the rest of the config (params `published.*`), so a comparison needs nothing but the
    runs. A run gets the number of its `by` value (e.g. cell.name=gru) only if it ran in the paper's
    `setting`: a preset overridden to another dataset or budget is not compared with the paper.
    """

    source: str = "???"  # e.g. "Chung et al. 2014, Table 2"
    metric: str = "???"  # the logged test metric the numbers are comparable with, e.g. test/nll
    by: str = "cell.name"  # the config key whose value picks a run's number
    numbers: dict[str, float] = field(default_factory=dict)  # value of `by` -> the published number
    setting: dict[str, Any] = field(
        default_factory=dict
    )  # config values the numbers assume, nested as the config


@dataclass
class SeqlabConfig:
    """The top level; sections typed `Any` are `_target_` sections checked against their target's
    signature."""

    model: ModelConfig = field(default_factory=ModelConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    cell: Any = None
    norm: Any = None
    task: Any = None
    loss: Any = None
    optimizer: Any = None
    scheduler: Any = None
    trainer: Any = None
    callbacks: Any = None
    seed: int = 0
    torch_threads: int | None = None  # None: torch's default, or cores / n_jobs in a parallel sweep
    resume: str | None = None  # an MLflow run id: continue that run from its last checkpoint
    published: PublishedConfig | None = None  # set by the experiment presets that reproduce a paper


CUDA_ACCELERATORS = ("gpu", "cuda")  # the trainer.accelerator values that ask for a CUDA GPU


def register_configs() -> None:
    ConfigStore.instance().store(name="seqlab_schema", node=SeqlabConfig)


# --- validation ---------------------------------------------------------------------------------

_ABSENT = object()
_INSTANTIATE_KEYS = {"_target_", "_partial_", "_convert_", "_recursive_", "_args_"}


def check_batch_limits(trainer: DictConfig, batches: dict[str, int], batch_size: int) -> None:
    """A fractional trainer.limit_<split>_batches must keep one batch of the built split.

    Lightning finds out only inside fit, after the run exists; the batch counts are known once the data is.
    """
    for split, count in batches.items():
        limit = trainer.get(f"limit_{split}_batches")
        if isinstance(limit, float) and 0 < limit < 1 and int(count * limit) == 0:
            raise ConfigError(
                f"Invalid trainer.limit_{split}_batches={limit}: it keeps no batch of the {count} {split} "
                f"batches (task.batch_size={batch_size}). Use a fraction of at least {1 / count:.3g}, or a "
                f"whole number of batches such as trainer.limit_{split}_batches=1."
            )


def _unknown_key(path: str, key: str, allowed: set[str]) -> ConfigError:
    """`path` is the section ("model"), or "" / "<root>" for top-level keys."""
    prefix = "" if path in ("", "<root>") else f"{path}."
    close = difflib.get_close_matches(key, sorted(allowed), n=1)
    hint = f" Did you mean '{prefix}{close[0]}'?" if close else ""
    where = f"under '{path}'" if prefix else "at the top level"
    return ConfigError(
        f"Unknown config key '{prefix}{key}'.{hint} Keys allowed {where}: {', '.join(sorted(allowed))}."
    )


def _check_schema_keys(node: DictConfig, schema: type, path: str) -> None:
    """Keys added with `+key=...` on top of a typed section are typos too."""
    allowed = {f.name for f in fields(schema)}
    for key in node:
        if key not in allowed:
            raise _unknown_key(path, str(key), allowed)
        sub = next(f for f in fields(schema) if f.name == key).type
        optional = [
            t for t in get_args(sub) if t is not type(None)
        ]  # PublishedConfig | None -> PublishedConfig
        sub = optional[0] if len(optional) == 1 else sub
        if isinstance(sub, type) and is_dataclass(sub) and isinstance(node[key], DictConfig):
            _check_schema_keys(node[key], sub, f"{path}.{key}" if path else str(key))


def target_of(node: DictConfig, path: str) -> Any:
    try:
        return get_object(node._target_)
    except Exception as exc:
        raise ConfigError(f"Cannot import {path}._target_={node._target_!r}: {exc}.") from exc


def _check_target_section(
    node: DictConfig, path: str, extra: Set[str] = frozenset(), supplied: Set[str] = frozenset()
) -> Any:
    """Every key of a `_target_` section must be a parameter of what it instantiates (or one of `extra`;
    not one of `supplied`, which the caller passes), and a target with a `check(options)` classmethod (a
    task, a cell, weight noise) refuses bad values here, not inside instantiate. Returns the target."""
    target = target_of(node, path)
    params = inspect.signature(target).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        allowed = ({p for p in params if p not in {"self", "args", "kwargs"}} | set(extra)) - set(supplied)
        for key in node:
            if key not in _INSTANTIATE_KEYS and key not in allowed:
                raise _unknown_key(path, str(key), allowed)
    check = getattr(target, "check", None)
    if inspect.ismethod(check):  # a classmethod; another library's target may have an unrelated `check`
        check(node)  # first: the target's own words on its values say more than a type name
    check_types(node, path, target)
    return target


# --- values against their target's signature ------------------------------------------------------


def resolved_options(node: DictConfig) -> dict[str, Any]:
    """A `_target_` section's options as plain values; one that cannot be resolved yet (a `${hydra:...}`
    path outside a Hydra job) is left out, and its target's default stands in for it in a trial build."""
    options = {}
    for key in node:
        if key in _INSTANTIATE_KEYS:
            continue
        try:
            value = node[key]
            if isinstance(value, DictConfig | ListConfig):
                value = OmegaConf.to_container(value, resolve=True)
        except Exception:
            continue
        options[str(key)] = value
    return options


def _annotations(target: Any) -> dict[str, Any]:
    """The target's parameter annotations as types; one that cannot be evaluated is left unjudged."""
    function = cast(Any, target).__init__ if isinstance(target, type) else target
    try:
        return typing.get_type_hints(function)
    except Exception:
        return {}


_SEQUENCES = {list, tuple, set, frozenset, collections.abc.Sequence, collections.abc.Iterable}
_SEQUENCES |= {collections.abc.Collection, collections.abc.MutableSequence}
_MAPPINGS = {dict, collections.abc.Mapping, collections.abc.MutableMapping}


def accepts(annotation: Any, value: Any) -> bool:
    """Whether a plain config value fits a parameter annotation; what cannot be judged (Any, a type
    variable, a callable) is accepted, and so is a nested `_target_` mapping, which instantiate builds."""
    origin = get_origin(annotation)
    if annotation is Any or isinstance(annotation, typing.TypeVar | typing.ForwardRef | str):
        return True
    if origin in (Union, types.UnionType):
        return any(accepts(member, value) for member in get_args(annotation))
    if origin is Literal:  # type too: a config's true is not the Literal 1, nor 1 the Literal True
        return any(value == v and type(value) is type(v) for v in get_args(annotation))
    if value is None or annotation is type(None):
        return value is None and annotation is type(None)
    if isinstance(value, dict) and "_target_" in value:
        return True
    args = get_args(annotation)
    if origin in _SEQUENCES or annotation in _SEQUENCES:
        if not isinstance(value, list):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(map(accepts, args, value))
        return all(accepts(args[0], v) for v in value) if args else True
    if origin in _MAPPINGS or annotation in _MAPPINGS:
        return isinstance(value, dict) and (not args or all(accepts(args[1], v) for v in value.values()))
    if origin is not None or not isinstance(annotation, type):
        return True  # Callable[...], Type[...] and other forms a config value is not checked against
    if isinstance(value, bool):  # Python's bool is an int, a config's true is not a number
        return annotation is bool or annotation is object
    if annotation is float:
        return isinstance(value, int | float)  # an int is a fine float (PEP 484's numeric tower)
    if issubclass(annotation, PurePath):
        return isinstance(value, str)
    if issubclass(annotation, enum.Enum):
        return any(value in (member.value, member.name) for member in annotation)
    return isinstance(value, annotation)


_TYPE_WORDS = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def describe(annotation: Any) -> str:
    """What an annotation allows, in the words of a config file: `int | None` -> "an integer or null"."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (Union, types.UnionType):
        literals = [v for a in args if get_origin(a) is Literal for v in get_args(a)]
        parts = [describe(a) for a in args if get_origin(a) is not Literal and a is not type(None)]
        if literals:
            parts.insert(0, f"one of {', '.join(map(repr, literals))}")
        if type(None) in args:
            parts.append("null")
        return " or ".join(dict.fromkeys(parts))
    if origin is Literal:
        return f"one of {', '.join(map(repr, args))}"
    if annotation is type(None):
        return "null"
    if origin is tuple and args and args[-1] is not Ellipsis:
        return f"a list of {len(args)} ({', '.join(describe(a) for a in args)})"
    if origin in _SEQUENCES:
        return f"a list of ({describe(args[0])})" if args else "a list"
    if origin in _MAPPINGS or annotation in _MAPPINGS:
        return "a mapping"
    if isinstance(annotation, type) and issubclass(annotation, PurePath):
        return "a path"
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return f"one of {', '.join(repr(m.value) for m in annotation)}"
    if annotation in _TYPE_WORDS:
        return _TYPE_WORDS[annotation]
    return f"a {getattr(annotation, '__name__', annotation)}"


def target_name(node: DictConfig) -> str:
    return str(node._target_)


def shown(value: Any) -> str:
    """A value as the config file or command line writes it (true, null, 'two')."""
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    return repr(value)


def check_types(node: DictConfig, path: str, target: Any) -> None:
    """Refuse a value of a `_target_` section that its target's signature annotation does not allow."""
    hints = _annotations(target)
    for key, value in resolved_options(node).items():
        if key in hints and not accepts(hints[key], value):
            raise ConfigError(
                f"Invalid {path}.{key}={shown(value)}: {target_name(node)} takes {key} as "
                f"{describe(hints[key])}."
            )


@contextlib.contextmanager
def _trial() -> Iterator[None]:
    """Build an object only to see whether its library accepts the options: its notices, warnings and
    the process-wide torch settings a Trainer makes stay as they were."""
    import torch

    previous = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.benchmark,
        os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
        logging.root.manager.disable,
    )
    logging.disable(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
        torch.backends.cudnn.benchmark = previous[2]
        if previous[3] is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
        else:
            os.environ["CUBLAS_WORKSPACE_CONFIG"] = previous[3]
        logging.disable(previous[4])


def _one_line(exc: BaseException) -> str:
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip()).rstrip(".")
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def check_by_building(node: DictConfig, path: str, build: Callable[[dict[str, Any]], Any]) -> None:
    """Build the section's target with its options (`build` supplies what the run would), so the
    library's own checks judge the values; its refusal becomes a ConfigError naming the key.

    The key is found by putting each option back to the target's default in turn: the one whose default
    makes the build succeed is the one refused.
    """
    options = resolved_options(node)
    kwargs = {
        k: instantiate(v, _convert_="all") if isinstance(v, dict | list) else v for k, v in options.items()
    }
    with _trial():
        try:
            build(kwargs)
            return
        except Exception as exc:
            refusal = exc
        defaults = {
            name: p.default
            for name, p in inspect.signature(target_of(node, path)).parameters.items()
            if p.default is not inspect.Parameter.empty
        }
        changed = [k for k in kwargs if k in defaults and defaults[k] != options[k]]
        for key in changed:
            try:
                build(kwargs | {key: defaults[key]})
            except Exception:
                continue
            raise ConfigError(
                f"Invalid {path}.{key}={shown(options[key])}: {target_name(node)} refuses it "
                f"({_one_line(refusal)}). Its default is {key}={shown(defaults[key])}."
            ) from refusal
    settings = " ".join(
        f"{path}.{k}={shown(v)}" for k, v in options.items() if k in changed or k not in defaults
    )
    raise ConfigError(
        f"{target_name(node)} refuses {path} as set ({settings or 'its defaults'}): {_one_line(refusal)}. "
        "Change one of these values."
    ) from refusal


def _one_weight() -> list[Any]:
    import torch

    return [torch.nn.Parameter(torch.zeros(1))]


def _step_schedule(scheduler: Any) -> None:
    """A few steps: some schedules fail only when stepped (StepLR(step_size=0) divides by it)."""
    needs_metric = any(
        p.default is inspect.Parameter.empty
        for p in inspect.signature(scheduler.step).parameters.values()
        if p.kind is not inspect.Parameter.VAR_POSITIONAL and p.kind is not inspect.Parameter.VAR_KEYWORD
    )
    for _ in range(3):
        scheduler.optimizer.step()
        scheduler.step(0.0) if needs_metric else scheduler.step()


def check_training_sections(cfg: DictConfig) -> None:
    """The optimizer, the schedule and the Trainer, built with the run's options (on a one-weight
    model, without a logger or callbacks), so that torch and Lightning refuse a bad value at start-up."""
    import lightning as L

    optimizer_cls = target_of(cfg.optimizer, "optimizer")
    check_by_building(cfg.optimizer, "optimizer", lambda kw: optimizer_cls(_one_weight(), **kw))
    if cfg.scheduler is not None:
        scheduler_cls = target_of(cfg.scheduler, "scheduler")
        check_by_building(
            cfg.scheduler,
            "scheduler",
            lambda kw: _step_schedule(scheduler_cls(instantiate(cfg.optimizer)(_one_weight()), **kw)),
        )
    # A GPU run was checked against torch's view of the GPUs above; its trial Trainer is built on the CPU
    # so that it claims no device of the machine.
    on_cpu = {"accelerator": "cpu", "devices": 1} if cfg.trainer.accelerator in CUDA_ACCELERATORS else {}
    check_by_building(
        cfg.trainer, "trainer", lambda kw: L.Trainer(**(kw | on_cpu), logger=False, callbacks=[])
    )
    for key, low in TRAINER_MINIMUMS.items():
        value = cfg.trainer.get(key)
        if value is not None and value < low:
            raise ConfigError(
                f"Invalid trainer.{key}={value!r}: it must be an integer >= {low} (or null for Lightning's "
                "default)."
            )


# Counts that Lightning accepts when the Trainer is built and trips over only inside fit
TRAINER_MINIMUMS = {
    "accumulate_grad_batches": 1,
    "check_val_every_n_epoch": 1,
    "min_epochs": 0,
    "min_steps": 0,
    "num_sanity_val_steps": -1,
    "gradient_clip_val": 0,
}


CHOICE_SECTIONS = ("cell", "norm", "loss")  # `name` + `_target_` sections (seqlab.assemble)
# what the network passes to a cell or a norm itself: not keys of their config
SUPPLIED = {
    "cell": {"input_size", "hidden_size", "num_layers", "bidirectional", "dropout"},
    "norm": {"width"},
    "loss": set(),
}
TARGET_SECTIONS = ("task", *CHOICE_SECTIONS, "optimizer", "trainer")  # required


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError (one paragraph naming the bad value and what is allowed) on the first problem.

    Each section's own values are checked by what it instantiates (its signature, and its `check`
    classmethod where it has one); the rules here are the ones that span sections.
    """
    # torch-heavy imports here, not at module level: `seqlab --help` must not pay for them
    from lightning.pytorch.callbacks import Checkpoint

    from seqlab.assemble import choice_name, instantiate_choice
    from seqlab.models.norms import mixes_steps, width_multiple

    _check_schema_keys(cfg, SeqlabConfig, "")
    for section in TARGET_SECTIONS:
        if not isinstance(cfg.get(section), DictConfig) or "_target_" not in cfg[section]:
            raise ConfigError(
                f"The config has no '{section}' section with a _target_; choose one with {section}=<option>."
            )
    task_cls = _check_target_section(cfg.task, "task")
    _, _, loss_cls = (_check_target_section(cfg[s], s, {"name"}, SUPPLIED[s]) for s in CHOICE_SECTIONS)
    for path in ("optimizer", "trainer"):
        _check_target_section(cfg[path], path)
    if cfg.scheduler is not None:
        _check_target_section(cfg.scheduler, "scheduler")
    checkpoint_callbacks = []
    for name, callback in (cfg.callbacks or {}).items():
        if callback is not None:  # callbacks.<name>=null switches one off
            target = _check_target_section(callback, f"callbacks.{name}")
            if isinstance(target, type) and issubclass(target, Checkpoint):
                checkpoint_callbacks.append(f"callbacks.{name}")
    if cfg.trainer.get("enable_checkpointing") is False and checkpoint_callbacks:
        # else Lightning refuses it only inside fit, after the MLflow run exists
        raise ConfigError(
            f"trainer.enable_checkpointing=false, but {' and '.join(checkpoint_callbacks)} "
            f"{'save' if len(checkpoint_callbacks) > 1 else 'saves'} checkpoints, which Lightning does not "
            f"allow together. To save none, switch {'them' if len(checkpoint_callbacks) > 1 else 'it'} off "
            f"too ({' '.join(c + '=null' for c in checkpoint_callbacks)}); to keep them, leave "
            "trainer.enable_checkpointing at null, the default (on while a checkpoint callback is)."
        )
    if cfg.trainer.get("barebones"):  # else Lightning refuses it inside fit, after the MLflow run exists
        raise ConfigError(
            "trainer.barebones=true switches off what a seqlab run is made of: its logger (the MLflow run), "
            "self.log (every metric) and its checkpoints (what a resume starts from), and Lightning refuses "
            "it together with them. Allowed: false, the default."
        )

    model = cfg.model
    shape = NetworkOptions(**{f.name: model[f.name] for f in fields(NetworkOptions)})
    shape.check()
    if model.param_budget is not None:
        at_least(
            "model.param_budget",
            model.param_budget,
            1,
            " (trainable parameters, e.g. model.param_budget=20000)",
        )

    norm = instantiate_choice(cfg.norm)
    norm_label = f"norm={choice_name(cfg.norm)}"
    width, multiple = shape.width, width_multiple(norm)
    directions = "2 directions" if shape.bidirectional else "1 direction"
    budgeted = model.param_budget is not None  # the budget search picks a width that divides
    if width % multiple and not budgeted:
        options = " ".join(
            f"norm.{k}={v}" for k, v in cfg.norm.items() if k not in _INSTANTIATE_KEYS | {"name"}
        )
        multiples = [d for d in range(1, width + 1) if width % d == 0]
        raise ConfigError(
            f"{norm_label} ({options}) needs a recurrent output width that is a multiple of {multiple}, but "
            f"it is {width} (model.hidden_size={shape.hidden_size} x {directions}). Choose options whose "
            f"multiple divides {width} ({', '.join(map(str, multiples))}), or another model.hidden_size."
        )
    if shape.readout == "attention" and width % shape.attention_heads and not budgeted:
        raise ConfigError(
            f"model.attention_heads={shape.attention_heads} does not divide the recurrent output width "
            f"{width} (model.hidden_size={shape.hidden_size} x {directions}); nn.MultiheadAttention needs a "
            "divisor."
        )

    if task_cls.kind not in loss_cls.kinds:
        raise ConfigError(
            f"loss={choice_name(cfg.loss)} does not fit task={task_cls.name}, a {task_cls.kind} task. "
            f"Losses for {task_cls.kind} tasks: {', '.join(packaged_losses_for(task_cls.kind))}."
        )
    if task_cls.per_step and shape.frontend == "conv1d" and shape.pool != "none":
        raise ConfigError(
            f"model.pool={shape.pool} shortens the sequence, but task={task_cls.name} predicts at every "
            "time step; use model.pool=none with this task."
        )
    lookahead = {  # a setting -> (is it set, how it lets the output at a step depend on later steps)
        "model.bidirectional=true": (
            shape.bidirectional,
            "its backward direction runs from the sequence's end",
        ),
        "model.frontend=conv1d": (shape.frontend == "conv1d", "its kernel is centred on the step"),
        norm_label: (mixes_steps(norm), "it takes its statistics over all of a sequence's steps"),
    }
    culprits = [(setting, how) for setting, (present, how) in lookahead.items() if present]
    if getattr(task_cls, "causal", False) and culprits:
        setting, how = culprits[0]
        raise ConfigError(
            f"{setting} lets the prediction at a step see later steps ({how}), but task={task_cls.name} "
            "predicts the next step from the past only; use model.bidirectional=false, model.frontend=none "
            "and a norm that works per step (norm=none, layer or batch)."
        )
    if cfg.trainer.accelerator in CUDA_ACCELERATORS:  # else Lightning's "No supported gpu backend found!"
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(
                f"trainer.accelerator={cfg.trainer.accelerator} asks for a CUDA GPU, but torch "
                f"{torch.__version__} sees none here (torch.cuda.is_available() is False); use "
                "trainer.accelerator=cpu (the default, exactly reproducible) or auto (a GPU where there is "
                "one, else the CPU)."
            )
    check_training_sections(cfg)
    if cfg.published is not None:
        check_published(cfg)
    at_least("seed", cfg.seed, 0)
    if cfg.torch_threads is not None:
        at_least("torch_threads", cfg.torch_threads, 1)
    if cfg.tracking.outage_wait_s < 0:
        raise ConfigError(
            f"Invalid tracking.outage_wait_s={cfg.tracking.outage_wait_s}: it must be >= 0 seconds."
        )


def packaged_losses_for(kind: Any) -> list[str]:
    """The names of seqlab's own loss options (conf/loss) that fit a task kind, in file order."""
    from importlib.resources import files

    fitting = []
    for entry in sorted(files("seqlab.conf").joinpath("loss").iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml"):
            node = cast(DictConfig, OmegaConf.create(entry.read_text()))  # a conf/ file is a mapping
            if kind in get_object(node._target_).kinds:
                fitting.append(str(node.get("name", entry.name.removesuffix(".yaml"))))
    return fitting


def check_published(cfg: DictConfig) -> None:
    """A typo in a preset's published block would silently show no paper numbers; refuse it at start-up."""
    published = cfg.published
    unset = [f"published.{key}" for key in ("source", "metric") if OmegaConf.is_missing(published, key)]
    if unset:
        raise ConfigError(
            f"{' and '.join(unset)} must be set: published numbers need the paper they come from "
            "and the test metric they compare with (see conf/experiment/chung2014.yaml)."
        )
    if not published.metric.startswith(f"{names.TEST}/"):
        raise ConfigError(
            f"Invalid published.metric={published.metric!r}: seqlab-compare ranks test metrics, "
            "so it must name one, e.g. test/nll or test/loss."
        )
    for key in [published.by, *flatten(OmegaConf.to_container(published.setting))]:  # as the params name them
        if OmegaConf.select(cfg, key, default=_ABSENT) is _ABSENT:
            raise ConfigError(
                f"published: {key!r} is not a key of the config (published.by and the keys under "
                "published.setting name config keys, e.g. cell.name or task.dataset)."
            )


# --- command-line checks (preflight and seqlab-rerun see the overrides themselves) ---------------

RESUME_KEEPS = (
    "tracking.uri",
    "tracking.experiment",
    "torch_threads",
)  # where and how fast; the rest is the run's


def check_override_keys(keys: list[str]) -> None:
    """Refuse combinations that only the command line can reveal (the composed config hides them)."""
    if "model.param_budget" in keys and "model.hidden_size" in keys:
        raise ConfigError(
            "model.param_budget and model.hidden_size are both set: a parameter budget chooses the hidden "
            "size of each cell itself. Set one of them (model.param_budget=20000, or model.hidden_size=64)."
        )
    if "resume" in keys:
        extra = [k for k in keys if k != "resume" and k not in RESUME_KEEPS and not k.startswith("hydra")]
        if extra:
            raise ConfigError(
                f"resume=<run id> takes the whole config from that run, so {', '.join(extra)} cannot be set "
                f"with it (only {', '.join(RESUME_KEEPS)}). To train a run again with changes, use "
                "`seqlab-rerun <run id> key=value ...`."
            )
