"""Plots for the run report, each rendered to PNG bytes.

Every function takes plain data (log entries, lists of numbers) and returns the PNG as bytes, or
None when there is nothing to plot, so callers can write or embed the result without touching
matplotlib. Figures are always closed, even when rendering fails, so a long training process that
redraws the report after every evaluation does not accumulate them.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import matplotlib

# Headless: runs on servers and in CI with no display. Must be set before pyplot is imported.
matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

_DPI = 100
_SMOOTH_MIN_POINTS = 20  # smooth the loss only when there are more points than this
_ANNOTATE_MAX_LABELS = 20  # beyond this many classes, cell counts would be unreadable


def _is_number(value: Any) -> bool:
    """True for finite ints and floats, but not bools (which are ints in Python)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@contextmanager
def _figure(width: float, height: float, nrows: int = 1, ncols: int = 1) -> Iterator[tuple[Figure, Any]]:
    """Yield a new figure and its axes (a 2-D array of them); close the figure on exit."""
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, height), squeeze=False)
    try:
        yield fig, axes
    finally:
        plt.close(fig)


def step_axis(ax: Any) -> None:
    """An x axis of optimizer steps: labelled, and ticked at whole steps only (a short run would
    otherwise get ticks at 0.5, 1.5, ...)."""
    from matplotlib.ticker import MaxNLocator

    ax.set_xlabel("step")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _png(fig: Figure) -> bytes:
    """Render `fig` to PNG bytes. The "Software" tag is dropped so the file carries no URL."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=_DPI, bbox_inches="tight", metadata={"Software": None})
    return buffer.getvalue()


def figure_png(fig: Figure) -> bytes:
    """A figure drawn elsewhere (Optuna's plots) as the report's PNG."""
    return _png(fig)


def _step(entry: dict[str, Any], index: int) -> float:
    """The entry's step, or its position in the log when it has none."""
    step = entry.get("step")
    return float(step) if step is not None and _is_number(step) else float(index)


def smooth(values: list[float], weight: float = 0.9) -> list[float]:
    """Debiased exponential moving average (as in TensorBoard); same length as `values`."""
    smoothed: list[float] = []
    average = 0.0
    for i, value in enumerate(values, start=1):
        average = weight * average + (1 - weight) * value
        smoothed.append(average / (1 - weight**i))
    return smoothed


def loss_curve(log: list[dict[str, Any]]) -> bytes | None:
    """Training loss against step, from the log entries that have a numeric "loss".

    A smoothed line is drawn over the raw one when there are more than 20 points. Returns None
    when no entry has a loss.
    """
    points = [(_step(e, i), float(e["loss"])) for i, e in enumerate(log) if _is_number(e.get("loss"))]
    if not points:
        return None
    steps, losses = zip(*points, strict=True)
    with _figure(7, 4) as (fig, axes):
        ax = axes[0, 0]
        many = len(points) > _SMOOTH_MIN_POINTS
        ax.plot(
            steps,
            losses,
            color="tab:blue",
            alpha=0.35 if many else 1.0,
            marker="" if many else ".",
            label="loss",
        )
        if many:
            ax.plot(steps, smooth(list(losses)), color="tab:blue", linewidth=2, label="loss (smoothed)")
        step_axis(ax)
        ax.set(ylabel="training loss", title="Training loss")
        ax.grid(alpha=0.3)
        ax.legend()
        return _png(fig)


# Bookkeeping that is logged with each evaluation but is not a quality metric.
NOT_METRICS = ("_runtime_s", "_total", "_thresh")


def eval_metric_names(log: list[dict[str, Any]]) -> list[str]:
    """The numeric `eval_*` quality metrics found in `log`, in order of first appearance."""
    names: dict[str, None] = {}
    for entry in log:
        for key, value in entry.items():
            if key.startswith("eval_") and not key.endswith(NOT_METRICS) and _is_number(value):
                names.setdefault(key)
    return list(names)


def eval_curves(log: list[dict[str, Any]]) -> bytes | None:
    """One subplot per `eval_*` metric against step (points and lines).

    Separate axes keep metrics on different scales (loss, 0-1 accuracy, 0-100 SQuAD F1) readable.
    Returns None when the log has no evaluation entries.
    """
    names = eval_metric_names(log)
    if not names:
        return None
    ncols = min(3, len(names))
    nrows = math.ceil(len(names) / ncols)
    with _figure(4.2 * ncols, 3.2 * nrows, nrows, ncols) as (fig, axes):
        for ax, name in zip(axes.flat, names, strict=False):
            points = [(_step(e, i), float(e[name])) for i, e in enumerate(log) if _is_number(e.get(name))]
            steps, values = zip(*points, strict=True)
            ax.plot(steps, values, marker="o", color="tab:orange")
            step_axis(ax)
            ax.set(title=name.removeprefix("eval_"))
            ax.grid(alpha=0.3)
        for ax in list(axes.flat)[len(names) :]:
            ax.set_visible(False)
        fig.suptitle("Evaluation")
        fig.tight_layout()
        return _png(fig)


def length_histogram(lengths: list[int], max_length: int | None) -> bytes | None:
    """Histogram of token lengths, with a labelled vertical line at `max_length` when given.

    The line's label says what share of examples is longer than `max_length` (and so truncated
    or split into windows). Returns None when `lengths` is empty.
    """
    if not lengths:
        return None
    with _figure(7, 4) as (fig, axes):
        ax = axes[0, 0]
        ax.hist(lengths, bins=min(50, max(10, len(set(lengths)))), color="tab:blue", alpha=0.8)
        if max_length is not None:
            longer = sum(1 for n in lengths if n > max_length) / len(lengths)
            ax.axvline(
                max_length,
                color="tab:red",
                linestyle="--",
                label=f"max_length = {max_length} ({longer:.1%} longer)",
            )
            ax.legend()
        ax.set(xlabel="tokens per example", ylabel="examples", title=f"Token lengths (n = {len(lengths)})")
        ax.grid(alpha=0.3)
        return _png(fig)


def confusion_matrix_plot(matrix: list[list[int]], label_names: list[str]) -> bytes | None:
    """Annotated heatmap of a confusion matrix: rows are true labels, columns predicted ones.

    Returns None for an empty matrix. Raises ValueError when the matrix is not square or its
    size differs from the number of label names.
    """
    if not matrix:
        return None
    size = len(label_names)
    if len(matrix) != size or any(len(row) != size for row in matrix):
        raise ValueError(f"confusion matrix must be {size}x{size} to match the label names")
    side = max(4.0, 0.6 * size + 2)
    with _figure(side + 1, side) as (fig, axes):
        ax = axes[0, 0]
        image = ax.imshow(matrix, cmap="Blues")
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
        ticks = list(range(size))
        ax.set_xticks(
            ticks, label_names, rotation=45 if size > 3 else 0, ha="right" if size > 3 else "center"
        )
        ax.set_yticks(ticks, label_names)
        ax.set(xlabel="predicted", ylabel="true", title="Confusion matrix")
        if size <= _ANNOTATE_MAX_LABELS:
            _annotate_cells(ax, matrix)
        return _png(fig)


def _annotate_cells(ax: Any, matrix: list[list[int]]) -> None:
    """Write each count in its cell, white on dark cells and black on light ones."""
    peak = max(max(row) for row in matrix) or 1
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            color = "white" if count > peak / 2 else "black"
            ax.text(j, i, str(count), ha="center", va="center", color=color)


def overlaid_curves(runs: dict[str, list[dict[str, Any]]], key: str, ylabel: str, title: str) -> bytes | None:
    """One line per run of `key` against step (e.g. loss or eval_f1 of each strategy), on one axes.

    Long curves are smoothed so several runs stay readable. Returns None when no run logged `key`.
    """
    curves = {}
    for name, log in runs.items():
        points = [(_step(e, i), float(e[key])) for i, e in enumerate(log) if _is_number(e.get(key))]
        if points:
            curves[name] = points
    if not curves:
        return None
    with _figure(7, 4) as (fig, axes):
        ax = axes[0, 0]
        for name, points in curves.items():
            steps, values = zip(*points, strict=True)
            many = len(points) > _SMOOTH_MIN_POINTS
            ax.plot(steps, smooth(list(values)) if many else values, marker="" if many else "o", label=name)
        step_axis(ax)
        ax.set(ylabel=ylabel, title=title)
        ax.grid(alpha=0.3)
        ax.legend()
        return _png(fig)
