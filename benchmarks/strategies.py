#!/usr/bin/env python
"""Strategies benchmark: `encoderkit compare` of full, frozen, LoRA and from-scratch in one run.

``--task mrpc`` uses GLUE MRPC (train / dev, the TSV files as they ship); ``--task squad`` uses
squad-split (benchmarks/qa.py: SQuAD v1.1 dev split by article). ``--limit-train N`` /
``--limit-eval N`` keep the first N rows (mrpc) or questions (squad) of each split.

Stdout: one JSON line per strategy; everything else goes to stderr. Unless ``--no-write``, each
line is appended as a table row to benchmarks/RESULTS.md; ``--append-from FILE`` appends the
saved lines of an earlier run (e.g. on the GPU machine) instead.

    python benchmarks/strategies.py --task mrpc --limit-train 256 --limit-eval 128 --no-write
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
try:
    import encoderkit  # noqa: F401
except ImportError:  # a bare checkout (e.g. on the accelerator machine): use the source tree
    sys.path.insert(0, str(REPO / "src"))
    os.environ["PYTHONPATH"] = f"{REPO / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"

import yaml  # noqa: E402
from common import append_table_rows, logger, run_context, work_folder  # noqa: E402

from encoderkit.compare import compare, parse_strategies  # noqa: E402
from encoderkit.config import build_config  # noqa: E402
from encoderkit.errors import UserError  # noqa: E402

log = logger("strategies")

HEADING = "## Strategies: `encoderkit compare` (full, frozen, LoRA, scratch)"
TABLE_HEAD = [
    "| date | commit | device | task | subset | strategy | trainable (%) | train s | peak MB | examples/s "
    "| before | final |",
    "|---|---|---|---|---|---|---:|---:|---:|---:|---:|---:|",
]
NOTE = """One `encoderkit compare` run per task: every strategy on the same data, seed, batch size and
epochs, each with its own default learning rate (full/scratch 1e-4, frozen/lora 1e-3). `before` is
the eval metric at step 0 (the untrained head), `final` that of the selected checkpoint
(mrpc: accuracy/F1 0-100; squad: EM/F1). peak MB: peak GPU memory allocated by torch, or the
training process's peak RSS on CPU. Written by benchmarks/strategies.py."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", default="mrpc", choices=("mrpc", "squad"))
    ap.add_argument("--model", default="minilm")
    ap.add_argument("--strategies", default="full,frozen,lora,scratch")
    ap.add_argument("--epochs", default="auto", help="epochs for every strategy (default: encoderkit's auto)")
    ap.add_argument("--limit-train", type=int, help="first N train rows / questions (default: all)")
    ap.add_argument("--limit-eval", type=int, help="first N eval rows / questions (default: all)")
    ap.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--work-dir", help="keep data and run folders here (default: a temporary folder)")
    ap.add_argument("--commit", help="commit to record (default: git rev-parse HEAD)")
    ap.add_argument("--no-write", action="store_true", help="print the JSON lines only")
    ap.add_argument("--append-from", help="append the JSON lines saved in this file, run nothing")
    ap.add_argument("--results", default=str(REPO / "benchmarks" / "RESULTS.md"))
    return ap.parse_args(argv)


def mrpc_files(args: argparse.Namespace, work: Path) -> tuple[str, str]:
    from classification import write_jsonl
    from peer_hf import read_rows

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
    from qa import write_split

    source = Path(args.data_dir) / "squad_v1.1" / "dev-v1.1.json.gz"
    train, dev = write_split(source, work / "squad-split", args.limit_train, args.limit_eval)
    return str(train), str(dev)


def subset(args: argparse.Namespace) -> str:
    if args.limit_train is None and args.limit_eval is None:
        return "full"
    return f"{args.limit_train or 'all'}/{args.limit_eval or 'all'}"


def final_cell(line: dict[str, Any]) -> str:
    if line["task"] == "squad":
        return f"{line['exact_match']:.2f} / {line['f1']:.2f}"
    return f"{100 * line['accuracy']:.2f} / {100 * line['f1']:.2f}"


def table_row(line: dict[str, Any]) -> str:
    before = line.get(f"before_{line['metric']}")
    scale = 1 if line["task"] == "squad" else 100
    cells = [
        line["date"], line["commit"][:7], line["device"], line["task"],
        f"{line['subset']}, {line['epochs']:g} ep", line["strategy"],
        f"{line['trainable_params']:,} ({line['trainable_pct']:.2f}%)", f"{line['train_runtime_s']:.1f}",
        f"{line['peak_memory_mb']:.0f}", f"{line['train_samples_per_s']:.1f}",
        "" if before is None else f"{scale * before:.2f}", final_cell(line),
    ]  # fmt: skip
    return "| " + " | ".join(str(c).replace("|", "/") for c in cells) + " |"


def append_rows(path: Path, lines: list[dict[str, Any]]) -> None:
    intro = "# Benchmark results\n"
    append_table_rows(path, HEADING, TABLE_HEAD, [table_row(x) for x in lines], intro, NOTE)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.append_from:
        text = Path(args.append_from).read_text(encoding="utf-8")
        append_rows(Path(args.results), [json.loads(x) for x in text.splitlines() if x.startswith("{")])
        return 0
    stdout = sys.stdout
    context = run_context(args.model, "auto", args.commit)
    with contextlib.ExitStack() as stack:
        work = work_folder(stack, args.work_dir, "encoderkit-strategies-")
        stack.enter_context(contextlib.redirect_stdout(sys.stderr))
        try:
            strategies = parse_strategies(args.strategies)
            train, dev = (mrpc_files if args.task == "mrpc" else squad_files)(args, work)
            task = "classification" if args.task == "mrpc" else "qa"
            fields = {"task": task, "model": args.model, "train": train, "eval": dev}
            fields.update({"output": str(work / "compare"), "epochs": args.epochs, "overwrite": True})
            result = compare(build_config({}, fields), strategies, echo=log, child_stdout=sys.stderr)
        except UserError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        metric = json.loads((result.folder / "comparison.json").read_text())["metric"]
        resolved = yaml.safe_load((result.folder / result.rows[0]["strategy"] / "config.yaml").read_text())
        lines = [
            {
                **context,
                "task": args.task,
                "subset": subset(args),
                "epochs": resolved["epochs"],
                "metric": metric,
            }
            | row
            for row in result.rows
        ]
        for line in lines:
            print(json.dumps(line), file=stdout, flush=True)
        if not args.no_write:
            append_rows(Path(args.results), lines)
            log(f"appended {len(lines)} row(s) to {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
