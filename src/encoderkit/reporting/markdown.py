"""Markdown pieces for the model card: tables whose cells survive any text."""

from __future__ import annotations


def md_cell(text: str) -> str:
    """Make text safe inside a Markdown table cell."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def md_table(header: tuple[str, str], rows: list[tuple[str, str]]) -> str:
    """A two-column Markdown table."""
    lines = [f"| {header[0]} | {header[1]} |", "|---|---|"]
    lines += [f"| {md_cell(k)} | {md_cell(v)} |" for k, v in rows]
    return "\n".join(lines)
