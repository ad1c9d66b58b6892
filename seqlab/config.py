"""The config schema (dataclasses in Hydra's ConfigStore) and the checks Hydra cannot express.

Typed sections (cell, model, norm, tracking, paths) reject a wrong type at composition; `validate`
rejects bad values, impossible combinations and typo'd keys of `_target_` sections (task, loss,
optimizer, scheduler, trainer, callbacks) before any data is built or any MLflow run is created.
"""

import difflib
import inspect
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, get_args

from hydra.core.config_store import ConfigStore
from hydra.utils import get_object
from omegaconf import DictConfig, OmegaConf

from seqlab import names
from seqlab.errors import ConfigError
from seqlab.tracking.params import flatten


@dataclass
class CellConfig:
    name: str = "lstm"  # rnn | lstm | gru: torch.nn.RNN / LSTM / GRU
    nonlinearity: str = "tanh"  # rnn only: tanh | relu


@dataclass
class ModelConfig:
    _target_: str = "seqlab.models.network.build_network"
    hidden_size: int = 64
    param_budget: int | None = None  # trainable parameters to match; chooses hidden_size (models/budget.py)
    num_layers: int = 1
    bidirectional: bool = False
    dropout: float = 0.0  # between stacked recurrent layers and before the head
    activation: str = "relu"  # the head's hidden activation (and the conv front-end's)
    readout: str = "last"  # how a sequence becomes one vector: last | mean | max | attention
    attention_heads: int = 1  # heads of the attention readout
    head_hidden: int | None = None  # width of the head's hidden layer; None: hidden_size; 0: a linear head
    frontend: str = "none"  # none | conv1d
    conv_channels: int = 32
    conv_kernel: int = 3
    pool: str = "none"  # conv1d downsampling: none | max | avg
    pool_size: int = 2
    embedding_dim: int = 16  # tasks with discrete symbols feed them through nn.Embedding


@dataclass
class NormConfig:
    name: str = "none"  # none | batch | layer | group, applied to the recurrent outputs
    num_groups: int = 1  # group only: must divide the recurrent output width


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
    setting: dict[str, Any] = field(default_factory=dict)  # config values the numbers assume, nested as the config


@dataclass
class SeqlabConfig:
    cell: CellConfig = field(default_factory=CellConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    norm: NormConfig = field(default_factory=NormConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
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


def _choice(key: str, value: Any, allowed) -> None:
    if value not in allowed:
        raise ConfigError(f"Invalid {key}={value!r}. Allowed: {', '.join(map(str, allowed))}.")


def at_least(key: str, value: Any, low: int, hint: str = "") -> None:
    """Refuse anything but an integer >= low (a bool is not an integer here)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ConfigError(f"Invalid {key}={value!r}: it must be an integer >= {low}{hint}.")


def check_batch_limits(trainer: DictConfig, batches: dict[str, int], batch_size: int) -> None:
    """A fractional trainer.limit_<split>_batches must keep one batch of the built split.

    Lightning finds out only inside fit, after the run exists; the batch counts are known once the data is.
    """
    for split, count in batches.items():
        limit = trainer.get(f"limit_{split}_batches")
        if isinstance(limit, float) and 0 < limit < 1 and int(count * limit) == 0:
            raise ConfigError(
                f"Invalid trainer.limit_{split}_batches={limit}: it keeps no batch of the {count} {split} "
                f"batches (task.batch_size={batch_size}). Use a fraction of at least {1 / count:.3g}, or a whole "
                f"number of batches such as trainer.limit_{split}_batches=1."
            )


def _unknown_key(path: str, key: str, allowed: set[str]) -> ConfigError:
    """`path` is the section ("model"), or "" / "<root>" for top-level keys."""
    prefix = "" if path in ("", "<root>") else f"{path}."
    close = difflib.get_close_matches(key, sorted(allowed), n=1)
    hint = f" Did you mean '{prefix}{close[0]}'?" if close else ""
    where = f"under '{path}'" if prefix else "at the top level"
    return ConfigError(f"Unknown config key '{prefix}{key}'.{hint} Keys allowed {where}: {', '.join(sorted(allowed))}.")


def _check_schema_keys(node: DictConfig, schema: type, path: str) -> None:
    """Keys added with `+key=...` on top of a typed section are typos too."""
    allowed = {f.name for f in fields(schema)}
    for key in node.keys():
        if key not in allowed:
            raise _unknown_key(path, str(key), allowed)
        sub = next(f for f in fields(schema) if f.name == key).type
        optional = [t for t in get_args(sub) if t is not type(None)]  # PublishedConfig | None -> PublishedConfig
        sub = optional[0] if len(optional) == 1 else sub
        if is_dataclass(sub) and isinstance(node[key], DictConfig):
            _check_schema_keys(node[key], sub, f"{path}.{key}" if path else str(key))


def target_of(node: DictConfig, path: str) -> Any:
    try:
        return get_object(node._target_)
    except Exception as exc:
        raise ConfigError(f"Cannot import {path}._target_={node._target_!r}: {exc}.") from exc


def _check_target_section(node: DictConfig, path: str) -> Any:
    """Every key of a `_target_` section must be a parameter of what it instantiates, and a target with a
    `check(options)` classmethod (a task, weight noise) refuses bad values here, not inside instantiate.
    Returns the target."""
    target = target_of(node, path)
    params = inspect.signature(target).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        allowed = {p for p in params if p not in {"self", "args", "kwargs"}}
        for key in node.keys():
            if key not in _INSTANTIATE_KEYS and key not in allowed:
                raise _unknown_key(path, str(key), allowed)
    check = getattr(target, "check", None)
    if inspect.ismethod(check):  # a classmethod; another library's target may have an unrelated `check`
        check(node)
    return target


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError (one paragraph naming the bad value and what is allowed) on the first problem."""
    # torch-heavy imports here, not at module level: `seqlab --help` must not pay for them
    from lightning.pytorch.callbacks import Checkpoint

    from seqlab.models.losses import LOSSES, criterion_options, losses_for
    from seqlab.models.network import ACTIVATIONS, CELLS, FRONTENDS, NONLINEARITIES, NORMS, POOLS, READOUTS

    _check_schema_keys(cfg, SeqlabConfig, "")
    for section in ("task", "loss", "optimizer", "trainer"):
        if not isinstance(cfg.get(section), DictConfig) or "_target_" not in cfg[section]:
            raise ConfigError(f"The config has no '{section}' section with a _target_; choose one with {section}=<option>.")
    task_cls = _check_target_section(cfg.task, "task")
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
            f"{'save' if len(checkpoint_callbacks) > 1 else 'saves'} checkpoints, which Lightning does not allow "
            f"together. To save none, switch {'them' if len(checkpoint_callbacks) > 1 else 'it'} off too "
            f"({' '.join(c + '=null' for c in checkpoint_callbacks)}); to keep them, leave "
            "trainer.enable_checkpointing at null, the default (on while a checkpoint callback is)."
        )
    if cfg.trainer.get("barebones"):  # else Lightning refuses it inside fit, after the MLflow run exists
        raise ConfigError(
            "trainer.barebones=true switches off what a seqlab run is made of: its logger (the MLflow run), "
            "self.log (every metric) and its checkpoints (what a resume starts from), and Lightning refuses it "
            "together with them. Allowed: false, the default. To see what Lightning's loop costs at its leanest, "
            "run `seqlab-bench overhead`: its line \"Lightning in its barebones mode\" times this mode against a "
            "bare PyTorch loop."
        )

    cell, model, norm = cfg.cell, cfg.model, cfg.norm
    _choice("cell.name", cell.name, list(CELLS))
    _choice("cell.nonlinearity", cell.nonlinearity, NONLINEARITIES)
    at_least("model.hidden_size", model.hidden_size, 1, " (e.g. model.hidden_size=64)")
    if model.param_budget is not None:
        at_least("model.param_budget", model.param_budget, 1, " (trainable parameters, e.g. model.param_budget=20000)")
    at_least("model.num_layers", model.num_layers, 1)
    if not 0.0 <= model.dropout < 1.0:
        raise ConfigError(f"Invalid model.dropout={model.dropout}: it must be a probability in [0, 1).")
    _choice("model.activation", model.activation, list(ACTIVATIONS))
    _choice("model.readout", model.readout, READOUTS)
    _choice("model.frontend", model.frontend, FRONTENDS)
    _choice("model.pool", model.pool, list(POOLS))
    for key in ("attention_heads", "conv_channels", "conv_kernel", "pool_size", "embedding_dim"):
        at_least(f"model.{key}", model[key], 1)
    if model.head_hidden is not None:
        at_least("model.head_hidden", model.head_hidden, 0)
    _choice("norm", norm.name, NORMS)
    at_least("norm.num_groups", norm.num_groups, 1)

    width = model.hidden_size * (2 if model.bidirectional else 1)
    directions = "2 directions" if model.bidirectional else "1 direction"
    budgeted = model.param_budget is not None  # the budget search picks a width that divides
    if norm.name == "group" and width % norm.num_groups and not budgeted:
        divisors = [d for d in range(1, width + 1) if width % d == 0]
        raise ConfigError(
            f"norm.num_groups={norm.num_groups} does not divide the recurrent output width {width} "
            f"(model.hidden_size={model.hidden_size} x {directions}); GroupNorm needs a divisor of {width}: "
            f"{', '.join(map(str, divisors))}."
        )
    if model.readout == "attention" and width % model.attention_heads and not budgeted:
        raise ConfigError(
            f"model.attention_heads={model.attention_heads} does not divide the recurrent output width {width} "
            f"(model.hidden_size={model.hidden_size} x {directions}); nn.MultiheadAttention needs a divisor."
        )

    loss_name = cfg.loss.get("name")
    _choice("loss", loss_name, list(LOSSES))
    if task_cls.kind not in LOSSES[loss_name].kinds:
        raise ConfigError(
            f"loss={loss_name} does not fit task={task_cls.name}, a {task_cls.kind} task. "
            f"Losses for {task_cls.kind} tasks: {', '.join(losses_for(task_cls.kind))} "
            f"(the task's default is {task_cls.default_loss})."
        )
    options = set(cfg.loss.keys()) - _INSTANTIATE_KEYS - {"name"}
    for key in options:
        if key not in criterion_options(loss_name):
            raise _unknown_key("loss", key, criterion_options(loss_name) | {"name"})
    if task_cls.per_step and model.frontend == "conv1d" and model.pool != "none":
        raise ConfigError(
            f"model.pool={model.pool} shortens the sequence, but task={task_cls.name} predicts at every "
            "time step; use model.pool=none with this task."
        )
    lookahead = {  # a setting -> (is it set, how it lets the output at a step depend on later steps)
        "model.bidirectional=true": (model.bidirectional, "its backward direction runs from the sequence's end"),
        "model.frontend=conv1d": (model.frontend == "conv1d", "its kernel is centred on the step"),
        "norm=group": (norm.name == "group", "GroupNorm takes its statistics over all of a sequence's steps"),
    }
    culprits = [(setting, how) for setting, (present, how) in lookahead.items() if present]
    if getattr(task_cls, "causal", False) and culprits:
        setting, how = culprits[0]
        raise ConfigError(
            f"{setting} lets the prediction at a step see later steps ({how}), but task={task_cls.name} "
            "predicts the next step from the past only; use model.bidirectional=false, model.frontend=none "
            "and norm=none, layer or batch (per step, or running statistics at evaluation)."
        )
    if cfg.trainer.accelerator in CUDA_ACCELERATORS:  # else Lightning's "No supported gpu backend found!"
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(
                f"trainer.accelerator={cfg.trainer.accelerator} asks for a CUDA GPU, but torch {torch.__version__} "
                "sees none here (torch.cuda.is_available() is False); use trainer.accelerator=cpu (the default, "
                "exactly reproducible) or auto (a GPU where there is one, else the CPU)."
            )
    if cfg.published is not None:
        check_published(cfg)
    at_least("seed", cfg.seed, 0)
    if cfg.torch_threads is not None:
        at_least("torch_threads", cfg.torch_threads, 1)
    if cfg.tracking.outage_wait_s < 0:
        raise ConfigError(f"Invalid tracking.outage_wait_s={cfg.tracking.outage_wait_s}: it must be >= 0 seconds.")


def check_published(cfg: DictConfig) -> None:
    """A typo in a preset's published block would silently show no paper numbers; refuse it at start-up."""
    published = cfg.published
    unset = [f"published.{key}" for key in ("source", "metric") if OmegaConf.is_missing(published, key)]
    if unset:
        raise ConfigError(f"{' and '.join(unset)} must be set: published numbers need the paper they come from "
                          "and the test metric they compare with (see conf/experiment/chung2014.yaml).")
    if not published.metric.startswith(f"{names.TEST}/"):
        raise ConfigError(f"Invalid published.metric={published.metric!r}: seqlab-compare ranks test metrics, "
                          "so it must name one, e.g. test/nll or test/loss.")
    for key in [published.by, *flatten(OmegaConf.to_container(published.setting))]:  # as the params name them
        if OmegaConf.select(cfg, key, default=_ABSENT) is _ABSENT:
            raise ConfigError(f"published: {key!r} is not a key of the config (published.by and the keys under "
                              "published.setting name config keys, e.g. cell.name or task.dataset).")


# --- command-line checks (preflight and seqlab-rerun see the overrides themselves) ---------------

RESUME_KEEPS = ("tracking.uri", "tracking.experiment")  # where the run is; everything else comes from it


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
