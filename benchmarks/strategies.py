#!/usr/bin/env python
"""Strategies benchmark: `encoderkit compare` of full, frozen, LoRA and from-scratch in one run.

``--task mrpc`` uses GLUE MRPC (train / dev, the TSV files as they ship); ``--task squad`` uses
squad-split (``qa_sides.py``: SQuAD v1.1 dev split by article). ``--limit-train N`` /
``--limit-eval N`` keep the first N rows (mrpc) or questions (squad) of each split.

Stdout: one JSON line per strategy; everything else goes to stderr. Unless ``--no-write``, each
line is appended as a table row to benchmarks/RESULTS.md; ``--append-from FILE`` appends the
saved lines of an earlier run (e.g. on the GPU machine) instead.

    python benchmarks/strategies.py --task mrpc --limit-train 256 --limit-eval 128 --no-write
"""

from __future__ import annotations

import harness  # first: it sets HF_HUB_OFFLINE before anything imports huggingface_hub

# isort: split
import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import yaml
from classification_sides import write_jsonl
from common import logger
from peer_hf import read_rows
from qa_sides import SOURCES, write_split

from encoderkit.compare import compare, parse_strategies
from encoderkit.config import build_config

log = logger("strategies")

HEADING = "## Strategies: `encoderkit compare` (full, frozen, LoRA, scratch)"
COLUMNS = harness.Columns(
    "task | subset | strategy | trainable (%) | train s | peak MB | examples/s | before | final", "lllrrrrrr"
)
NOTE = """One `encoderkit compare` run per task: every strategy on the same data, seed, batch size and
epochs, each with its own default learning rate (full/scratch 1e-4, frozen/lora 1e-3). `before` is
the eval metric at step 0 (the untrained head), `final` that of the selected checkpoint
(mrpc: accuracy/F1 0-100; squad: EM/F1). peak MB: peak GPU memory allocated by torch, or the
training process's peak RSS on CPU. Written by benchmarks/strategies.py."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = harness.Parser(__doc__)
    ap.add_argument("--task", default="mrpc", choices=("mrpc", "squad"))
    ap.add_model()
    ap.add_argument("--strategies", default="full,frozen,lora,scratch")
    ap.add_argument("--epochs", default="auto", help="epochs for every strategy (default: encoderkit's auto)")
    ap.add_data("glue_mrpc/, squad_v1.1/", of="rows / questions")
    ap.add_output("data and run folders")
    return ap.parse(argv)


def mrpc_files(args: argparse.Namespace, work: Path) -> tuple[str, str]:
    train, dev = (Path(args.data_dir) / "glue_mrpc" / f"{s}.tsv.gz" for s in ("train", "dev"))
    if args.limit_train is None and args.limit_eval is None:
        return str(train), str(dev)  # encoderkit reads GLUE TSV as it ships
    paths = []
    for source, limit, name in ((train, args.limit_train, "train"), (dev, args.limit_eval, "eval")):
        path = work / f"{name}.jsonl"
        write_jsonl(read_rows(str(source), limit, False), path)
        paths.append(str(path))
    return paths[0], paths[1]


def squad_files(args: argparse.Namespace, work: Path) -> tuple[str, str]:
    source = Path(args.data_dir) / SOURCES["squad"]
    train, dev = write_split(source, work / "squad-split", args.limit_train, args.limit_eval)
    return str(train), str(dev)


def subset(args: argparse.Namespace) -> str:
    if args.limit_train is None and args.limit_eval is None:
        return "full"
    return f"{args.limit_train or 'all'}/{args.limit_eval or 'all'}"


def final_cell(line: harness.Line) -> str:
    if line["task"] == "squad":
        return f"{line['exact_match']:.2f} / {line['f1']:.2f}"
    return f"{100 * line['accuracy']:.2f} / {100 * line['f1']:.2f}"


def table_row(line: harness.Line) -> list[object]:
    before = line.get(f"before_{line['metric']}")
    scale = 1 if line["task"] == "squad" else 100
    return [
        line["task"],
        f"{line['subset']}, {line['epochs']:g} ep", line["strategy"],
        f"{line['trainable_params']:,} ({line['trainable_pct']:.2f}%)", f"{line['train_runtime_s']:.1f}",
        f"{line['peak_memory_mb']:.0f}", f"{line['train_samples_per_s']:.1f}",
        "" if before is None else f"{scale * before:.2f}", final_cell(line),
    ]  # fmt: skip


RESULTS = harness.Results.one("benchmarks/strategies.py", harness.Table(HEADING, COLUMNS, table_row, NOTE))


def measure(session: harness.Session) -> Iterator[harness.Line]:
    """One `encoderkit compare` run (each strategy in its own process); a line per strategy."""
    args, work = session.args, session.work
    strategies = parse_strategies(args.strategies)
    train, dev = (mrpc_files if args.task == "mrpc" else squad_files)(args, work)
    task = "classification" if args.task == "mrpc" else "qa"
    fields = {"task": task, "model": args.model, "train": train, "eval": dev}
    fields.update({"output": str(work / "compare"), "epochs": args.epochs, "overwrite": True})
    result = compare(build_config({}, fields), strategies, echo=log, child_stdout=sys.stderr)
    metric = json.loads((result.folder / "comparison.json").read_text())["metric"]
    resolved = yaml.safe_load((result.folder / result.rows[0]["strategy"] / "config.yaml").read_text())
    info = {"task": args.task, "subset": subset(args), "epochs": resolved["epochs"], "metric": metric}
    for row in result.rows:
        yield {**session.context, **info} | row


def main(argv: list[str] | None = None) -> int:
    # The strategies pick their own precision (`auto`), each in its own `encoderkit train` process.
    return harness.run(parse_args(argv), measure, RESULTS, log, "auto")


if __name__ == "__main__":
    sys.exit(main())
