"""Range checks shared by the modules that validate their own options (tasks, cells, norms, the network).

Each raises a ConfigError naming the config key, its value and what is allowed.
"""

from collections.abc import Iterable
from typing import Any

from seqlab.errors import ConfigError


def one_of(key: str, value: Any, allowed: Iterable[Any]) -> None:
    allowed = list(allowed)
    if value not in allowed:
        raise ConfigError(f"Invalid {key}={value!r}. Allowed: {', '.join(map(str, allowed))}.")


def at_least(key: str, value: Any, low: int, hint: str = "") -> None:
    """Refuse anything but an integer >= low (a bool is not an integer here)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ConfigError(f"Invalid {key}={value!r}: it must be an integer >= {low}{hint}.")


def season_length(value: Any, window: Any) -> None:
    """task.season: a season length the input window holds (the seasonal naive baseline looks one back)."""
    if value is not None:
        at_least("task.season", value, 1, ", or null")
        if isinstance(window, int) and value > window:
            raise ConfigError(
                f"Invalid task.season={value}: the input window (task.window={window}) must hold a whole "
                "season for the seasonal naive baseline to look one season back; use a season <= window."
            )


def probability(key: str, value: Any) -> None:
    """A float in [0, 1), such as a dropout rate."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value < 1.0:
        raise ConfigError(f"Invalid {key}={value!r}: it must be a probability in [0, 1).")
