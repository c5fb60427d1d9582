"""`benchmarks/speed.py --scale`: how encoderkit's training time grows, padded and unpadded.

encoderkit alone (there is no peer here) trains on squad-split training questions for one epoch:
the base subset copied 1x / 4x / 16x at max_length 384, then the base at max_length 128 / 256 / 384 /
512. Each point runs twice, padded (`--no-unpad`) and unpadded (`--unpad on` on a CPU, where it runs
the exact per-sequence attention; the default `auto` on a GPU), and gives one JSON line with both,
so a user can read off the cost of a run from its number of features and its length.
"""

from __future__ import annotations

import argparse
import json
import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import harness
import qa_sides as qa
import torch
from common import logger, release_memory

log = logger("bench-speed")

SIZES = "1,4,16"  # copies of the base subset, at max_length 384
LENGTHS = "128,256,384,512"  # max_length values, at the base size
CPU_BASE = 16  # questions: 16x of it is ~8 steps of 32 windows of 384 tokens, minutes on 2 cores
SIZE_LENGTH = 384  # the peer recipe's window


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument(
        "--scale-base",
        type=int,
        help=f"--scale: 1x = the first N squad-split train questions (default: all; {CPU_BASE} on CPU)",
    )
    ap.add_argument(
        "--scale-sizes", default=SIZES, help="--scale: copies of the base, at max_length 384 ('' none)"
    )
    ap.add_argument("--scale-lengths", default=LENGTHS, help="--scale: max_length values, at 1x ('' none)")


def check_arguments(ap: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Turn the --scale lists into ints, or stop with a usage error."""
    try:
        args.scale_sizes = [int(x) for x in args.scale_sizes.split(",") if x.strip()]
        args.scale_lengths = [int(x) for x in args.scale_lengths.split(",") if x.strip()]
    except ValueError:
        ap.error("--scale-sizes and --scale-lengths take comma-separated integers")
    if any(f < 1 for f in args.scale_sizes) or (args.scale_base is not None and args.scale_base < 1):
        ap.error("--scale-sizes and --scale-base must be >= 1")
    if any(n < 96 for n in args.scale_lengths):
        ap.error("--scale-lengths must be >= 96 (questions take up to 64 tokens of a window)")
    if args.scale and not (args.scale_sizes or args.scale_lengths):
        ap.error("--scale: give at least one of --scale-sizes, --scale-lengths")


def doc_stride(max_length: int) -> int:
    """The peer's 128 at 384 and 512; a third of the window below (a stride must fit in the context)."""
    return min(qa.STRIDE, max_length // 3)


def points(sizes: Sequence[int], lengths: Sequence[int]) -> list[tuple[int, int]]:
    """(size factor, max_length) pairs to measure, each once."""
    return list(dict.fromkeys([(f, SIZE_LENGTH) for f in sizes] + [(1, n) for n in lengths]))


def copies(doc: dict[str, Any], factor: int) -> dict[str, Any]:
    """`factor` copies of every article of a SQuAD document, question ids made unique."""
    if factor == 1:
        return doc
    data = [
        {
            **article,
            "title": f"{article.get('title', '')} ({k})",
            "paragraphs": [
                {**p, "qas": [{**q, "id": f"{q['id']}-{k}"} for q in p["qas"]]} for p in article["paragraphs"]
            ],
        }
        for k in range(factor)
        for article in doc["data"]
    ]
    return {**doc, "data": data}


def paths() -> dict[str, tuple[str, ...]]:
    """The two paths measured at each point, as `encoderkit train` flags."""
    unpadded = () if torch.cuda.is_available() else ("--unpad", "on")
    return {"padded": ("--no-unpad",), "unpadded": unpadded}


def train_once(model: str, train_path: Path, output: Path, overrides: dict[str, Any]) -> dict[str, Any]:
    """One encoderkit training run without evaluation; its times, size and peak memory."""
    run = harness.train_encoderkit(
        {"task": "qa", "model": model, "train": str(train_path), "output": str(output), **overrides}
    )
    m = run.metrics
    shutil.rmtree(output, ignore_errors=True)  # 16x runs would otherwise keep checkpoints on disk
    release_memory()
    features = round(m["train_samples_per_s"] * m["train_runtime_s"])  # windows seen (1 epoch: all)
    return {
        "train_s": m["train_runtime_s"],
        "wall_s": m["wall_time_s"],
        "steps": m["steps"],
        "features": features,
        "features_per_s": m["train_samples_per_s"],
        "s_per_1k_features": round(1000 * m["train_runtime_s"] / max(features, 1), 4),
        "peak_memory_mb": run.peak_memory_mb,
        "memory_floor_mb": run.memory_floor_mb,
    }


def run_scale(
    session: harness.Session, flag_overrides: Callable[[Sequence[str]], dict[str, Any]]
) -> Iterator[dict[str, Any]]:
    """One JSON line per (size, max_length) point, padded and unpadded in it."""
    args, work, context = session.args, session.work, session.context
    cuda = torch.cuda.is_available()
    base = args.scale_base if args.scale_base is not None else (None if cuda else CPU_BASE)
    train_doc = qa.first_questions(qa.read_split(Path(args.data_dir) / qa.SOURCES["squad"])[0], base)
    n_base = qa.count_questions(train_doc)
    bs, epochs = args.batch_size or qa.PEER_BS, args.epochs or 1.0
    (work / "data").mkdir(parents=True, exist_ok=True)
    for factor, max_length in points(args.scale_sizes, args.scale_lengths):
        train_path = work / "data" / f"scale-x{factor}.json"
        if not train_path.exists():
            train_path.write_text(json.dumps(copies(train_doc, factor), ensure_ascii=False), encoding="utf-8")
        runs = {}
        for name, flags in paths().items():
            overrides = {
                "batch_size": bs,
                "lr": qa.PEER_LR,
                "epochs": epochs,
                "max_length": max_length,
                "doc_stride": doc_stride(max_length),
                "precision": context["precision"],
                "seed": qa.SEED,
                "save_steps": None,
                **flag_overrides(flags),
            }
            log(f"scale {factor}x, max_length {max_length}: {name} {' '.join(flags)}")
            runs[name] = {
                "flags": list(flags),
                **train_once(args.model, train_path, work / "scale-run", overrides),
            }
        padded_s, unpadded_s = runs["padded"]["train_s"], runs["unpadded"]["train_s"]
        yield {
            "benchmark": "scale",
            **context,
            "task": "squad-split",
            "scale_base": base,
            "size_factor": factor,
            "n_train_questions": n_base * factor,
            "max_length": max_length,
            "doc_stride": doc_stride(max_length),
            "batch_size": bs,
            "epochs": epochs,
            "padded": runs["padded"],
            "unpadded": runs["unpadded"],
            "unpadded_speedup": round(padded_s / max(unpadded_s, 1e-9), 3),
        }
