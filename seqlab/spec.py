"""What a task's tensors are, told to the network: the one thing models and tasks both need.

Plain Python at the bottom of the package, so the network (torch only) and the tasks (Lightning) share it
without importing each other.
"""

from dataclasses import dataclass
from enum import StrEnum


class TaskKind(StrEnum):
    REGRESSION = "regression"
    CLASSIFICATION = "classification"
    MULTILABEL = "multi-label"
    SIMILARITY = "similarity"


@dataclass(frozen=True)
class TaskSpec:
    """What the network must know about a task's tensors to size its input and output layers."""

    kind: TaskKind
    input_size: int  # features per time step (ignored when vocab_size is set)
    output_size: int  # values predicted per example, or per step when per_step
    vocab_size: int | None = None  # discrete input symbols: fed through nn.Embedding
    per_step: bool = False  # one prediction per time step (B, T, out) instead of per sequence (B, out)
    # forecasting: the input features the outputs continue, in output order (outputs are time-major,
    # (B, horizon * len(target_inputs))); None where the outputs are not future values of input features
    target_inputs: tuple[int, ...] | None = None
