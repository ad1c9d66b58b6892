"""seqlab: compare RNN, LSTM and GRU on sequence tasks, every run tracked in MLflow."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("seqlab")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
