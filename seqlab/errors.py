"""The errors a user can cause and fix; each message is one paragraph that names the bad value.

Plain exceptions, so the tasks and models that raise them need no Hydra; the `seqlab` entry point hands
them to Hydra as a compact error (the message alone, no traceback; HYDRA_FULL_ERROR=1 still shows it).
"""

USAGE_ERROR = 2  # the exit status of every error a user can fix: a config, a data file, a store


class SeqlabError(Exception):
    """Something the user can fix: a bad config, a bad data file, a diverging run."""


class ConfigError(SeqlabError):
    """The composed configuration is invalid; raised before any data is built or any run is created."""


class DataError(SeqlabError):
    """A data file is missing, corrupt or unusable; raised before any MLflow run is created."""


class DivergedError(SeqlabError):
    """The training loss became NaN or infinite."""


class TrackingError(SeqlabError):
    """The MLflow tracking store cannot be reached or written."""
