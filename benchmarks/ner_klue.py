#!/usr/bin/env python
"""KLUE-NER pipeline check (Korean, character-level tags): encoderkit end to end on a language the
bundled model hardly covers. No peer: this checks that the pipeline works, not a speed.

Data: KLUE-NER v1.1 dev (../shared/data/klue_ner), one character a line; space characters are
dropped (they are not tokens), so a sentence is its characters and their IOB2 tags. Sentences
with index % 5 != 4 train, those with index % 5 == 4 evaluate (`--limit-train` / `--limit-eval`
keep the first N of each).

Two routes, each scored by encoderkit's own evaluation (seqeval strict IOB2 entity F1 over
characters):

1. `minilm`: NER straight from the bundled MiniLM. Its uncased WordPiece decomposes Hangul
   syllables into jamo, so most characters tokenize, as 2-3 pieces each.
2. `scratch-mlm`: a tokenizer trained on the training text and a MiniLM-shaped encoder trained
   from scratch by masked-LM on the same text (`--task mlm --strategy scratch --train-tokenizer`),
   then NER from that folder: the Korean route the MLM and NER tasks together make possible.

    python benchmarks/ner_klue.py --limit-train 60 --limit-eval 20 --mlm-epochs 1 --ner-epochs 1 --no-write
"""

from __future__ import annotations

import harness  # first: it sets HF_HUB_OFFLINE before anything imports huggingface_hub

# isort: split
import argparse
import gzip
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from common import logger
from transformers import AutoTokenizer

from encoderkit.errors import UserError
from encoderkit.tasks.token_features import build_windows

log = logger("bench")

FILE = "klue_ner/klue-ner-v1.1_dev.tsv.gz"
ROUTES = ("minilm", "scratch-mlm")
HEADING = "## Token classification: KLUE-NER pipeline check (Korean, character tags)"
COLUMNS = harness.Columns(
    "route | sentences | tokenizer | unknown chars | pieces / char | MLM s | NER s | F1 | F1 by type",
    "llrrrrrrl",
)
NOTE = (
    "Entity F1 x100 (seqeval strict IOB2 over characters) on the held-out fifth of KLUE-NER dev; "
    "no peer: a pipeline check."
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = harness.Parser(__doc__)
    ap.add_data("klue_ner/", of="sentences")
    ap.add_model("the model NER starts from in route `minilm`, and whose shape `scratch-mlm` takes")
    ap.add_variants(ROUTES, ROUTES, "routes: minilm,scratch-mlm")
    ap.add_argument("--vocab-size", type=int, default=8000, help="scratch-mlm: the tokenizer's vocabulary")
    ap.add_argument("--mlm-epochs", type=float, default=20.0, help="scratch-mlm: masked-LM epochs")
    ap.add_argument("--ner-epochs", type=float, help="NER epochs (default: encoderkit's auto)")
    ap.add_output()
    return ap.parse(argv)


def table_row(line: harness.Line) -> list[object]:
    by_type = ", ".join(f"{k} {v:.1f}" for k, v in sorted(line["f1_by_type"].items()))
    return [
        line["variant"],
        f"{line['n_train']} / {line['n_eval']}",
        line["tokenizer"],
        f"{100 * line['unknown_char_share']:.2f}%",
        f"{line['pieces_per_char']:.2f}",
        harness.num(line["mlm_train_s"], "{:.1f}"),
        f"{line['ner_train_s']:.1f}",
        f"{100 * line['f1']:.2f}",
        by_type,
    ]


RESULTS = harness.Results.one("benchmarks/ner_klue.py", harness.Table(HEADING, COLUMNS, table_row, NOTE))


def read_klue(path: Path) -> list[tuple[list[str], list[str]]]:
    """(characters, tags) per sentence, spaces dropped; `##` lines are headers and sentence ids."""
    if not path.is_file():
        raise UserError(f"{path}: data file not found (set --data-dir)")
    sentences: list[tuple[list[str], list[str]]] = []
    chars: list[str] = []
    tags: list[str] = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in [*f.read().split("\n"), ""]:
            if line.startswith("##"):
                continue
            if not line.strip("\n"):
                if chars:
                    sentences.append((chars, tags))
                chars, tags = [], []
                continue
            char, _, tag = line.partition("\t")
            if not char.isspace():
                chars.append(char)
                tags.append(tag)
    return sentences


def coverage(model: str | Path, sentences: list[list[str]]) -> tuple[float, float]:
    """(share of characters that become [UNK], sub-token pieces per character) for a tokenizer."""
    tokenizer = AutoTokenizer.from_pretrained(model)
    features = build_windows(tokenizer, sentences, None, max_length=10**6, stride=0)
    chars = sum(len(s) for s in sentences)
    ids = [
        i
        for row, words in zip(features.input_ids, features.word_ids, strict=True)
        for i, w in zip(row, words, strict=True)
        if w is not None
    ]
    return sum(i == tokenizer.unk_token_id for i in ids) / chars, len(ids) / chars


def mlm_side(model: str, texts: Path, args: argparse.Namespace, output: Path) -> dict[str, Any]:
    fields = {
        "task": "mlm", "model": model, "strategy": "scratch", "train_tokenizer": True,
        "vocab_size": args.vocab_size, "train": str(texts), "epochs": args.mlm_epochs, "output": str(output),
    }  # fmt: skip
    run = harness.train_encoderkit(fields)
    return {"train_s": run.metrics["train_runtime_s"], "steps": run.metrics["steps"]}


def ner_side(model: str, files: dict[str, Path], epochs: float | None, output: Path) -> dict[str, Any]:
    fields: dict[str, Any] = {"task": "ner", "model": model, "output": str(output)}
    fields |= {"train": str(files["train"]), "eval": str(files["eval"])}
    if epochs:
        fields["epochs"] = epochs
    run = harness.train_encoderkit(fields)
    figures = {k: run.metrics[k] for k in ("f1", "precision", "recall", "steps")}
    by_type = {
        k.removeprefix("f1_"): round(100 * v, 2) for k, v in run.metrics.items() if k.startswith("f1_")
    }
    return {
        **figures,
        "train_s": run.metrics["train_runtime_s"],
        "epochs": run.config["epochs"],
        "by_type": by_type,
    }


def measure(session: harness.Session) -> Iterator[harness.Line]:
    args = session.args
    sentences = read_klue(Path(args.data_dir) / FILE)
    split = {
        "train": [s for i, s in enumerate(sentences) if i % 5 != 4][: args.limit_train],
        "eval": [s for i, s in enumerate(sentences) if i % 5 == 4][: args.limit_eval],
    }
    files = {name: session.work / f"{name}.jsonl" for name in split}
    for name, rows in split.items():
        lines = (json.dumps({"tokens": c, "tags": t}, ensure_ascii=False) + "\n" for c, t in rows)
        files[name].write_text("".join(lines), encoding="utf-8")
    texts = session.work / "train.txt"  # the MLM text: each training sentence once, as characters
    texts.write_text("".join("".join(c) + "\n" for c, _ in split["train"]), encoding="utf-8")
    eval_chars = [c for c, _ in split["eval"]]
    for route in args.variants:
        mlm: dict[str, Any] = {}
        start_from = session.model_path
        if route == "scratch-mlm":
            output = session.work / "mlm"
            mlm = harness.run_side(
                log, "MLM from scratch, trained tokenizer", mlm_side, args.model, texts, args, output
            )
            start_from = str(output / "model")
        unknown, pieces = coverage(start_from, eval_chars)
        ner = harness.run_side(
            log,
            f"NER from {route}",
            ner_side,
            start_from,
            files,
            args.ner_epochs,
            session.work / f"ner-{route}",
        )
        trained = f"trained WordPiece {args.vocab_size}"
        yield {
            **session.context,
            "task": "token-classification",
            "corpus": "klue-ner-dev-split",
            "variant": route,
            "n_train": len(split["train"]),
            "n_eval": len(split["eval"]),
            "tokenizer": "minilm WordPiece (jamo)" if route == "minilm" else trained,
            "unknown_char_share": unknown,
            "pieces_per_char": pieces,
            "mlm_epochs": args.mlm_epochs if mlm else None,
            "mlm_train_s": mlm.get("train_s"),
            "ner_epochs": ner["epochs"],
            "ner_train_s": ner["train_s"],
            "f1": ner["f1"],
            "precision": ner["precision"],
            "recall": ner["recall"],
            "f1_by_type": ner["by_type"],
        }


def main(argv: list[str] | None = None) -> int:
    return harness.run(parse_args(argv), measure, RESULTS, log, precision="auto")


if __name__ == "__main__":
    sys.exit(main())
