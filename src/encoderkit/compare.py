"""`encoderkit compare`: the same run under several strategies, side by side.

Each strategy trains in its own process (`python -m encoderkit train --config ...`), so its peak
memory is its own, a crash in one does not take the others down, and each DIR/<strategy>/ is an
ordinary run folder (with its own report, resumable). DIR/comparison.json is written last: a
comparison is finished exactly when it exists.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from encoderkit.atomic import write_json
from encoderkit.config import DEFAULT_LR, STRATEGIES, TrainConfig
from encoderkit.errors import UserError
from encoderkit.reporting.comparison import StrategyResult, comparison_rows, write_comparison_report
from encoderkit.training.checkpoints import latest_checkpoint

CONFIGS = ".configs"  # the config each strategy's process was started with


class StrategyStopped(Exception):
    """A strategy's run stopped on bad input (exit 2) or an interrupt (130/143), and said why."""

    def __init__(self, strategy: str, code: int) -> None:
        super().__init__(f"{strategy}: exit code {code}")
        self.code = code


# Exit codes that end the whole comparison: bad input (the next strategy would read the same
# data), and Ctrl-C / SIGTERM (the user wants it to stop; --resume continues it).
STOP_CODES = (2, 130, 143)


@dataclass
class Comparison:
    folder: Path
    rows: list[dict[str, Any]]
    failed: list[str]
    report: Path


def parse_strategies(text: str) -> list[str]:
    names = [s.strip() for s in text.split(",") if s.strip()]
    if not names:
        raise UserError("--strategies: name at least one of " + ", ".join(STRATEGIES))
    for name in names:
        if name not in STRATEGIES:
            raise UserError(f"--strategies: '{name}' is not one of {', '.join(STRATEGIES)}")
    if len(set(names)) != len(names):
        raise UserError("--strategies: a strategy is named twice")
    return names


def prepare_folder(folder: Path, resume: bool, overwrite: bool) -> None:
    """The checks `train` makes for a run folder, for the comparison folder."""
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{folder}: --output exists and is not a folder")
    if (folder / "comparison.json").exists() and not overwrite:
        raise UserError(f"{folder}: --output already holds a finished comparison; pass --overwrite")
    if folder.is_dir() and any(folder.iterdir()) and not (resume or overwrite):
        raise UserError(
            f"{folder}: --output already holds an unfinished comparison (try --resume or --overwrite)"
        )
    if overwrite:
        shutil.rmtree(folder, ignore_errors=True)


def strategy_config(config: TrainConfig, strategy: str, run_dir: Path, resume: bool) -> dict[str, Any]:
    """The child run's config: same data, seed and budget; its own strategy, folder and (default) lr."""
    resumable = resume and latest_checkpoint(run_dir) is not None
    values = config.to_dict()
    values.update(strategy=strategy, output=str(run_dir), resume=resumable, overwrite=not resumable)
    values["resume_force"] = False
    return values


def compare(
    config: TrainConfig, strategies: list[str], echo: Callable[[str], None] = print, child_stdout: Any = None
) -> Comparison:
    """Train `config` once per strategy into DIR/<strategy>/ and write the comparison report.

    The runs print to this process's stdout, or to `child_stdout` (a file) when given.

    Raises:
        UserError: bad strategies or comparison folder.
        StrategyStopped: a strategy's run rejected its input or was interrupted (it said why).
    """
    assert config.output is not None
    folder = Path(config.output)
    prepare_folder(folder, config.resume, config.overwrite)
    (folder / CONFIGS).mkdir(parents=True, exist_ok=True)
    results, failed = [], []
    for i, strategy in enumerate(strategies, start=1):
        run_dir = folder / strategy
        if not (config.resume and (run_dir / "metrics.json").exists()):
            echo(f"== {strategy} ({i}/{len(strategies)}) -> {run_dir}")
            values = strategy_config(config, strategy, run_dir, config.resume)
            code = _train_in_child(values, folder, strategy, child_stdout)
            if code in STOP_CODES:
                raise StrategyStopped(strategy, code)
            if code != 0:
                echo(f"== {strategy} failed (exit code {code}); the others go on")
                failed.append(strategy)
                continue
        results.append(read_result(run_dir, strategy))
    if not results:
        raise UserError(f"{folder}: every strategy failed ({', '.join(failed)})")
    notes = setup_notes(config, strategies)
    report = write_comparison_report(
        folder, f"encoderkit compare: {config.task} with {config.model}", results, notes
    )
    rows = comparison_rows(results)
    write_json(
        folder / "comparison.json",
        {"metric": results[0].metric, "rows": rows, "failed": failed, "notes": notes},
    )
    return Comparison(folder, rows, failed, report)


def _train_in_child(values: dict[str, Any], folder: Path, strategy: str, stdout: Any) -> int:
    path = folder / CONFIGS / f"{strategy}.yaml"
    path.write_text(yaml.safe_dump(values, sort_keys=False), encoding="utf-8")
    return subprocess.call(
        [sys.executable, "-m", "encoderkit", "train", "--config", str(path)], stdout=stdout
    )


def read_result(run_dir: Path, strategy: str) -> StrategyResult:
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    log_lines = (run_dir / "log.jsonl").read_text(encoding="utf-8").splitlines()
    resolved = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
    return StrategyResult(
        strategy, metrics, [json.loads(x) for x in log_lines], str(resolved["metric_for_best"])
    )


def setup_notes(config: TrainConfig, strategies: list[str]) -> list[str]:
    if config.lr is None:
        lrs = ", ".join(f"{s} {DEFAULT_LR[s]:g}" for s in strategies)
        lr = f"learning rate: each strategy's default ({lrs})"
    else:
        lr = f"learning rate: {config.lr:g} for every strategy"
    batch = f"batch size ({config.batch_size})"
    if config.batch_tokens is not None:
        batch = f"token budget per micro-batch ({config.batch_tokens})"
    return [
        f"model: {config.model}; train: {config.train}; eval: {config.eval}",
        f"same data, seed ({config.seed}), {batch} and budget "
        f"(epochs {config.epochs}, max_steps {config.max_steps}) for every strategy",
        lr,
        "peak_memory_mb: peak GPU memory allocated by torch, or the training process's peak RSS on CPU",
    ]
