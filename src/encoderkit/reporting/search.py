"""The report of `encoderkit tune`: the trials table and Optuna's own plots (matplotlib, offline):
the optimisation history, the parameter importances and every trial's evaluations, the pruned
ones stopping early."""

from __future__ import annotations

import html
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from encoderkit.atomic import write_atomic
from encoderkit.reporting import plots
from encoderkit.reporting.comparison import rows_table
from encoderkit.reporting.report import _PAGE, _STYLE, PlotSpec, _section, plots_section
from encoderkit.version import __version__


def search_plots(study: Any, metric: str) -> list[tuple[PlotSpec, bytes]]:
    """Each of Optuna's plots that the study has enough trials for (importances need two
    finished trials with different parameters, for instance); the others are left out."""
    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as ovm

    candidates: list[tuple[str, str, Callable[[Any], Any]]] = [
        ("history.png", f"Optimisation history: each trial's {metric}, and the best so far",
         ovm.plot_optimization_history),
        ("importances.png", "Parameter importances (fANOVA)", ovm.plot_param_importances),
        ("intermediate.png", f"Every trial's evaluations ({metric} by step); pruned trials stop early",
         ovm.plot_intermediate_values),
    ]  # fmt: skip
    rendered = []
    for filename, alt, plot in candidates:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
            try:
                axes = plot(study)
            except (ValueError, RuntimeError):  # too few trials for this plot
                continue
        figure = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
        figure.set_size_inches(7, 4)
        png = plots.figure_png(figure)
        plt.close(figure)
        rendered.append((PlotSpec(filename, alt, _already(png)), png))
    return rendered


def _already(png: bytes) -> Callable[[Any], bytes]:
    return lambda _inputs: png


def write_search_report(folder: Path, study: Any, rows: list[dict[str, Any]], metric: str) -> Path:
    """folder/report.html (and plots/*.png): the trials, best first in the table's note."""
    rendered = search_plots(study, metric)
    (folder / "plots").mkdir(exist_ok=True)
    for spec, png in rendered:
        write_atomic(folder / "plots" / spec.filename, png)
    best = study.best_trial
    note = (
        f"<p>Best: trial {best.number}, {html.escape(metric)} {best.value:.4f} "
        f"(<code>encoderkit train --config best.yaml</code> re-runs it). "
        f"Trial folders: <code>trials/NNN/</code>, each with its own report.</p>"
    )
    sections = [_section("Trials", rows_table(rows, "trials") + note), plots_section(rendered)]
    page = _PAGE.substitute(
        title=f"encoderkit tune: {html.escape(metric)}",
        style=_STYLE,
        sections="\n".join(sections),
        version=html.escape(__version__),
    )
    report = folder / "report.html"
    write_atomic(report, page.encode("utf-8"))
    return report
