#!/usr/bin/env python
"""From scratch in Korean: QA from an encoder pretrained by masked-LM on the contexts, against
the same QA from a random encoder (same architecture, same trained tokenizer; one run each).

Data: korquad-split (KorQuAD 1.0 dev, articles with index % 5 != 4 train, == 4 evaluate;
`--limit-train` / `--limit-eval` keep the first N questions of each). The MLM text is the
training contexts, each once (no eval text: the eval set stays unseen).

1. `pretrained`: `--task mlm --strategy scratch --train-tokenizer` on the training contexts (a
   WordPiece vocabulary of `--vocab-size` learnt from them, the `--model` architecture with random
   weights, `--mlm-epochs`), then `--task qa` fully fine-tuned from that folder.
2. `random`: `--task qa --strategy scratch` from the same folder: its architecture and tokenizer,
   new random weights: the Transformer without pretraining.

Both QA runs: `--qa-epochs`, encoderkit's other defaults, the official KorQuAD 1.0 metric.

    python benchmarks/qa_scratch.py --limit-train 40 --limit-eval 10 --mlm-epochs 1 --qa-epochs 1 --no-write
"""

from __future__ import annotations

import harness  # first: it sets HF_HUB_OFFLINE before anything imports huggingface_hub

# isort: split
import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import qa_sides as sides
from common import logger

log = logger("bench")

SEED = 42
HEADING = "## From scratch: KorQuAD QA from an MLM-pretrained vs a random encoder (benchmarks/qa_scratch.py)"
COLUMNS = harness.Columns(
    "data | vocab | MLM epochs / s | QA epochs | random EM / F1 | pretrained EM / F1 | F1 difference",
    "lrrrrrr",
)
NOTE = "Official KorQuAD 1.0 EM / F1 (0-100) on the eval questions; `difference` = pretrained - random."


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = harness.Parser(__doc__)
    ap.add_data("korquad_v1.0/", of="questions")
    ap.add_model("the architecture (and tokenizer algorithm) to train from scratch (default: minilm's)")
    ap.add_argument("--vocab-size", type=int, default=8000, help="the WordPiece vocabulary to learn")
    ap.add_argument("--mlm-epochs", type=float, default=10.0, help="masked-LM epochs on the contexts")
    ap.add_argument("--qa-epochs", type=float, default=2.0, help="QA epochs, both sides")
    ap.add_argument("--max-length", type=int, default=256, help="MLM blocks and QA windows, both")
    ap.add_output()
    ap.check_at_least(64, "max_length")
    return ap.parse(argv)


def table_row(line: harness.Line) -> list[object]:
    return [
        f"korquad-split {line['subset']} ({line['n_train']} / {line['n_eval']} questions)",
        line["vocab_size"],
        f"{line['mlm_epochs']:g} / {line['mlm_train_s']:.0f}",
        f"{line['qa_epochs']:g}",
        harness.slash(line["random_exact_match"], line["random_f1"]),
        harness.slash(line["pretrained_exact_match"], line["pretrained_f1"]),
        f"{line['pretrained_f1'] - line['random_f1']:+.2f}",
    ]


RESULTS = harness.Results.one("benchmarks/qa_scratch.py", harness.Table(HEADING, COLUMNS, table_row, NOTE))


def contexts(doc: dict[str, Any]) -> list[str]:
    """Each paragraph's context once, in file order."""
    seen: dict[str, None] = {}
    for article in doc["data"]:
        for paragraph in article["paragraphs"]:
            seen.setdefault(" ".join(paragraph["context"].split()), None)
    return list(seen)


def mlm_side(model: str, texts: Path, args: argparse.Namespace, output: Path) -> dict[str, Any]:
    fields = {
        "task": "mlm", "model": model, "strategy": "scratch", "train_tokenizer": True,
        "vocab_size": args.vocab_size, "train": str(texts), "epochs": args.mlm_epochs,
        "max_length": args.max_length, "output": str(output), "seed": SEED,
    }  # fmt: skip
    run = harness.train_encoderkit(fields)
    return {"train_s": run.metrics["train_runtime_s"], "steps": run.metrics["steps"]}


def qa_side(
    model: str, strategy: str, files: dict[str, Path], args: argparse.Namespace, output: Path
) -> dict[str, Any]:
    fields = {
        "task": "qa", "model": model, "strategy": strategy, "train": str(files["train"]),
        "eval": str(files["eval"]), "epochs": args.qa_epochs, "max_length": args.max_length,
        "qa_metric": "korquad", "output": str(output), "seed": SEED,
        # SQuAD's 384 / 128 / 64 window, scaled to --max-length.
        "doc_stride": args.max_length // 3, "max_query_length": min(64, args.max_length // 4),
    }  # fmt: skip
    run = harness.train_encoderkit(fields)
    return {"exact_match": run.metrics["exact_match"], "f1": run.metrics["f1"], **run.schedule()}


def measure(session: harness.Session) -> Iterator[harness.Line]:
    args = session.args
    doc = sides.read_json(Path(args.data_dir) / sides.SOURCES["korquad"])
    train_doc, eval_doc = sides.split_articles(doc)
    train_doc = sides.first_questions(train_doc, args.limit_train)
    eval_doc = sides.first_questions(eval_doc, args.limit_eval)
    files = {"train": session.work / "train.json", "eval": session.work / "eval.json"}
    for role, part in (("train", train_doc), ("eval", eval_doc)):
        files[role].write_text(json.dumps(part, ensure_ascii=False), encoding="utf-8")
    texts = session.work / "contexts.txt"
    texts.write_text("".join(c + "\n" for c in contexts(train_doc)), encoding="utf-8")
    mlm = harness.run_side(
        log,
        "MLM from scratch on the contexts",
        mlm_side,
        session.model_path,
        texts,
        args,
        session.work / "mlm",
    )
    encoder = str(session.work / "mlm" / "model")
    pretrained = harness.run_side(
        log,
        "QA from the pretrained encoder",
        qa_side,
        encoder,
        "full",
        files,
        args,
        session.work / "pretrained",
    )
    random = harness.run_side(
        log, "QA from a random encoder", qa_side, encoder, "scratch", files, args, session.work / "random"
    )
    count = sum(len(p["qas"]) for a in train_doc["data"] for p in a["paragraphs"])
    evals = sum(len(p["qas"]) for a in eval_doc["data"] for p in a["paragraphs"])
    subset = "full" if args.limit_train is None and args.limit_eval is None else f"{count}/{evals}"
    yield {
        **session.context,
        "task": "qa-scratch",
        "subset": subset,
        "n_train": count,
        "n_eval": evals,
        "n_contexts": len(contexts(train_doc)),
        "vocab_size": args.vocab_size,
        "max_length": args.max_length,
        "mlm_epochs": args.mlm_epochs,
        "mlm_steps": mlm["steps"],
        "mlm_train_s": mlm["train_s"],
        "qa_epochs": args.qa_epochs,
        "pretrained_exact_match": pretrained["exact_match"],
        "pretrained_f1": pretrained["f1"],
        "random_exact_match": random["exact_match"],
        "random_f1": random["f1"],
        "pretrained_train_s": pretrained["train_runtime_s"],
        "random_train_s": random["train_runtime_s"],
    }


def main(argv: list[str] | None = None) -> int:
    return harness.run(parse_args(argv), measure, RESULTS, log, precision="auto")


if __name__ == "__main__":
    sys.exit(main())
