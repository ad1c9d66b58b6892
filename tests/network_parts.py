"""Cells and norms picked by their config option names, for tests that build networks without Hydra."""

import functools

from seqlab.models import cells, norms
from seqlab.models.options import NetworkOptions

CELLS = {"rnn": cells.RNN, "lstm": cells.LSTM, "gru": cells.GRU}
NORMS = {
    "none": norms.NoNorm,
    "batch": norms.StepBatchNorm,
    "layer": norms.StepLayerNorm,
    "group": norms.StepGroupNorm,
}


def parts(cell="lstm", norm="none", num_groups=1, nonlinearity="tanh", **options):
    """(cell factory, norm factory, NetworkOptions) as conf/cell/<cell>.yaml and conf/norm/<norm>.yaml
    build them."""
    cell_factory = functools.partial(cells.RNN, nonlinearity=nonlinearity) if cell == "rnn" else CELLS[cell]
    norm_factory = (
        functools.partial(norms.StepGroupNorm, num_groups=num_groups) if norm == "group" else NORMS[norm]
    )
    return cell_factory, norm_factory, NetworkOptions(**options)
