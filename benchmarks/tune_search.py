#!/usr/bin/env python
"""Hyperparameter search against the defaults: `encoderkit tune` on MRPC vs one run with
encoderkit's defaults (same data, model and seed; one run of each).

1. `defaults`: `--task classification` with every default (batch and epochs `auto`, lr 1e-4).
2. `search`: `encoderkit tune` for `--trials` trials over lr (1e-5 to 2e-3, log), batch size
   (16, 32), warmup (0, 0.06, 0.1) and strategy (full, lora), each trial `--trial-epochs`
   epochs, evaluated every `--eval-steps` steps for the median pruner, no trial started after
   `--budget-s` seconds. The objective is dev accuracy (the task's default metric).

Data: GLUE MRPC train -> dev (../shared/data/glue_mrpc; `--limit-train N` / `--limit-eval N`).

    python benchmarks/tune_search.py --limit-train 16 --limit-eval 8 --trials 2 --no-write
"""

from __future__ import annotations

import harness  # first: it sets HF_HUB_OFFLINE before anything imports huggingface_hub

# isort: split
import argparse
import json
import sys
import time
from collections.abc import Iterator
from typing import Any

import classification_sides as sides
import yaml
from common import logger

from encoderkit.config import build_config
from encoderkit.tune import read_space, tune

log = logger("bench")

SEED = 42
SPACE = """\
lr: {low: 1.0e-5, high: 2.0e-3, log: true}
batch_size: [16, 32]
warmup_ratio: [0.0, 0.06, 0.1]
strategy: [full, lora]
"""
HEADING = "## Hyperparameter search: `encoderkit tune` vs the defaults (benchmarks/tune_search.py)"
COLUMNS = harness.Columns(
    "data | defaults acc / F1 | defaults s | trials (done / pruned), epochs each | search s | "
    "best acc / F1 | best trial",
    "lrrrrrl",
)
NOTE = (
    "Dev accuracy / F1 x100 of the best checkpoint; `search s`: wall time of the whole search "
    "(its budget: no trial starts after `budget_s`); one run of each."
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = harness.Parser(__doc__)
    ap.add_data("glue_mrpc/", min_limit=2)
    ap.add_model()
    ap.add_epochs("epochs of the defaults run (default: auto, as a user gets)")
    ap.add_argument("--trials", type=int, default=12, help="finished trials of the search (default 12)")
    ap.add_argument("--trial-epochs", type=float, default=1.0, help="epochs of each trial (default 1)")
    ap.add_argument("--eval-steps", type=int, default=40, help="a trial's evaluations, for the pruner")
    ap.add_argument("--budget-s", type=float, default=1800.0, help="start no trial after this (default 1800)")
    ap.add_output()
    ap.check_at_least(1, "trials", "eval_steps")
    return ap.parse(argv)


def table_row(line: harness.Line) -> list[object]:
    return [
        f"mrpc {line['subset']} ({line['n_train']} / {line['n_eval']})",
        harness.slash(100 * line["defaults_accuracy"], 100 * line["defaults_f1"]),
        f"{line['defaults_s']:.0f}",
        f"{line['trials_complete']} / {line['trials_pruned']}, {line['trial_epochs']:g}",
        f"{line['search_s']:.0f} (budget {line['budget_s']:.0f})",
        harness.slash(100 * line["best_accuracy"], 100 * line["best_f1"]),
        line["best_params"],
    ]


RESULTS = harness.Results.one("benchmarks/tune_search.py", harness.Table(HEADING, COLUMNS, table_row, NOTE))


def common_fields(model: str, data: sides.TaskData) -> dict[str, Any]:
    return {
        "task": "classification",
        "model": model,
        "train": str(data.train_jsonl),
        "eval": str(data.eval_jsonl),
    }


def defaults(model: str, data: sides.TaskData, session: harness.Session) -> dict[str, Any]:
    fields = {**common_fields(model, data), "output": str(session.work / "defaults"), "seed": SEED}
    if session.args.epochs:
        fields["epochs"] = session.args.epochs
    run = harness.train_encoderkit(fields)
    return {"accuracy": run.metrics["accuracy"], "f1": run.metrics["f1"], "s": run.metrics["wall_time_s"]}


def search(model: str, data: sides.TaskData, session: harness.Session) -> dict[str, Any]:
    args = session.args
    space = session.work / "space.yaml"
    space.write_text(SPACE, encoding="utf-8")
    folder = session.work / "search"
    fields = {**common_fields(model, data), "output": str(folder), "seed": SEED, "overwrite": True}
    fields |= {"epochs": args.trial_epochs, "eval_steps": args.eval_steps, "save_steps": 0}
    base = build_config({}, fields)
    started = time.perf_counter()
    result = tune(base, read_space(str(space), base), args.trials, timeout=args.budget_s, echo=log)
    seconds = time.perf_counter() - started
    best_run = folder / "trials" / f"{result.best_number:03d}"
    metrics = json.loads((best_run / "metrics.json").read_text(encoding="utf-8"))
    config = yaml.safe_load((best_run / "config.yaml").read_text(encoding="utf-8"))
    keys = ("strategy", "lr", "batch_size", "warmup_ratio")
    shown = ", ".join(f"{k} {config[k]:.2g}" if k == "lr" else f"{k} {config[k]}" for k in keys)
    return {
        "accuracy": metrics["accuracy"],
        "f1": metrics["f1"],
        "s": seconds,
        "complete": result.counts["COMPLETE"],
        "pruned": result.counts["PRUNED"],
        "best": f"{result.best_number}: {shown}",
    }


def measure(session: harness.Session) -> Iterator[harness.Line]:
    args = session.args
    data = sides.prepare_task("mrpc", args.data_dir, args.limit_train, args.limit_eval, session.work)
    plain = harness.run_side(log, "encoderkit defaults", defaults, session.model_path, data, session)
    found = harness.run_side(log, "encoderkit tune", search, session.model_path, data, session)
    yield {
        **session.context,
        **data.info("mrpc"),
        "defaults_accuracy": plain["accuracy"],
        "defaults_f1": plain["f1"],
        "defaults_s": plain["s"],
        "trials": args.trials,
        "trial_epochs": args.trial_epochs,
        "budget_s": args.budget_s,
        "trials_complete": found["complete"],
        "trials_pruned": found["pruned"],
        "search_s": found["s"],
        "best_accuracy": found["accuracy"],
        "best_f1": found["f1"],
        "best_params": found["best"],
    }


def main(argv: list[str] | None = None) -> int:
    return harness.run(parse_args(argv), measure, RESULTS, log, precision="auto")


if __name__ == "__main__":
    sys.exit(main())
