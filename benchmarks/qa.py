#!/usr/bin/env python
"""QA benchmark: encoderkit against the HF Trainer peer on squad-split, same data, same machine, one run.

squad-split (../shared/guides/benchmarks.md): SQuAD v1.1 dev, train on the articles whose index
% 5 != 4 (39 articles, 8,595 questions), evaluate on index % 5 == 4 (9 articles, 1,975 questions).
``--limit-train N`` / ``--limit-eval N`` keep the first N questions of each split in file order
(article, paragraph, question order; emptied paragraphs and articles are dropped). The splits are
written as SQuAD JSON to a temporary folder, and both sides read those same files.

In this process, one after the other:

1. the peer (``peer_hf_qa.run_peer``: the HF Trainer recipe of ``../shared/tools/peer/hf_qa_baseline.py``:
   windows of 384 / stride 128 padded to 384, bs 32, lr 1e-4, 2 epochs, warmup 0.1, weight decay
   0.01, seed 42), then its evaluation: windows + ``Trainer.predict`` + n-best post-processing +
   SQuAD v1.1 EM/F1, timed, plus reading the eval file;
2. encoderkit with the peer's recipe (variant ``same``: the values above, precision matched: fp32 on
   CPU, bf16 on a CUDA GPU that has it; no step checkpoints, as the peer saves none);
3. encoderkit with its own defaults (variant ``defaults``: only task/model/train/eval/output given).

Each encoderkit run is evaluated again, timed, through its saved model exactly as a user would:
``Predictor.from_dir(run/model).evaluate_file(eval_file, {})`` (read + windows + forward + decode +
score); loading the model is timed apart. ``--task korquad`` runs korquad-split (KorQuAD 1.0 dev,
the same article rule, the ``korquad`` metric) through encoderkit only, as a pipeline check: the
peer is SQuAD v1.1 only, so it is skipped and the JSON line says so.

Stdout: one JSON line per encoderkit variant; everything else goes to stderr. Unless ``--no-write``,
each line is also appended as a table row to benchmarks/RESULTS.md.

    python benchmarks/qa.py --limit-train 24 --limit-eval 16 --epochs 1 --no-write
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import argparse
import contextlib
import copy
import gzip
import json
import shutil
import sys
import time
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
    read_saved_lines,
    release_memory,
    resolved_precision,
    run_context,
    warm_up,
    work_folder,
)
from peer_hf_qa import (  # noqa: E402
    EVAL_BATCH_SIZE,
    MAX_LEN,
    SEED,
    STRIDE,
    WARMUP,
    WEIGHT_DECAY,
    load_squad,
    run_peer,
    train_features,
)
from transformers import AutoModelForQuestionAnswering, AutoTokenizer  # noqa: E402

from encoderkit.config import build_config  # noqa: E402
from encoderkit.errors import UserError  # noqa: E402
from encoderkit.inference.predictor import Predictor  # noqa: E402
from encoderkit.modeling import resolve_model  # noqa: E402
from encoderkit.training.run import train  # noqa: E402

log = logger("bench-qa")

SOURCES = {
    "squad": "squad_v1.1/dev-v1.1.json.gz",
    "korquad": "korquad_v1.0/KorQuAD_v1.0_dev.json.gz",
}
METRICS = {"squad": "squad", "korquad": "korquad"}
VARIANTS = ("same", "defaults")
# The peer's recipe (../shared/guides/benchmarks.md, squad-split row).
PEER_BS, PEER_LR, PEER_EPOCHS = 32, 1e-4, 2.0
PEER_SKIPPED = "skipped: the peer is SQuAD v1.1 only (English answer normalisation and scorer)"

HEADINGS = {
    "squad": "## QA (squad-split): encoderkit vs HF Trainer",
    "korquad": "## QA (korquad-split): encoderkit pipeline check (no peer)",
}
SECTION_NOTE = """Written by `benchmarks/qa.py` (see `benchmarks/README_QA.md`); one row per measured run.
Train s: pure training time (HF Trainer `train_runtime`, encoderkit `train_runtime_s`). Eval s: the
peer's eval file read + windows + `Trainer.predict` + n-best post-processing + EM/F1, against
encoderkit's `Predictor.evaluate_file` (the same steps; model loading not counted). Speed-up = peer s /
encoderkit s (above 1: encoderkit is faster). EM / F1 on the eval split, 0-100; encoderkit's are
those of its best epoch, with the last epoch's (comparable with the peer, which keeps its last
weights) in brackets when they differ. Questions: train questions (the peer's 384/128 windows) /
eval questions; "first N" marks a `--limit-train` / `--limit-eval` subset. Times from the shared CPU
machines are noise; compare them only within one row."""
KORQUAD_NOTE = """Pipeline check, not a comparison: the peer is SQuAD v1.1 only, so its columns stay empty.
encoderkit trains on korquad-split and is scored with the official KorQuAD 1.0 metric. The bundled
MiniLM vocabulary has almost no Hangul, so its scores say nothing about quality; use `--model` with
a model whose tokenizer covers Korean for that. Columns as in the squad-split section; written by
`benchmarks/qa.py --task korquad`."""
TABLE_HEAD = [
    "| date | commit | device | task | questions | variant | precision | peer train s "
    "| encoderkit train s | train speed-up | peer eval s | encoderkit eval s | eval speed-up "
    "| peer EM / F1 | encoderkit EM / F1 |",
    "|---|---|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
]
INTRO = """# Benchmark results

Written by the scripts in this folder; every row is one measured run, appended by the script.
Each section says what its columns mean. Times from the shared CPU machines are noise; compare
them only within one row.
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", default="squad", choices=tuple(SOURCES), help="squad-split or korquad-split")
    ap.add_argument("--limit-train", type=int, help="use the first N training questions (default: all)")
    ap.add_argument("--limit-eval", type=int, help="use the first N eval questions (default: all)")
    ap.add_argument(
        "--epochs",
        type=float,
        help="override the epochs of every run, the defaults variant included (smoke runs); "
        "default: the peer recipe's 2 for the peer and `same`, encoderkit's own for `defaults`",
    )
    ap.add_argument("--model", default="minilm", help="`minilm` (bundled) or a model folder, for both sides")
    ap.add_argument(
        "--precision",
        default="auto",
        choices=("auto", "fp32", "bf16"),
        help="peer and `same` variant: auto = bf16 on a CUDA GPU that supports it, else fp32; "
        "bf16 is used on CUDA only",
    )
    ap.add_argument(
        "--data-dir",
        default=str(REPO.parent / "shared" / "data"),
        help="folder holding squad_v1.1/ and korquad_v1.0/ (default: ../shared/data from the repo root)",
    )
    ap.add_argument("--variants", default=",".join(VARIANTS), help="encoderkit variants: same,defaults")
    ap.add_argument("--results", default=str(REPO / "benchmarks" / "RESULTS.md"), help="table to append to")
    ap.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    ap.add_argument("--work-dir", help="keep split files and run folders here (default: a temporary folder)")
    ap.add_argument("--commit", help="commit to record (default: `git rev-parse --short HEAD` or unknown)")
    ap.add_argument(
        "--append-from",
        metavar="JSONL",
        help="run nothing: append the rows of JSON lines this script printed earlier (e.g. on the GPU "
        "machine) to --results",
    )
    args = ap.parse_args(argv)
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if not args.variants:
        ap.error("--variants: give at least one of same,defaults")
    for variant in args.variants:
        if variant not in VARIANTS:
            ap.error(f"unknown variant {variant!r}; choose from {', '.join(VARIANTS)}")
    for name in ("limit_train", "limit_eval"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.epochs is not None and not args.epochs > 0:
        ap.error("--epochs must be > 0")
    return args


# --- the split ---------------------------------------------------------------------------------


def read_json(path: Path) -> dict[str, Any]:
    op: Any = gzip.open if path.suffix == ".gz" else open
    with op(path, "rt", encoding="utf-8") as f:
        return json.load(f)


def split_articles(doc: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(train, eval): the articles whose index % 5 != 4, and those with index % 5 == 4."""
    data = doc["data"]
    train_doc = {**doc, "data": [a for i, a in enumerate(data) if i % 5 != 4]}
    eval_doc = {**doc, "data": [a for i, a in enumerate(data) if i % 5 == 4]}
    return train_doc, eval_doc


def first_questions(doc: dict[str, Any], limit: int | None) -> dict[str, Any]:
    """The document cut to its first `limit` questions in file order (all when None)."""
    if limit is None:
        return doc
    left = limit
    articles = []
    for article in doc["data"]:
        paragraphs = []
        for paragraph in article["paragraphs"]:
            if left <= 0:
                break
            qas = paragraph["qas"][:left]
            left -= len(qas)
            if qas:
                paragraphs.append({**paragraph, "qas": copy.deepcopy(qas)})
        if paragraphs:
            articles.append({**article, "paragraphs": paragraphs})
        if left <= 0:
            break
    return {**doc, "data": articles}


def count_questions(doc: dict[str, Any]) -> int:
    return sum(len(p["qas"]) for a in doc["data"] for p in a["paragraphs"])


def write_split(
    source: Path, folder: Path, limit_train: int | None, limit_eval: int | None
) -> tuple[Path, Path]:
    """Write the (subset) train and eval splits of `source` as SQuAD JSON into `folder`."""
    if not source.is_file():
        raise UserError(f"{source}: data file not found (set --data-dir)")
    train_doc, eval_doc = split_articles(read_json(source))
    folder.mkdir(parents=True, exist_ok=True)
    paths = folder / "train.json", folder / "eval.json"
    for doc, limit, path in ((train_doc, limit_train, paths[0]), (eval_doc, limit_eval, paths[1])):
        path.write_text(json.dumps(first_questions(doc, limit), ensure_ascii=False), encoding="utf-8")
    return paths


# --- machine and run context -------------------------------------------------------------------


# --- the two sides -----------------------------------------------------------------------------


def peer_side(
    model_path: str,
    train_path: Path,
    eval_path: Path,
    epochs: float,
    precision: str,
    out: Path,
    bs: int = PEER_BS,
    **extra: Any,
) -> dict[str, Any]:
    """Train and evaluate the peer; `eval_s` adds reading the eval file, as evaluate_file does.

    `extra` goes to `run_peer` (`max_steps`, `callbacks`).
    """
    train_rows = load_squad(str(train_path))
    t0 = time.perf_counter()
    dev_rows = load_squad(str(eval_path))
    read_s = time.perf_counter() - t0
    peer = run_peer(model_path, train_rows, dev_rows, bs, PEER_LR, epochs, precision, str(out), **extra)
    peer["eval_read_s"] = round(read_s, 3)
    peer["eval_s"] = round(peer["eval_s"] + read_s, 3)
    return peer


def peer_feature_count(model_path: str, train_path: Path) -> int:
    """The peer's number of training windows (computed without training, for the korquad check)."""
    return len(
        train_features(AutoTokenizer.from_pretrained(model_path), load_squad(str(train_path)))["input_ids"]
    )


def encoderkit_side(
    model: str, train_path: Path, eval_path: Path, output: Path, overrides: dict[str, Any]
) -> dict[str, Any]:
    """One encoderkit run through the Python API, then a timed Predictor evaluation of its model."""
    if output.exists():  # a reused --work-dir
        shutil.rmtree(output)
    config = build_config(
        {},
        {
            "task": "qa",
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
        if '"eval_f1"' in line
    ]
    last = max(evals, key=lambda e: e["step"])
    resolved = yaml.safe_load((result.run_dir / "config.yaml").read_text(encoding="utf-8"))
    release_memory()

    t0 = time.perf_counter()
    predictor = Predictor.from_dir(result.run_dir / "model")
    t1 = time.perf_counter()
    scored = predictor.evaluate_file(str(eval_path), {})
    t2 = time.perf_counter()
    eval_batch_size = predictor.batch_size
    del predictor
    return {
        "train_runtime_s": m["train_runtime_s"],
        "wall_time_s": m["wall_time_s"],
        "train_samples_per_s": m["train_samples_per_s"],
        "steps": m["steps"],
        "best_step": m["best_step"],
        "exact_match": round(m["exact_match"], 2),
        "f1": round(m["f1"], 2),
        "last_exact_match": round(last["eval_exact_match"], 2),
        "last_f1": round(last["eval_f1"], 2),
        "in_training_eval_s": last.get("eval_runtime_s"),
        "load_s": round(t1 - t0, 3),
        "eval_s": round(t2 - t1, 3),
        "eval_batch_size": eval_batch_size,
        "predictor_exact_match": round(scored["exact_match"], 2),
        "predictor_f1": round(scored["f1"], 2),
        "predictor_metric": scored.get("metric"),
        "peak_memory_mb": peak_mb,
        "config": resolved,
    }


def same_overrides(epochs: float, precision: str, bs: int = PEER_BS) -> dict[str, Any]:
    """encoderkit config values of the `same` variant: the peer's recipe."""
    return {
        "batch_size": bs,
        "lr": PEER_LR,
        "epochs": epochs,
        "max_length": MAX_LEN,
        "doc_stride": STRIDE,
        "warmup_ratio": WARMUP,
        "weight_decay": WEIGHT_DECAY,
        "seed": SEED,
        "precision": precision,
        "save_steps": None,  # the peer saves nothing; per-epoch checkpoints remain
    }


def peer_recipe_record(epochs: float, precision: str, bs: int = PEER_BS) -> dict[str, Any]:
    return {
        "max_length": MAX_LEN,
        "doc_stride": STRIDE,
        "padding": "max_length",
        "batch_size": bs,
        "lr": PEER_LR,
        "epochs": epochs,
        "warmup_ratio": WARMUP,
        "weight_decay": WEIGHT_DECAY,
        "seed": SEED,
        "precision": precision,
        "eval_batch_size": EVAL_BATCH_SIZE,
        "eval_precision": precision,
    }


def encoderkit_recipe_record(config: dict[str, Any], eval_batch_size: int) -> dict[str, Any]:
    keys = (
        "max_length", "doc_stride", "max_query_length", "batch_size", "lr", "epochs", "warmup_ratio",
        "weight_decay", "seed", "precision", "max_grad_norm", "group_by_length", "save_steps", "qa_metric",
    )  # fmt: skip
    record = {k: config[k] for k in keys}
    record["padding"] = "dynamic"
    if record["precision"] == "auto":
        record["precision"] = f"auto ({encoderkit_auto_precision()})"
    # Predictor.evaluate_file runs the saved model without autocast.
    record["predictor_eval_batch_size"] = eval_batch_size
    record["predictor_eval_precision"] = "fp32"
    return record


def ratio(peer_s: float | None, ours_s: float) -> float | None:
    return None if peer_s is None else round(peer_s / max(ours_s, 1e-9), 3)


# --- RESULTS.md --------------------------------------------------------------------------------


def table_row(line: dict[str, Any]) -> str:
    def pair(em: float | None, f: float | None) -> str:
        return "-" if em is None or f is None else f"{em:.2f} / {f:.2f}"

    def num(x: float | None, fmt: str = "{:.2f}") -> str:
        return "-" if x is None else fmt.format(x)

    ek = pair(line["encoderkit_exact_match"], line["encoderkit_f1"])
    if line["encoderkit_best_step"] != line["encoderkit_steps"]:
        ek += f" (last {pair(line['encoderkit_last_exact_match'], line['encoderkit_last_f1'])})"
    precision = line["recipe"]["encoderkit"]["precision"]
    cells = [
        line["date"],
        line["commit"],
        line["device"],
        line["task"],
        questions_cell(line),
        line["variant"],
        precision,
        num(line["peer_train_s"]),
        num(line["encoderkit_train_s"]),
        num(line["train_speed_ratio"], "{:.2f}x"),
        num(line["peer_eval_s"]),
        num(line["encoderkit_eval_s"]),
        num(line["eval_speed_ratio"], "{:.2f}x"),
        pair(line["peer_exact_match"], line["peer_f1"]),
        ek,
    ]
    return "| " + " | ".join(str(c).replace("|", "/") for c in cells) + " |"


def questions_cell(line: dict[str, Any]) -> str:
    train_first = "first " if line.get("limit_train") is not None else ""
    eval_first = "first " if line.get("limit_eval") is not None else ""
    windows = f"{line['n_train_features']} windows"
    return f"{train_first}{line['n_train_questions']} ({windows}) / {eval_first}{line['n_eval']}"


def append_rows(path: Path, heading: str, rows: list[str]) -> None:
    note = SECTION_NOTE if heading == HEADINGS["squad"] else KORQUAD_NOTE
    append_table_rows(path, heading, TABLE_HEAD, rows, INTRO, note)


def heading_of(line: dict[str, Any]) -> str:
    return HEADINGS[line["task"].removesuffix("-split")]


def append_saved(jsonl: Path, results: Path) -> int:
    """Append table rows for JSON lines saved from an earlier run, each under its task's heading."""
    lines = read_saved_lines(jsonl, lambda line: (heading_of(line), table_row(line)), "this benchmark")
    if lines is None:
        return 2
    by_heading: dict[str, list[str]] = {}
    for line in lines:
        by_heading.setdefault(heading_of(line), []).append(table_row(line))
    for heading, rows in by_heading.items():
        append_rows(results, heading, rows)
        log(f"appended {len(rows)} row(s) to {results} under {heading!r}")
    return 0


def result_line(
    context: dict[str, Any],
    info: dict[str, Any],
    variant: str,
    peer: dict[str, Any] | None,
    peer_recipe: dict[str, Any] | None,
    ek: dict[str, Any],
) -> dict[str, Any]:
    """The JSON line of one encoderkit run against the peer (None: no peer, as for korquad).

    `info` describes the data: task, n_train_questions, n_train_features, n_eval, subset, limits.
    """
    peer_train_s = peer["train_runtime_s"] if peer else None
    peer_eval_s = peer["eval_s"] if peer else None
    return {
        **context,
        **info,
        "variant": variant,
        "peer": "HF Trainer (peer_hf_qa.run_peer)" if peer else PEER_SKIPPED,
        "recipe": {
            "peer": peer_recipe,
            "encoderkit": encoderkit_recipe_record(ek["config"], ek["eval_batch_size"]),
        },
        "peer_train_s": None if peer_train_s is None else round(peer_train_s, 3),
        "encoderkit_train_s": ek["train_runtime_s"],
        "train_speed_ratio": ratio(peer_train_s, ek["train_runtime_s"]),
        "peer_eval_s": peer_eval_s,
        "encoderkit_eval_s": ek["eval_s"],
        "eval_speed_ratio": ratio(peer_eval_s, ek["eval_s"]),
        "peer_exact_match": peer["exact_match"] if peer else None,
        "peer_f1": peer["f1"] if peer else None,
        "encoderkit_exact_match": ek["exact_match"],
        "encoderkit_f1": ek["f1"],
        "encoderkit_metric": ek["predictor_metric"],
        "encoderkit_best_step": ek["best_step"],
        "encoderkit_steps": ek["steps"],
        "encoderkit_last_exact_match": ek["last_exact_match"],
        "encoderkit_last_f1": ek["last_f1"],
        "encoderkit_predictor_exact_match": ek["predictor_exact_match"],
        "encoderkit_predictor_f1": ek["predictor_f1"],
        "peer_steps": peer["steps"] if peer else None,
        "peer_train_samples_per_s": peer["train_samples_per_s"] if peer else None,
        "encoderkit_train_samples_per_s": ek["train_samples_per_s"],
        "encoderkit_wall_s": ek["wall_time_s"],
        "peer_eval_parts_s": (
            {
                k: peer[f"{k}_s"] if k != "read" else peer["eval_read_s"]
                for k in ("read", "eval_features", "eval_forward", "postprocess", "score")
            }
            if peer
            else None
        ),
        "peer_n_eval_features": peer["n_eval_features"] if peer else None,
        "encoderkit_eval_load_s": ek["load_s"],
        "encoderkit_in_training_eval_s": ek["in_training_eval_s"],
    }


# --- main --------------------------------------------------------------------------------------


def benchmark(
    args: argparse.Namespace, work: Path, model_path: str, precision: str, context: dict[str, Any]
) -> list[dict[str, Any]]:
    source = Path(args.data_dir) / SOURCES[args.task]
    train_path, eval_path = write_split(source, work / "data", args.limit_train, args.limit_eval)
    n_train = count_questions(read_json(train_path))
    n_eval = count_questions(read_json(eval_path))
    subset = "full" if args.limit_train is None and args.limit_eval is None else "subset"
    split = f"{args.task}-split"
    peer_epochs = args.epochs if args.epochs is not None else PEER_EPOCHS

    peer: dict[str, Any] | None = None
    if args.task == "squad":
        log(f"{split}: peer (HF Trainer) on {n_train} train / {n_eval} eval questions, {precision}")
        peer = peer_side(model_path, train_path, eval_path, peer_epochs, precision, work / "peer")
        release_memory()
        log(f"{split}: peer {json.dumps(peer)}")
        n_features = peer["n_train_features"]
    else:
        log(f"{split}: peer {PEER_SKIPPED}")
        n_features = peer_feature_count(model_path, train_path)
    info = {
        "task": split,
        "n_train_questions": n_train,
        "n_train_features": n_features,
        "n_eval": n_eval,
        "subset": subset,
        "limit_train": args.limit_train,
        "limit_eval": args.limit_eval,
    }
    peer_recipe = peer_recipe_record(peer_epochs, precision) if peer else None

    lines = []
    for variant in args.variants:
        overrides: dict[str, Any] = {"qa_metric": METRICS[args.task]}
        if variant == "same":
            overrides.update(same_overrides(peer_epochs, precision))
        elif args.epochs is not None:
            overrides["epochs"] = args.epochs
        log(f"{split}: encoderkit, variant {variant}")
        ek = encoderkit_side(args.model, train_path, eval_path, work / f"encoderkit-{variant}", overrides)
        release_memory()
        log(f"{split}: encoderkit {variant} " + json.dumps({k: v for k, v in ek.items() if k != "config"}))
        lines.append(result_line(context, info, variant, peer, peer_recipe, ek))
    return lines


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
        work = work_folder(stack, args.work_dir, "encoderkit-bench-qa-")
        # Trainer and encoderkit print progress to stdout; keep stdout for the JSON lines.
        stack.enter_context(contextlib.redirect_stdout(sys.stderr))
        log(f"device {context['device']}, model {model_path}, work folder {work}")
        try:
            zeros = torch.zeros(8, dtype=torch.long)
            warm_up(
                AutoModelForQuestionAnswering.from_pretrained(model_path, dtype=torch.float32),
                {"start_positions": zeros, "end_positions": zeros},
                128,
                precision == "bf16",
            )
            lines = benchmark(args, work, model_path, precision, context)
        except UserError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        for line in lines:
            print(json.dumps(line), file=stdout, flush=True)
        if not args.no_write:
            append_rows(Path(args.results), HEADINGS[args.task], [table_row(line) for line in lines])
            log(f"appended {len(lines)} row(s) to {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
