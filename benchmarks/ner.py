#!/usr/bin/env python
"""Token-classification benchmark: encoderkit `--task ner` against the HF `run_ner.py` recipe, one run.

Data: `--corpus conll2003` (CoNLL-2003 English, IOB1 files: train -> dev and test) or `wnut17`
(WNUT-17, IOB2: train -> dev and test), from ../shared/data. `--limit-train N` / `--limit-eval N`
keep the first N sentences of each file.

1. The peer, as `run_ner.py` does it: the tags in IOB2 (the Hub's `conll2003` is IOB2; the IOB1
   files are converted for it with encoderkit's converter), each sentence tokenized with
   truncation at `--max-length` (a longer sentence loses its tail), the label on each word's first
   sub-token, `DataCollatorForTokenClassification` (dynamic padding), the Trainer with lr 5e-5,
   batch 32, 3 epochs, linear decay, no warmup, no weight decay.
2. encoderkit with the same hyperparameters (variant `same`), given the original files.
3. encoderkit with its own defaults (variant `defaults`: task, model, data and output only).

Quality: one scorer for every side, on the same gold IOB2 tags of every word: seqeval strict IOB2
entity F1 (encoderkit's metric), after one repair applied to all sides alike (a predicted `I-X`
that starts an entity becomes `B-X`, as conlleval reads it). A word the peer's truncation cut off
counts as `O`. Time: each side's pure training time (`train_runtime`).

    python benchmarks/ner.py --limit-train 40 --limit-eval 20 --epochs 1 --no-write
"""

from __future__ import annotations

import harness  # first: it sets HF_HUB_OFFLINE before anything imports huggingface_hub

# isort: split
import argparse
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from common import logger
from transformers import (
    AutoModelForTokenClassification,
    AutoTokenizer,
    DataCollatorForTokenClassification,
    Trainer,
    TrainingArguments,
    set_seed,
)

from encoderkit.data.conll import Sentence, read_sentences
from encoderkit.errors import UserError
from encoderkit.inference.predictor import Predictor
from encoderkit.tasks.tag_schemes import detect_scheme, to_iob2
from encoderkit.tasks.token_classification import Words, score, tag_words

log = logger("bench")

CORPORA = {
    "conll2003": ("conll2003/train.txt.gz", "conll2003/dev.txt.gz", "conll2003/test.txt.gz"),
    "wnut17": (
        "wnut17/wnut17train.conll.gz", "wnut17/emerging.dev.conll.gz", "wnut17/emerging.test.annotated.gz",
    ),
}  # fmt: skip
SPLITS = ("dev", "test")
SEED, LR, BATCH, EPOCHS, MAX_LENGTH = 42, 5e-5, 32, 3.0, 128
VARIANTS = harness.RECIPE_VARIANTS
HEADING = "## Token classification: encoderkit vs HF run_ner.py recipe"
COLUMNS = harness.Columns(
    "corpus | sentences | variant | epochs | peer s | encoderkit s | speed-up | peer F1 dev / test "
    "| encoderkit F1 dev / test | test F1 by type, peer / encoderkit",
    "llllrrrrrl",
)
NOTE = (
    "Entity F1 x100, seqeval strict IOB2, one scorer for both sides; `speed-up` = peer s / encoderkit s "
    "(pure training time); the last column: test F1 by entity type."
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = harness.Parser(__doc__)
    ap.add_argument("--corpus", default="conll2003", choices=sorted(CORPORA))
    ap.add_data("conll2003/ or wnut17/", of="sentences")
    ap.add_model()
    ap.add_epochs(f"epochs of the peer and `same` (default {EPOCHS:g})")
    ap.add_precision()
    ap.add_variants(VARIANTS, VARIANTS, "encoderkit variants: same,defaults")
    ap.add_argument("--max-length", type=int, default=MAX_LENGTH, help="both sides")
    ap.add_output()
    ap.check_at_least(8, "max_length")
    return ap.parse(argv)


def table_row(line: harness.Line) -> list[object]:
    def pair(side: str) -> str:
        return harness.slash(100 * line[f"{side}_dev_f1"], 100 * line[f"{side}_test_f1"])

    peer, ours = line["peer_test_f1_by_type"], line["encoderkit_test_f1_by_type"]
    return [
        line["corpus"],
        f"{line['n_train']} / {line['n_dev']} / {line['n_test']}",
        line["variant"],
        f"{line['peer_epochs']:g} / {line['encoderkit_epochs']:g}",
        f"{line['peer_train_s']:.1f}",
        f"{line['encoderkit_train_s']:.1f}",
        f"{line['speed_ratio']:.2f}x",
        pair("peer"),
        pair("encoderkit"),
        ", ".join(f"{kind} {peer[kind]:.1f} / {ours.get(kind, 0.0):.1f}" for kind in sorted(peer)),
    ]


RESULTS = harness.Results.one("benchmarks/ner.py", harness.Table(HEADING, COLUMNS, table_row, NOTE))


# --- data ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Corpus:
    files: dict[str, Path]  # train, dev, test: what encoderkit reads (the original files, or a prefix)
    sentences: dict[str, list[Sentence]]  # the same sentences, tags in IOB2
    label_names: list[str]


def load_corpus(
    name: str, data_dir: str, limit_train: int | None, limit_eval: int | None, work: Path
) -> Corpus:
    """The splits, read once; a limited split is written as JSONL so both sides see the same prefix."""
    files, sentences = {}, {}
    for split, relative in zip(("train", *SPLITS), CORPORA[name], strict=True):
        path = Path(data_dir) / relative
        if not path.is_file():
            raise UserError(f"{path}: data file not found (set --data-dir)")
        read = read_sentences(str(path), None, None, need_tags=True)
        limit = limit_train if split == "train" else limit_eval
        if limit is not None and limit < len(read):
            read = read[:limit]
            path = work / f"{split}.jsonl"
            rows = (json.dumps({"tokens": s.tokens, "tags": s.tags}) for s in read)
            path.write_text("\n".join(rows) + "\n", encoding="utf-8")
        scheme = detect_scheme([s.tags or [] for s in read])
        files[split] = path
        sentences[split] = [Sentence(s.tokens, to_iob2(s.tags or [], scheme)[0], s.where) for s in read]
    names = sorted({t for s in sentences["train"] for t in s.tags or []})
    return Corpus(files, sentences, names)


def repaired(tags: list[str]) -> list[str]:
    """The one repair every side's predictions get: `I-X` starting an entity reads as `B-X`."""
    return to_iob2(tags, "IOB2")[0]


def f1_figures(gold: list[Sentence], predicted: list[list[str]]) -> dict[str, float]:
    return score([s.tags or [] for s in gold], [repaired(p) for p in predicted], entity_tags=True)


# --- the sides -------------------------------------------------------------------------------------


def encode_first_subtoken(
    tokenizer: Any, sentences: list[Sentence], index: dict[str, int], max_length: int
) -> list[dict[str, Any]]:
    """`run_ner.py`'s `tokenize_and_align_labels` (label_all_tokens False): truncated at `max_length`,
    the label on each word's first sub-token (a tag unseen in training gets class 0: only the
    position matters there, the scorer reads the gold tags)."""
    enc = tokenizer(
        [s.tokens for s in sentences], is_split_into_words=True, truncation=True, max_length=max_length
    )
    rows = []
    for i, sentence in enumerate(sentences):
        labels, previous, tags = [], None, sentence.tags or []
        for word in enc.word_ids(i):
            labels.append(-100 if word is None or word == previous else index.get(tags[word], 0))
            previous = word
        rows.append({**{k: enc[k][i] for k in enc}, "labels": labels})
    return rows


def peer_side(
    model_path: str, corpus: Corpus, epochs: float, max_length: int, output: Path, precision: str
) -> dict[str, Any]:
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    names = corpus.label_names
    index = {n: i for i, n in enumerate(names)}
    set_seed(SEED)
    model = AutoModelForTokenClassification.from_pretrained(
        model_path,
        dtype=torch.float32,
        num_labels=len(names),
        id2label=dict(enumerate(names)),
        label2id=index,
    )
    training = TrainingArguments(
        output_dir=str(output),
        per_device_train_batch_size=BATCH,
        per_device_eval_batch_size=64,
        learning_rate=LR,
        num_train_epochs=epochs,
        logging_steps=500,
        save_strategy="no",
        report_to=[],
        bf16=precision == "bf16",
        seed=SEED,
    )
    train_rows = encode_first_subtoken(tokenizer, corpus.sentences["train"], index, max_length)
    trainer = Trainer(
        model=model,
        args=training,
        train_dataset=train_rows,
        data_collator=DataCollatorForTokenClassification(tokenizer),
    )
    out = trainer.train()
    result: dict[str, Any] = {"steps": out.global_step, "train_s": out.metrics["train_runtime"]}
    for split in SPLITS:
        sentences = corpus.sentences[split]
        rows: Any = encode_first_subtoken(tokenizer, sentences, index, max_length)  # a list is a Dataset
        logits = trainer.predict(rows).predictions  # [N, L, C], padded
        predicted = [
            peer_word_tags(logits[i], row["labels"], len(s.tokens), names)
            for i, (row, s) in enumerate(zip(rows, sentences, strict=True))
        ]
        result[split] = f1_figures(sentences, predicted)
    return result


def peer_word_tags(logits: np.ndarray, labels: list[int], words: int, names: list[str]) -> list[str]:
    """The argmax at each labelled (first sub-token) position, in word order; words cut off -> `O`."""
    tags = [names[int(np.argmax(logits[p]))] for p, label in enumerate(labels) if label != -100]
    return tags + ["O"] * (words - len(tags))


def encoderkit_side(model: str, corpus: Corpus, overrides: dict[str, Any], output: Path) -> dict[str, Any]:
    fields = {
        "task": "ner",
        "model": model,
        "train": str(corpus.files["train"]),
        "eval": str(corpus.files["dev"]),
        "output": str(output),
    }
    run = harness.train_encoderkit({**fields, **overrides})
    predictor = Predictor.from_dir(run.run_dir / "model")
    result: dict[str, Any] = {
        **run.schedule(),
        "epochs": run.config["epochs"],
        "own_dev_f1": run.metrics.get("f1"),  # its own evaluation of the best checkpoint
    }
    for split in SPLITS:
        sentences = corpus.sentences[split]
        tagged = tag_words([Words(s.tokens, None, None) for s in sentences], predictor)
        result[split] = f1_figures(sentences, [[t for t, _ in words] for words in tagged])
    return result


def same_overrides(epochs: float, max_length: int, precision: str) -> dict[str, Any]:
    return {
        "lr": LR, "batch_size": BATCH, "epochs": epochs, "max_length": max_length, "warmup_ratio": 0.0,
        "weight_decay": 0.0, "seed": SEED, "save_steps": 10**9, "eval_at_start": False,
        "precision": precision,
    }  # fmt: skip


def per_type(figures: dict[str, float]) -> dict[str, float]:
    return {k.removeprefix("f1_"): round(100 * v, 2) for k, v in figures.items() if k.startswith("f1_")}


def measure(session: harness.Session) -> Iterator[harness.Line]:
    args, precision = session.args, session.precision
    epochs = args.epochs or EPOCHS
    corpus = load_corpus(args.corpus, args.data_dir, args.limit_train, args.limit_eval, session.work)
    counts = {f"n_{split}": len(s) for split, s in corpus.sentences.items()}
    label = f"{args.corpus}: peer (run_ner.py recipe) on {counts['n_train']} sentences"
    peer = harness.run_side(
        log,
        label,
        peer_side,
        session.model_path,
        corpus,
        epochs,
        args.max_length,
        session.work / "peer",
        precision,
    )
    for variant in args.variants:
        overrides = same_overrides(epochs, args.max_length, precision) if variant == "same" else {}
        output = session.work / f"encoderkit-{variant}"
        ours = harness.run_side(
            log, f"encoderkit, variant {variant}", encoderkit_side, args.model, corpus, overrides, output
        )
        yield {
            **session.context,
            "task": "token-classification",
            "corpus": args.corpus,
            **counts,
            "variant": variant,
            "recipe": {
                "lr": LR,
                "batch_size": BATCH,
                "max_length": args.max_length,
                "warmup": 0.0,
                "weight_decay": 0.0,
                "seed": SEED,
            },
            "peer_epochs": epochs,
            "encoderkit_epochs": ours["epochs"],
            "peer_steps": peer["steps"],
            "encoderkit_steps": ours["steps"],
            "peer_train_s": peer["train_s"],
            "encoderkit_train_s": ours["train_runtime_s"],
            "speed_ratio": harness.ratio(peer["train_s"], ours["train_runtime_s"]),
            **{
                f"{side}_{split}_{m}": figures[split][m]
                for side, figures in (("peer", peer), ("encoderkit", ours))
                for split in SPLITS
                for m in ("f1", "precision", "recall")
            },
            "peer_test_f1_by_type": per_type(peer["test"]),
            "encoderkit_test_f1_by_type": per_type(ours["test"]),
            "encoderkit_own_dev_f1": ours["own_dev_f1"],
        }


def main(argv: list[str] | None = None) -> int:
    return harness.run(parse_args(argv), measure, RESULTS, log)


if __name__ == "__main__":
    sys.exit(main())
