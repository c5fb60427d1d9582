"""How numbers and config values read in the report and the model card (no plotting imports)."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any


def format_number(value: float) -> str:
    """Format a number for people, one way everywhere: ints with thousands separators; floats
    below 1 (scores, shares) with 4 decimals, larger ones (times, losses, speeds) with 2 and
    thousands separators; scientific notation when very small or very large; nan/inf spelled out."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if not math.isfinite(value):
        return str(value)
    magnitude = abs(value)
    if magnitude != 0 and (magnitude < 1e-3 or magnitude >= 1e7):
        return f"{value:.3e}"
    if magnitude >= 1:
        return f"{value:,.2f}"
    return f"{value:.4f}"


def format_value(value: Any) -> str:
    """Format a configuration value the way it reads in YAML: true/false, null, exact numbers."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def html_table(header: Sequence[str], rows: Sequence[Sequence[Any]], table_id: str) -> str:
    """An HTML table for a task's report section: escaped cells, numbers through format_number."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(format_number(cell))}</td>" for cell in row) + "</tr>"
        for row in rows
    )
    return f"<table id='{html.escape(table_id)}'><tr>{head}</tr>{body}</table>"
