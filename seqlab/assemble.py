"""Objects from config sections, built one way for training, serving and reports.

A choice section (`cell`, `norm`, `loss`) is a `_target_` with its options plus an optional `name`: how
runs and reports call the choice (the param `cell.name=gru`). The name is not passed to the target.
"""

from collections.abc import Mapping
from typing import Any

from hydra.utils import get_object, instantiate
from omegaconf import DictConfig, OmegaConf

CHOICE_NAME = "name"


def without_name(node: DictConfig) -> DictConfig:
    return OmegaConf.masked_copy(node, [str(k) for k in node if k != CHOICE_NAME])


def instantiate_choice(node: DictConfig) -> Any:
    """The object a choice section builds (a functools.partial where the section is `_partial_`)."""
    return instantiate(without_name(node))


def choice_name(node: DictConfig) -> str:
    """The choice's name: its `name` key, else its target's class name in lower case (torch.nn.GRU -> gru)."""
    name = node.get(CHOICE_NAME)
    return str(name) if name else str(node._target_).rsplit(".", 1)[-1].lower()


def choice_class(node: DictConfig) -> Any:
    return get_object(node._target_)


def network(sections: Mapping[str, Any] | DictConfig, spec: Any, loss: Any = None) -> Any:
    """The network of a config's `model`, `cell` and `norm` sections for a task, ending as `loss` needs
    (instantiated from the `loss` section when not given)."""
    sections = sections if isinstance(sections, DictConfig) else OmegaConf.create(dict(sections))
    loss = loss if loss is not None else instantiate_choice(sections.loss)
    build = instantiate(sections.model, _partial_=True)
    return build(
        spec=spec,
        cell=instantiate_choice(sections.cell),
        norm=instantiate_choice(sections.norm),
        output_layer=loss.output_layer(),
    )
