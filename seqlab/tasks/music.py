"""Polyphonic music (Boulanger-Lewandowski et al., 2012): predict the next step's 88 piano keys.

Sequences differ in length (MuseData's longest is thousands of steps), so a split is kept as one flat
(total steps, 88) tensor with each sequence's offset and length; a batch is padded only to its own
longest sequence, gathered in one indexing, with a mask of the real steps (padding never enters the loss).
Two options trade nothing in the evaluation for speed on the long datasets: `batch_by_length` (batches of
similar length, so less padding) and `train_chunk` (training examples of at most N steps, so more updates
an epoch for the same sequential steps); validation and test always run whole sequences.
"""

import copy
from pathlib import Path
from typing import ClassVar

import torch
from torch.nn import functional as F
from torchmetrics import Metric, MetricCollection

from seqlab.checks import at_least
from seqlab.errors import ConfigError, DataError
from seqlab.spec import TaskKind, TaskSpec
from seqlab.tasks import baselines
from seqlab.tasks.base import Task
from seqlab.tasks.batching import gather_rows
from seqlab.tasks.download import fetch

N_KEYS = 88  # column j is MIDI pitch 21 + j
FILES = {
    "jsb": "JSB_Chorales.mat",
    "nottingham": "Nottingham.mat",
    "musedata": "MuseData.mat",
    "pianomidi": "Piano_midi.mat",
}
MAT_KEYS = {"train": "traindata", "val": "validdata", "test": "testdata"}


class PaddedSequences:
    """Variable-length sequences as one flat tensor; batches are padded per batch, by index arithmetic.

    Example i is sequence i: inputs its steps [0, L-1), targets its steps [1, L), mask the L-1 real steps.
    """

    def __init__(self, sequences: list[torch.Tensor]) -> None:
        lengths = torch.tensor([len(s) for s in sequences])
        self.flat = torch.cat(sequences).to(torch.float32)  # (total steps, 88)
        self.offsets = torch.cumsum(lengths, 0) - lengths
        self.steps = lengths - 1  # predicted steps of each sequence

    def __len__(self) -> int:
        return len(self.steps)

    def __getitem__(self, index: torch.Tensor) -> dict[str, torch.Tensor]:
        steps = self.steps[index]  # (B,)
        t = torch.arange(int(steps.max()))  # (T,)
        mask = t < steps.unsqueeze(1)  # (B, T)
        rows = self.offsets[index].unsqueeze(1) + torch.minimum(t, (steps - 1).clamp(min=0).unsqueeze(1))
        x = gather_rows(self.flat, rows) * mask.unsqueeze(-1)  # (B, T, 88), zero past the end
        y = gather_rows(self.flat, rows + 1) * mask.unsqueeze(-1)
        return {"x": x, "y": y, "mask": mask}

    def target_frequencies(self) -> torch.Tensor:
        """How often each label is on over every predicted step (rows offset+1 .. offset+steps), (labels,)."""
        totals = torch.cat([torch.zeros(1, self.flat.shape[1]), self.flat.double().cumsum(dim=0)])
        first = self.offsets + 1
        on = (totals[first + self.steps] - totals[first]).sum(dim=0)  # per label, over every sequence
        return on / self.steps.sum()

    def chunked(self, steps: int) -> "PaddedSequences":
        """The same sequences cut into examples of at most `steps` predicted steps (the flat tensor is
        shared).

        Chunk k of a sequence predicts its steps [k*steps, (k+1)*steps); the network starts each chunk
        from a zero state. Used for training only: evaluation stays on whole sequences.
        """
        per_sequence = -(-self.steps // steps)  # chunks of each sequence
        sequence = torch.repeat_interleave(torch.arange(len(self.steps)), per_sequence)
        k = torch.arange(len(sequence)) - torch.repeat_interleave(
            torch.cumsum(per_sequence, 0) - per_sequence, per_sequence
        )
        chunks = copy.copy(self)
        chunks.offsets = self.offsets[sequence] + k * steps
        chunks.steps = torch.clamp(self.steps[sequence] - k * steps, max=steps)
        return chunks


def bernoulli_nll(logits: torch.Tensor, y: torch.Tensor, reduction: str = "none") -> torch.Tensor:
    """The Bernoulli NLL of each label (or their sum), from logits."""
    return F.binary_cross_entropy_with_logits(logits, y, reduction=reduction)


class BernoulliNLL(Metric):
    """Negative log-likelihood per time step of multi-label (piano-roll) outputs, as music papers report it.

    The sum of the per-label Bernoulli NLLs of a step, averaged over every step seen (not over labels, not
    per sequence). It reads logits: the module hands every metric `Loss.logits` of the network's output.
    """

    full_state_update = False
    higher_is_better = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("total", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("steps", default=torch.tensor(0), dist_reduce_fx="sum")

    total: torch.Tensor  # states added in __init__; torchmetrics' __getattr__ types them loosely
    steps: torch.Tensor

    def update(self, logits: torch.Tensor, y: torch.Tensor) -> None:  # (N steps, labels)
        self.total += bernoulli_nll(logits, y, reduction="sum").double()
        self.steps += logits.shape[0]

    def compute(self) -> torch.Tensor:
        return self.total / self.steps


class MusicTask(Task):
    """Next-step prediction of 88 binary notes; `nll` is the papers' negative log-likelihood per step."""

    name = "music"
    kind = TaskKind.MULTILABEL
    per_step = True
    causal = True
    DATASETS: ClassVar[tuple[str, ...]] = tuple(FILES)

    def __init__(
        self,
        dataset: str = "jsb",
        batch_size: int = 16,
        seed: int = 0,
        batch_by_length: bool = False,
        train_chunk: int | None = None,
    ) -> None:
        super().__init__(batch_size=batch_size, seed=seed)
        self.check({"dataset": dataset, "batch_by_length": batch_by_length, "train_chunk": train_chunk})
        self.dataset = dataset
        self.batch_by_length = batch_by_length
        self.train_chunk = train_chunk
        self.path: Path | None = None

    @classmethod
    def check(cls, options) -> None:
        if options.get("dataset") not in cls.DATASETS:
            raise ConfigError(
                f"Unknown task.dataset={options.get('dataset')!r} for task=music. Allowed: "
                f"{', '.join(cls.DATASETS)}."
            )
        if not isinstance(options.get("batch_by_length", False), bool):
            raise ConfigError(
                f"Invalid task.batch_by_length={options.get('batch_by_length')!r}: it must be true or false."
            )
        if options.get("train_chunk") is not None:
            at_least(
                "task.train_chunk",
                options["train_chunk"],
                1,
                " (predicted steps per training example), or null",
            )

    def build(self):
        from scipy.io import loadmat

        self.path = fetch(FILES[self.dataset])
        try:
            mat = loadmat(self.path)
        except Exception as exc:  # a verified file should load; anything else is a corrupt cache
            raise DataError(
                f"Cannot read {self.path} as a MATLAB file ({exc}); delete it to re-download."
            ) from exc
        splits = {}
        for split, key in MAT_KEYS.items():
            rolls = [torch.from_numpy(r.astype("uint8")) for r in mat[key].ravel()]
            if any(r.ndim != 2 or r.shape[1] != N_KEYS or r.shape[0] < 2 for r in rolls):
                raise DataError(f"{self.path} key {key!r}: every piano-roll must be (steps >= 2, {N_KEYS}).")
            splits[split] = PaddedSequences(rolls)
        if self.train_chunk is not None:
            splits["train"] = splits["train"].chunked(self.train_chunk)
        return splits

    def batch_lengths(self, split: str) -> torch.Tensor | None:
        if not self.batch_by_length:
            return None
        sequences = self.prepare()[split]
        assert isinstance(sequences, PaddedSequences)  # build() makes every split one
        return sequences.steps

    def spec(self) -> TaskSpec:
        return TaskSpec(kind=self.kind, input_size=N_KEYS, output_size=N_KEYS, per_step=True)

    def metrics(self) -> MetricCollection:
        return MetricCollection({"nll": BernoulliNLL()})

    def baselines(self, split: str) -> dict[str, float]:
        """Independent notes at their training frequencies, over the batches the model is scored on."""
        train = self.prepare()["train"]
        assert isinstance(train, PaddedSequences)  # build() makes every split one
        batches = self.val_dataloader() if split == "val" else self.test_dataloader()
        return baselines.note_frequencies(train.target_frequencies(), batches)

    def data_files(self) -> list[Path]:
        self.prepare()
        assert self.path is not None  # build() sets it
        return [self.path]
