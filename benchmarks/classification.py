#!/usr/bin/env python
"""Classification benchmark: encoderkit against the HF Trainer peer, same data, same machine, one run.

For each task (mrpc, sst2, imdb) it trains, one after the other in this process:

1. the peer (``peer_hf.run_peer``: the HF Trainer recipe of ``../shared/tools/peer/hf_cls_baseline.py``
   with the per-task hyperparameters of ``../shared/guides/benchmarks.md``);
2. encoderkit with the peer's hyperparameters (variant ``same``: batch, lr, epochs, max_length,
   warmup 0.1, weight decay 0.01, seed 42, the same precision);
3. encoderkit with its own defaults (variant ``defaults``: only task/model/train/eval/output given).

Both sides see exactly the same rows: the peer's reader parses the files once and encoderkit gets
those rows as JSONL in a temporary folder. ``--limit-train N`` / ``--limit-eval N`` keep the first N
rows of each split (IMDB: the classes interleaved in file order first, so a prefix is balanced).

Stdout: one JSON line per (task, encoderkit variant); everything else goes to stderr. Unless
``--no-write``, each line is also appended as a table row to benchmarks/RESULTS.md;
``--append-from FILE`` appends the saved lines of an earlier run (on the GPU machine) instead.

    python benchmarks/classification.py --tasks mrpc --limit-train 64 --limit-eval 32 --no-write
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import argparse
import contextlib
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
try:
    import encoderkit  # noqa: F401
except ImportError:  # a bare checkout (e.g. on the accelerator machine): use the source tree
    sys.path.insert(0, str(REPO / "src"))

import torch  # noqa: E402
import yaml  # noqa: E402
from common import (  # noqa: E402
    append_table_rows,
    encoderkit_auto_precision,
    logger,
    peak_memory_mb,
    release_memory,
    resolved_precision,
    run_context,
    warm_up,
    work_folder,
)
from peer_hf import RECIPES, SEED, WARMUP, WEIGHT_DECAY, PeerRecipe, Row, read_rows, run_peer  # noqa: E402
from transformers import AutoModelForSequenceClassification  # noqa: E402

from encoderkit.config import build_config  # noqa: E402
from encoderkit.errors import UserError  # noqa: E402
from encoderkit.modeling import resolve_model  # noqa: E402
from encoderkit.training.run import train  # noqa: E402

log = logger("bench")

FILES = {
    "mrpc": ("glue_mrpc/train.tsv.gz", "glue_mrpc/dev.tsv.gz"),
    "sst2": ("glue_sst2/train.tsv.gz", "glue_sst2/dev.tsv.gz"),
    "imdb": ("imdb/train_5k.jsonl.gz", "imdb/test_5k.jsonl.gz"),
}
BALANCED = {"imdb"}  # subsets of these take the classes interleaved
VARIANTS = ("same", "defaults")
NO_SAVE_STEPS = 10**9  # the `same` variant: no step checkpoints (the peer saves nothing)

HEADING = "## Classification: encoderkit vs HF Trainer"
TABLE_HEAD = [
    "| date | commit | device | task | subset | variant | peer s | encoderkit s | speed-up "
    "| peer acc/F1 | encoderkit acc/F1 |",
    "|---|---|---|---|---|---|---:|---:|---:|---:|---:|",
]
INTRO = """# Benchmark results

Written by the scripts in this folder (see README.md): every row is one measured run, appended by
the script; nothing here is typed by hand. Times are pure training time in seconds (HF Trainer
`train_runtime` and encoderkit `train_runtime_s`); speed-up = peer s / encoderkit s (above 1:
encoderkit is faster). Accuracy and F1 on the eval split, 0-100. encoderkit's figures are those of
its best checkpoint; where that is not the last one, the last epoch's figures (comparable with
the peer, which keeps its last weights) follow in parentheses. Times from the shared CPU machines
are noise; compare them only within one row.
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", default="mrpc,sst2,imdb", help="comma-separated: mrpc, sst2, imdb")
    ap.add_argument("--limit-train", type=int, help="use the first N training rows (default: all)")
    ap.add_argument("--limit-eval", type=int, help="use the first N eval rows (default: all)")
    ap.add_argument("--model", default="minilm", help="`minilm` (bundled) or a model folder, for both sides")
    ap.add_argument(
        "--precision",
        default="auto",
        choices=("auto", "fp32", "bf16"),
        help="auto = bf16 on a CUDA GPU that supports it, else fp32; bf16 is used on CUDA only",
    )
    ap.add_argument(
        "--data-dir", default=str(REPO.parent / "shared" / "data"), help="folder holding glue_mrpc/ etc."
    )
    ap.add_argument("--variants", default=",".join(VARIANTS), help="encoderkit variants: same,defaults")
    ap.add_argument("--results", default=str(REPO / "benchmarks" / "RESULTS.md"), help="table to append to")
    ap.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    ap.add_argument("--work-dir", help="keep run folders here (default: a temporary folder, removed)")
    ap.add_argument("--commit", help="commit to record (default: `git rev-parse --short HEAD` or unknown)")
    ap.add_argument(
        "--append-from",
        metavar="JSONL",
        help="train nothing: append the JSON lines of an earlier run (e.g. on the GPU machine) to --results",
    )
    args = ap.parse_args(argv)
    args.tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    for task in args.tasks:
        if task not in FILES:
            ap.error(f"unknown task {task!r}; choose from {', '.join(FILES)}")
    for variant in args.variants:
        if variant not in VARIANTS:
            ap.error(f"unknown variant {variant!r}; choose from {', '.join(VARIANTS)}")
    for name in ("limit_train", "limit_eval"):
        if getattr(args, name) is not None and getattr(args, name) < 2:
            ap.error(f"--{name.replace('_', '-')} must be >= 2")
    return args


def write_jsonl(rows: list[Row], path: Path) -> None:
    """The rows the peer reads, in a form encoderkit reads with its default columns."""
    with path.open("w", encoding="utf-8") as f:
        for text, pair, label in rows:
            record: dict[str, Any] = {"text": text}
            if pair is not None:
                record["text_pair"] = pair
            record["label"] = label
            f.write(json.dumps(record, ensure_ascii=False) + "\n")


def run_encoderkit(
    model: str, train_path: Path, eval_path: Path, output: Path, overrides: dict[str, Any]
) -> dict[str, Any]:
    """One encoderkit run through the Python API; metrics on the 0-100 scale plus the resolved config."""
    if output.exists():  # a reused --work-dir
        shutil.rmtree(output)
    config = build_config(
        {},
        {
            "task": "classification",
            "model": model,
            "train": str(train_path),
            "eval": str(eval_path),
            "output": str(output),
            **overrides,
        },
    )
    result = train(config, echo=lambda message: print(message, file=sys.stderr, flush=True))
    peak_mb = peak_memory_mb()  # since the caller's reset_peak_memory(), if any
    m = result.metrics
    evals = [
        json.loads(line)
        for line in (result.run_dir / "log.jsonl").read_text(encoding="utf-8").splitlines()
        if '"eval_accuracy"' in line
    ]
    last = max(evals, key=lambda e: e["step"])
    resolved = yaml.safe_load((result.run_dir / "config.yaml").read_text(encoding="utf-8"))
    return {
        "train_runtime_s": m["train_runtime_s"],
        "wall_time_s": m["wall_time_s"],
        "train_samples_per_s": m["train_samples_per_s"],
        "steps": m["steps"],
        "best_step": m["best_step"],
        "accuracy": round(100 * m["accuracy"], 2),
        "f1": round(100 * m["f1"], 2),
        "mcc": round(100 * m["mcc"], 2),
        "last_accuracy": round(100 * last["eval_accuracy"], 2),
        "last_f1": round(100 * last["eval_f1"], 2),
        "peak_memory_mb": peak_mb,
        "config": resolved,
    }


def same_overrides(recipe: PeerRecipe, precision: str) -> dict[str, Any]:
    """encoderkit config values of the `same` variant: the peer's recipe."""
    return {
        "batch_size": recipe.bs,
        "lr": recipe.lr,
        "epochs": recipe.epochs,
        "max_length": recipe.max_len,
        "warmup_ratio": WARMUP,
        "weight_decay": WEIGHT_DECAY,
        "seed": SEED,
        "precision": precision,
        "save_steps": NO_SAVE_STEPS,
    }


def peer_recipe_record(recipe: PeerRecipe, precision: str) -> dict[str, Any]:
    return {
        "max_length": recipe.max_len,
        "batch_size": recipe.bs,
        "lr": recipe.lr,
        "epochs": recipe.epochs,
        "warmup_ratio": WARMUP,
        "weight_decay": WEIGHT_DECAY,
        "seed": SEED,
        "precision": precision,
        "padding": "dynamic (DataCollatorWithPadding)",
    }


def encoderkit_recipe_record(config: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "max_length", "batch_size", "lr", "epochs", "warmup_ratio", "weight_decay", "seed", "precision",
        "max_grad_norm", "group_by_length", "eval_batch_size", "save_steps",
    )  # fmt: skip
    record = {k: config[k] for k in keys}
    if record["precision"] == "auto":
        record["precision"] = f"auto ({encoderkit_auto_precision()})"
    return record


def table_row(line: dict[str, Any]) -> str:
    ek = f"{line['encoderkit_accuracy']:.2f} / {line['encoderkit_f1']:.2f}"
    if line["encoderkit_best_step"] != line["encoderkit_steps"]:
        ek += f" (last {line['encoderkit_last_accuracy']:.2f} / {line['encoderkit_last_f1']:.2f})"
    cells = [
        line["date"],
        line["commit"],
        line["device"],
        line["task"],
        line["subset"],
        line["variant"],
        f"{line['peer_train_s']:.2f}",
        f"{line['encoderkit_train_s']:.2f}",
        f"{line['speed_ratio']:.2f}x",
        f"{line['peer_accuracy']:.2f} / {line['peer_f1']:.2f}",
        ek,
    ]
    return "| " + " | ".join(str(c).replace("|", "/") for c in cells) + " |"


def append_rows(path: Path, rows: list[str]) -> None:
    append_table_rows(path, HEADING, TABLE_HEAD, rows, INTRO)


@dataclass(frozen=True)
class TaskData:
    """The rows both sides train and evaluate on, and encoderkit's copy of them as JSONL."""

    train_rows: list[Row]
    eval_rows: list[Row]
    train_jsonl: Path
    eval_jsonl: Path
    subset: str  # `full`, or `N/M` (`balanced` when the classes were interleaved)


def prepare_task(
    task: str, data_dir: str, limit_train: int | None, limit_eval: int | None, task_dir: Path
) -> TaskData:
    """Read a task's splits as the peer does and write them as JSONL under `task_dir` for encoderkit."""
    train_file, eval_file = (Path(data_dir) / name for name in FILES[task])
    for path in (train_file, eval_file):
        if not path.is_file():
            raise UserError(f"{path}: data file not found (set --data-dir)")
    balanced = task in BALANCED
    train_rows = read_rows(str(train_file), limit_train, balanced)
    eval_rows = read_rows(str(eval_file), limit_eval, balanced)
    task_dir.mkdir(parents=True, exist_ok=True)
    train_jsonl, eval_jsonl = task_dir / "train.jsonl", task_dir / "eval.jsonl"
    write_jsonl(train_rows, train_jsonl)
    write_jsonl(eval_rows, eval_jsonl)
    if limit_train is None and limit_eval is None:
        subset = "full"
    else:
        subset = f"{len(train_rows)}/{len(eval_rows)}" + (" balanced" if balanced else "")
    return TaskData(train_rows, eval_rows, train_jsonl, eval_jsonl, subset)


def result_line(
    context: dict[str, Any],
    task: str,
    data: TaskData,
    variant: str,
    recipe: PeerRecipe,
    precision: str,
    peer: dict[str, Any],
    ek: dict[str, Any],
) -> dict[str, Any]:
    """The JSON line of one encoderkit run against the peer."""
    return {
        **context,
        "task": task,
        "n_train": len(data.train_rows),
        "n_eval": len(data.eval_rows),
        "subset": data.subset,
        "variant": variant,
        "recipe": {
            "peer": peer_recipe_record(recipe, precision),
            "encoderkit": encoderkit_recipe_record(ek["config"]),
        },
        "peer_train_s": round(peer["train_runtime_s"], 3),
        "encoderkit_train_s": ek["train_runtime_s"],
        "encoderkit_wall_s": ek["wall_time_s"],
        "speed_ratio": round(peer["train_runtime_s"] / max(ek["train_runtime_s"], 1e-9), 3),
        "peer_steps": peer["steps"],
        "encoderkit_steps": ek["steps"],
        "peer_train_samples_per_s": peer["train_samples_per_s"],
        "encoderkit_train_samples_per_s": ek["train_samples_per_s"],
        "peer_accuracy": peer["accuracy"],
        "peer_f1": peer["f1"],
        "peer_mcc": peer["mcc"],
        "encoderkit_accuracy": ek["accuracy"],
        "encoderkit_f1": ek["f1"],
        "encoderkit_mcc": ek["mcc"],
        "encoderkit_best_step": ek["best_step"],
        "encoderkit_last_accuracy": ek["last_accuracy"],
        "encoderkit_last_f1": ek["last_f1"],
    }


def benchmark_task(
    task: str, args: argparse.Namespace, work: Path, model_path: str, precision: str, context: dict[str, Any]
) -> list[dict[str, Any]]:
    task_dir = work / task
    data = prepare_task(task, args.data_dir, args.limit_train, args.limit_eval, task_dir)
    recipe = RECIPES[task]
    n_train, n_eval = len(data.train_rows), len(data.eval_rows)
    log(f"{task}: peer (HF Trainer) on {n_train} train / {n_eval} eval rows, {precision}")
    peer = run_peer(
        model_path, data.train_rows, data.eval_rows, recipe, str(task_dir / "peer"), bf16=precision == "bf16"
    )
    release_memory()
    log(f"{task}: peer {json.dumps(peer)}")

    lines = []
    for variant in args.variants:
        overrides = same_overrides(recipe, precision) if variant == "same" else {}
        log(f"{task}: encoderkit, variant {variant}")
        ek = run_encoderkit(
            args.model, data.train_jsonl, data.eval_jsonl, task_dir / f"encoderkit-{variant}", overrides
        )
        release_memory()
        lines.append(result_line(context, task, data, variant, recipe, precision, peer, ek))
    return lines


def append_saved(jsonl: Path, results: Path) -> int:
    """Append the lines this script printed in an earlier run (saved to `jsonl`) as table rows."""
    lines = [
        json.loads(text) for text in jsonl.read_text(encoding="utf-8").splitlines() if text.startswith("{")
    ]
    if not lines:
        print(f"error: {jsonl}: no JSON lines", file=sys.stderr)
        return 2
    append_rows(results, [table_row(line) for line in lines])
    log(f"appended {len(lines)} row(s) from {jsonl} to {results}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.append_from:
        return append_saved(Path(args.append_from), Path(args.results))
    stdout = sys.stdout
    try:
        model_path = resolve_model(args.model)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    precision = resolved_precision(args.precision)
    if args.precision == "bf16" and precision != "bf16":
        log("--precision bf16 needs a CUDA GPU; running fp32")
    context = run_context(args.model, precision, args.commit)
    with contextlib.ExitStack() as stack:
        work = work_folder(stack, args.work_dir, "encoderkit-bench-")
        # Trainer and encoderkit print progress to stdout; keep stdout for the JSON lines.
        stack.enter_context(contextlib.redirect_stdout(sys.stderr))
        log(f"device {context['device']}, model {model_path}, work folder {work}")
        warm_up(
            AutoModelForSequenceClassification.from_pretrained(model_path, num_labels=2, dtype=torch.float32),
            {"labels": torch.zeros(8, dtype=torch.long)},
            64,
            precision == "bf16",
        )
        for task in args.tasks:
            try:
                lines = benchmark_task(task, args, work, model_path, precision, context)
            except UserError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
            for line in lines:
                print(json.dumps(line), file=stdout, flush=True)
            if not args.no_write:
                append_rows(Path(args.results), [table_row(line) for line in lines])
                log(f"{task}: appended {len(lines)} row(s) to {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
