"""How numbers and config values read in the report and the model card (no plotting imports)."""

from __future__ import annotations

import math
from typing import Any


def format_number(value: float) -> str:
    """Format a metric for people: ints as is, floats with 4 decimals (or in scientific notation
    when very small or very large), and nan/inf spelled out."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if not math.isfinite(value):
        return str(value)
    magnitude = abs(value)
    if magnitude != 0 and (magnitude < 1e-3 or magnitude >= 1e7):
        return f"{value:.3e}"
    if magnitude >= 1000:
        return f"{value:,.1f}"
    return f"{value:.4f}"


def format_value(value: Any) -> str:
    """Format a configuration value the way it reads in YAML: true/false, null, exact numbers."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
