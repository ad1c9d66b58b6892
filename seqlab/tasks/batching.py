"""Batches by index arithmetic: one tensor gather per batch, no per-sample Python on the hot path."""

from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Sampler


def gather_rows(source: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """source[rows] for an index tensor of any shape, via index_select on the flattened index.

    Faster than advanced indexing on CPU (`python -m benchmarks data` measures it): advanced indexing pays
    a multi-threaded kernel's overhead per call. Every batch of every task is cut with this.
    """
    return source.index_select(0, rows.reshape(-1)).view(*rows.shape, *source.shape[1:])


def batches_of(n: int, batch_size: int) -> int:
    """Batches an epoch of n examples (the last one may be short)."""
    return -(-n // batch_size)


class TensorSplit:
    """One split of a task as tensors with a shared first (example) dimension.

    Indexed with a whole tensor of example indices, it returns the batch in one gather per tensor.
    """

    def __init__(self, **tensors: torch.Tensor) -> None:
        sizes = {name: t.shape[0] for name, t in tensors.items()}
        if len(set(sizes.values())) != 1:
            raise ValueError(f"tensors of one split must share their first dimension, got {sizes}")
        self.tensors = tensors

    def __len__(self) -> int:
        return next(iter(self.tensors.values())).shape[0]

    def __getitem__(self, index: torch.Tensor) -> dict[str, torch.Tensor]:
        return {name: gather_rows(t, index) for name, t in self.tensors.items()}


class EpochBatchSampler(Sampler[torch.Tensor]):
    """Yields whole batches of indices; the shuffle order is a function of (seed, epoch) only.

    Lightning calls `set_epoch` at every epoch start (also after a resume), so a resumed epoch replays
    exactly the batches an uninterrupted run would have seen.

    With `lengths` (variable-length sequences padded per batch), batches hold sequences of similar length:
    a recurrent cell runs one step per padded time step, so random batches of MuseData cost 3.5 times
    the steps of sorted ones. Training batches sort on length times a random factor in [0.8, 1.2), so
    their make-up still changes every epoch, and are then shuffled; evaluation batches sort on length.
    """

    JITTER = 0.2  # the random factor's half-width: 0 is a fixed sort, large is back to random batches

    def __init__(
        self, n: int, batch_size: int, shuffle: bool, seed: int, lengths: torch.Tensor | None = None
    ) -> None:
        self.n, self.batch_size, self.shuffle, self.seed = n, batch_size, shuffle, seed
        self.lengths = lengths
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return batches_of(self.n, self.batch_size)

    def __iter__(self) -> Iterator[torch.Tensor]:
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        if self.lengths is None:
            order = torch.randperm(self.n, generator=gen) if self.shuffle else torch.arange(self.n)
            yield from order.split(self.batch_size)
            return
        key = self.lengths.double()
        if self.shuffle:
            key = key * (1 + self.JITTER * (2 * torch.rand(self.n, generator=gen, dtype=torch.float64) - 1))
        batches = key.argsort(stable=True).split(self.batch_size)
        if self.shuffle:
            batches = [batches[i] for i in torch.randperm(len(batches), generator=gen).tolist()]
        yield from batches


def batch_loader(
    split: TensorSplit, batch_size: int, shuffle: bool, seed: int, lengths: torch.Tensor | None = None
) -> DataLoader:
    """A DataLoader whose sampler hands whole index batches to the split (batch_size=None: no collation)."""
    sampler = EpochBatchSampler(len(split), batch_size, shuffle, seed, lengths)
    # A map-style dataset needs only __getitem__ and __len__; torch's stubs ask for a Dataset subclass.
    return DataLoader(split, batch_size=None, sampler=sampler, num_workers=0)  # type: ignore[arg-type]
