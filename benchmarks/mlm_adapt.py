#!/usr/bin/env python
"""Domain adaptation: masked-LM on the task's own texts first, then classification, against the
same classification without it (same data, model, hyperparameters and seed; one run).

Data: IMDB train_5k -> test_5k (../shared/data/imdb; `--limit-train N` / `--limit-eval N` keep
N rows, the classes interleaved so a prefix is balanced). The MLM text is the training reviews
only (no test text: the eval set stays unseen).

1. `plain`: `--task classification` from `--model`.
2. `adapted`: `--task mlm` on the training reviews (`--mlm-epochs`), then `--task classification`
   from the adapted `model/` folder, the two commands the README gives.

Both classifications: encoderkit's defaults except `--max-length`, `--epochs` and the seed.

    python benchmarks/mlm_adapt.py --limit-train 40 --limit-eval 20 --mlm-epochs 1 --epochs 1 --no-write
"""

from __future__ import annotations

import harness  # first: it sets HF_HUB_OFFLINE before anything imports huggingface_hub

# isort: split
import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import classification_sides as sides
from common import logger

log = logger("bench")

SEED = 42
HEADING = "## Domain adaptation: MLM on the task text, then classification (benchmarks/mlm_adapt.py)"
COLUMNS = harness.Columns(
    "data | max_length | MLM epochs / s | epochs | plain acc | adapted acc | difference", "lrrrrrr"
)
NOTE = "Accuracy x100 on the eval set (best checkpoint); `difference` = adapted - plain, in points."


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = harness.Parser(__doc__)
    ap.add_data("imdb/", min_limit=2)
    ap.add_model()
    ap.add_argument("--max-length", type=int, default=256, help="MLM blocks and classification, both")
    ap.add_argument("--mlm-epochs", type=float, default=1.0, help="masked-LM epochs on the training text")
    ap.add_epochs("classification epochs, both sides (default 2)")
    ap.add_output()
    ap.check_at_least(16, "max_length")
    return ap.parse(argv)


def table_row(line: harness.Line) -> list[object]:
    return [
        f"imdb {line['subset']} ({line['n_train']} / {line['n_eval']})",
        line["max_length"],
        f"{line['mlm_epochs']:g} / {line['mlm_train_s']:.0f}",
        f"{line['epochs']:g}",
        f"{100 * line['plain_accuracy']:.2f}",
        f"{100 * line['adapted_accuracy']:.2f}",
        f"{100 * (line['adapted_accuracy'] - line['plain_accuracy']):+.2f}",
    ]


RESULTS = harness.Results.one("benchmarks/mlm_adapt.py", harness.Table(HEADING, COLUMNS, table_row, NOTE))


def classify(model: str, data: sides.TaskData, args: argparse.Namespace, output: Path) -> dict[str, Any]:
    fields: dict[str, Any] = {"task": "classification", "model": model, "train": str(data.train_jsonl)}
    fields |= {"eval": str(data.eval_jsonl), "output": str(output), "seed": SEED}
    fields |= {"max_length": args.max_length, "epochs": args.epochs}
    run = harness.train_encoderkit(fields)
    return {"accuracy": run.metrics["accuracy"], "f1": run.metrics.get("f1"), **run.schedule()}


def adapt(model: str, texts: Path, args: argparse.Namespace, output: Path) -> dict[str, Any]:
    fields: dict[str, Any] = {"task": "mlm", "model": model, "train": str(texts), "output": str(output)}
    fields["seed"] = SEED
    fields |= {"max_length": args.max_length, "epochs": args.mlm_epochs}
    run = harness.train_encoderkit(fields)
    return {"train_s": run.metrics["train_runtime_s"], "steps": run.metrics["steps"]}


def measure(session: harness.Session) -> Iterator[harness.Line]:
    args = session.args
    args.epochs = args.epochs or 2.0
    data = sides.prepare_task("imdb", args.data_dir, args.limit_train, args.limit_eval, session.work)
    texts = session.work / "train_texts.txt"  # one review a line: the MLM's text
    texts.write_text(
        "".join(" ".join(text.split()) + "\n" for text, _, _ in data.train_rows), encoding="utf-8"
    )
    plain = harness.run_side(
        log, "classification from the base model", classify, args.model, data, args, session.work / "plain"
    )
    mlm = harness.run_side(
        log, "MLM on the training reviews", adapt, args.model, texts, args, session.work / "mlm"
    )
    adapted = harness.run_side(
        log,
        "classification from the adapted encoder",
        classify,
        str(session.work / "mlm" / "model"),
        data,
        args,
        session.work / "adapted",
    )
    yield {
        **session.context,
        "task": "mlm-adaptation",
        **data.info("imdb"),
        "max_length": args.max_length,
        "mlm_epochs": args.mlm_epochs,
        "mlm_steps": mlm["steps"],
        "mlm_train_s": mlm["train_s"],
        "epochs": args.epochs,
        "plain_accuracy": plain["accuracy"],
        "adapted_accuracy": adapted["accuracy"],
        "plain_f1": plain["f1"],
        "adapted_f1": adapted["f1"],
        "plain_train_s": plain["train_runtime_s"],
        "adapted_train_s": adapted["train_runtime_s"],
    }


def main(argv: list[str] | None = None) -> int:
    return harness.run(parse_args(argv), measure, RESULTS, log, precision="auto")


if __name__ == "__main__":
    sys.exit(main())
