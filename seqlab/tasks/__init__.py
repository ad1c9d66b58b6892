"""Tasks: each a LightningDataModule behind the small `Task` interface, selected with task=<name>."""

from seqlab.tasks.base import Task, TaskKind, TaskSpec

__all__ = ["Task", "TaskKind", "TaskSpec"]
