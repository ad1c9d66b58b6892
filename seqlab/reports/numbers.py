"""How a report writes a figure, once: the verdict quotes the table's own strings, never its own rounding."""

import math


def fmt(x: float) -> str:
    """A mean, a bound, a time: four significant digits."""
    return "n/a" if math.isnan(x) else f"{x:.4g}"


def fmt_p(p: float) -> str:
    """A p-value: three significant digits."""
    return "n/a" if math.isnan(p) else f"{p:.3g}"
