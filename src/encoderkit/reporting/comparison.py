"""The comparison report of `encoderkit compare`: one table of strategies and overlaid curves.

Like the run report: data in (`StrategyResult`s), one self-contained HTML page and PNG files out.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from encoderkit.atomic import write_atomic
from encoderkit.reporting import plots
from encoderkit.reporting.formats import format_number
from encoderkit.reporting.report import (
    _PAGE,
    _STYLE,
    PlotSpec,
    _section,
    plots_section,
)
from encoderkit.version import __version__


@dataclass
class StrategyResult:
    """One strategy's finished run, as read back from its run folder."""

    strategy: str
    metrics: dict[str, Any]  # metrics.json
    log: list[dict[str, Any]]  # log.jsonl
    metric: str  # the eval metric that selected its best checkpoint (e.g. "accuracy", "f1")

    def before(self) -> float | None:
        """The eval metric at step 0, before any training (None without a step-0 evaluation)."""
        for entry in self.log:
            if entry.get("step") == 0 and f"eval_{self.metric}" in entry:
                return float(entry[f"eval_{self.metric}"])
        return None

    def row(self) -> dict[str, Any]:
        """The strategy's line of comparison.json and of the report table."""
        m = self.metrics
        trainable, total = int(m["trainable_params"]), int(m["total_params"])
        return {
            "strategy": self.strategy,
            "trainable_params": trainable,
            "total_params": total,
            "trainable_pct": round(100 * trainable / total, 3),
            "train_runtime_s": m.get("train_runtime_s"),
            "peak_memory_mb": m.get("peak_memory_mb"),
            "train_samples_per_s": m.get("train_samples_per_s"),
            f"before_{self.metric}": self.before(),
            **{k: v for k, v in m.items() if k not in _NOT_QUALITY},
        }


# metrics.json keys that are bookkeeping, not final quality metrics.
_NOT_QUALITY = {
    "trainable_params", "total_params", "train_runtime_s", "train_samples_per_s", "best_step", "steps",
    "wall_time_s", "peak_memory_mb", "null_threshold",
}  # fmt: skip


def comparison_rows(results: list[StrategyResult]) -> list[dict[str, Any]]:
    return [r.row() for r in results]


def rows_table(rows: list[dict[str, Any]], table_id: str = "comparison") -> str:
    """All rows under the union of their keys (first-seen order); missing cells stay empty."""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = []
    for row in rows:
        cells = []
        for c in columns:
            value = row.get(c)
            text = "" if value is None else format_number(value) if not isinstance(value, str) else value
            cls = ' class="num"' if isinstance(value, int | float) else ""
            cells.append(f"<td{cls}>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table id="{table_id}">\n<tr>{head}</tr>\n' + "\n".join(body) + "\n</table>"


def comparison_plots(results: list[StrategyResult]) -> list[tuple[PlotSpec, bytes]]:
    """Training loss and the selecting eval metric of every strategy, each on one figure."""
    logs = {r.strategy: r.log for r in results}
    metric = results[0].metric if results else "metric"
    candidates = [
        ("loss.png", "Training loss by step, all strategies",
         plots.overlaid_curves(logs, "loss", "training loss", "Training loss")),
        (f"eval_{metric}.png", f"Evaluation {metric} by step (step 0: before training), all strategies",
         plots.overlaid_curves(logs, f"eval_{metric}", metric, f"Evaluation {metric}")),
    ]  # fmt: skip
    return [(PlotSpec(name, alt, _already(png)), png) for name, alt, png in candidates if png is not None]


def _already(png: bytes) -> Callable[[Any], bytes]:
    """A PlotSpec renderer for a plot that is already rendered."""
    return lambda _inputs: png


def render_comparison(
    title: str, rows: list[dict[str, Any]], rendered: list[tuple[PlotSpec, bytes]], notes: list[str]
) -> str:
    links = " · ".join(
        f'<a href="{html.escape(r["strategy"])}/report.html">{html.escape(r["strategy"])}</a>' for r in rows
    )
    sections = [
        _section("Strategies", rows_table(rows) + f"\n<p>Run reports: {links}</p>"),
        plots_section(rendered),
    ]
    if notes:
        items = "\n".join(f"<li>{html.escape(n)}</li>" for n in notes)
        sections.append(_section("Setup", f"<ul>\n{items}\n</ul>"))
    return _PAGE.substitute(
        title=html.escape(title), style=_STYLE, sections="\n".join(sections), version=html.escape(__version__)
    )


def write_comparison_report(
    folder: Path, title: str, results: list[StrategyResult], notes: list[str]
) -> Path:
    """Write folder/report.html and folder/plots/*.png; return the HTML's path."""
    plot_dir = folder / "plots"
    plot_dir.mkdir(parents=True, exist_ok=True)
    rendered = comparison_plots(results)
    for spec, png in rendered:
        write_atomic(plot_dir / spec.filename, png)
    report = folder / "report.html"
    page = render_comparison(title, comparison_rows(results), rendered, notes)
    write_atomic(report, page.encode("utf-8"))
    return report
