#!/usr/bin/env python
"""Masked-LM benchmark: encoderkit `--task mlm` against the HF `run_mlm.py` recipe, same text, one run.

Data (squad-split contexts): the paragraphs of SQuAD v1.1 dev (or KorQuAD 1.0 dev with
`--corpus korquad`), each once; articles whose index % 5 != 4 train, those with index % 5 == 4
evaluate. `--limit-train N` / `--limit-eval N` keep the first N paragraphs.

1. The peer, as `run_mlm.py` does it: each text tokenized with its special tokens, all of them
   concatenated and cut into `--max-length` blocks (`group_texts`, the remainder dropped),
   `DataCollatorForLanguageModeling` (15%, 80/10/10, new masks every batch), the Trainer with
   lr 5e-5, batch 32, its defaults otherwise (no warmup, no weight decay, linear decay).
2. encoderkit with the same hyperparameters (variant `same`: lr, batch, epochs, max_length,
   warmup 0, weight decay 0, seed 42, no step checkpoints).

Quality: both trained models are scored by one function on one fixed masking of the eval text
(encoderkit's eval sequences and masks: `masking.EVAL_SEED`), so the perplexities compare the
models, not two maskings. Time: each side's pure training time (`train_runtime`).

    python benchmarks/mlm.py --limit-train 40 --limit-eval 10 --max-length 64 --no-write
"""

from __future__ import annotations

import harness  # first: it sets HF_HUB_OFFLINE before anything imports huggingface_hub

# isort: split
import argparse
import gzip
import json
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from common import logger
from transformers import (
    AutoModelForMaskedLM,
    AutoTokenizer,
    DataCollatorForLanguageModeling,
    Trainer,
    TrainingArguments,
    set_seed,
)

from encoderkit.errors import UserError
from encoderkit.features.collate import Collator
from encoderkit.features.encoded import Encoded
from encoderkit.features.forward import forward_all
from encoderkit.tasks.masking import masking_for
from encoderkit.tasks.mlm import eval_masking, masked_sums, scores, tokenize

log = logger("bench")

CORPORA = {"squad": "squad_v1.1/dev-v1.1.json.gz", "korquad": "korquad_v1.0/KorQuAD_v1.0_dev.json.gz"}
SEED, MLM_PROBABILITY, EVAL_BATCH = 42, 0.15, 64
HEADING = "## Masked LM: encoderkit vs HF run_mlm.py recipe"
COLUMNS = harness.Columns(
    "corpus | texts | max_length | epochs | peer s | encoderkit s | speed-up | peer ppl | encoderkit ppl "
    "| ppl ratio",
    "lrrrrrrrrr",
)
NOTE = (
    "Both models scored on one fixed masking of the eval text (encoderkit's eval masking); "
    "`ppl ratio` = encoderkit / peer (below 1: encoderkit better); `speed-up` = peer s / encoderkit s."
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = harness.Parser(__doc__)
    ap.add_argument("--corpus", default="squad", choices=sorted(CORPORA))
    ap.add_data("squad_v1.1/ or korquad_v1.0/", of="paragraphs")
    ap.add_model("`minilm` (bundled; its MLM head is new on both sides) or a model folder")
    ap.add_argument("--max-length", type=int, default=128, help="block length, both sides")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_epochs("epochs, both sides (default 1)")
    ap.add_precision()
    ap.add_output()
    ap.check_at_least(8, "max_length")
    return ap.parse(argv)


def table_row(line: harness.Line) -> list[object]:
    return [
        line["corpus"],
        f"{line['n_train']} / {line['n_eval']}",
        line["max_length"],
        line["epochs"],
        f"{line['peer_train_s']:.1f}",
        f"{line['encoderkit_train_s']:.1f}",
        f"{line['speed_ratio']:.2f}x",
        f"{line['peer_perplexity']:.2f}",
        f"{line['encoderkit_perplexity']:.2f}",
        f"{line['perplexity_ratio']:.3f}",
    ]


RESULTS = harness.Results.one("benchmarks/mlm.py", harness.Table(HEADING, COLUMNS, table_row, NOTE))


# --- data ------------------------------------------------------------------------------------------


def split_contexts(
    path: Path, limit_train: int | None, limit_eval: int | None
) -> tuple[list[str], list[str]]:
    """(train, eval) paragraphs: articles with index % 5 != 4, and == 4; each paragraph once."""
    if not path.is_file():
        raise UserError(f"{path}: data file not found (set --data-dir)")
    with gzip.open(path, "rt", encoding="utf-8") as f:
        articles = json.load(f)["data"]
    pick = [[p["context"].strip() for a in articles[r::5] for p in a["paragraphs"]] for r in (0, 1, 2, 3, 4)]
    train = [c for r in (0, 1, 2, 3) for c in pick[r]]
    return train[:limit_train], pick[4][:limit_eval]


# --- the sides -------------------------------------------------------------------------------------


class Blocks(torch.utils.data.Dataset):
    """`run_mlm.py`'s `group_texts`: texts with their special tokens, concatenated, cut into blocks
    of `size`, the remainder dropped; special-token masks kept so the collator never masks them."""

    def __init__(self, tokenizer: Any, texts: list[str], size: int) -> None:
        enc = tokenizer(texts, return_special_tokens_mask=True, return_attention_mask=False)
        keys = [k for k in ("input_ids", "token_type_ids", "special_tokens_mask") if k in enc]
        joined = {k: [t for row in enc[k] for t in row] for k in keys}
        usable = len(joined["input_ids"]) // size * size
        self.rows = [{k: v[i : i + size] for k, v in joined.items()} for i in range(0, usable, size)]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.rows[i]


def peer_side(
    model_path: str, texts: list[str], args: argparse.Namespace, output: Path, precision: str
) -> dict[str, Any]:
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    data = Blocks(tokenizer, texts, args.max_length)
    set_seed(SEED)
    model = AutoModelForMaskedLM.from_pretrained(model_path, dtype=torch.float32)
    training = TrainingArguments(
        output_dir=str(output),
        per_device_train_batch_size=args.batch_size,
        learning_rate=args.lr,
        num_train_epochs=args.epochs,
        logging_steps=500,
        save_strategy="no",
        report_to=[],
        dataloader_num_workers=4 if torch.cuda.is_available() else 0,
        bf16=precision == "bf16",
        seed=SEED,
    )
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=MLM_PROBABILITY)
    trainer = Trainer(model=model, args=training, train_dataset=data, data_collator=collator)
    out = trainer.train()
    model.save_pretrained(output / "model")
    tokenizer.save_pretrained(output / "model")
    return {"blocks": len(data), "steps": out.global_step, "train_s": out.metrics["train_runtime"]}


def encoderkit_side(
    model: str, files: tuple[Path, Path], args: argparse.Namespace, output: Path, precision: str
) -> dict[str, Any]:
    overrides = {
        "max_length": args.max_length, "batch_size": args.batch_size, "lr": args.lr,
        "epochs": args.epochs, "warmup_ratio": 0.0, "weight_decay": 0.0, "seed": SEED,
        "save_steps": 10**9, "eval_at_start": False, "mlm_probability": MLM_PROBABILITY,
        "precision": precision,
    }  # fmt: skip
    fields = {
        "task": "mlm",
        "model": model,
        "train": str(files[0]),
        "eval": str(files[1]),
        "output": str(output),
    }
    run = harness.train_encoderkit({**fields, **overrides})
    return {
        "steps": run.metrics["steps"],
        "train_s": run.metrics["train_runtime_s"],
        "own_perplexity": run.metrics["perplexity"],  # its own evaluation, for a consistency check
    }


def fixed_masking_scores(model_dir: Path, eval_texts: list[str], max_length: int) -> dict[str, float]:
    """Loss, perplexity and accuracy of the model in `model_dir` on encoderkit's fixed eval masking
    (tokenized with the model's own tokenizer: both sides share the base model's)."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForMaskedLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    masking = masking_for(tokenizer, MLM_PROBABILITY, whole_words=False)
    inputs, labels = eval_masking(tokenizer, tokenize(tokenizer, eval_texts), max_length, False, masking)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    collator = Collator(tokenizer.pad_token_id)  # right padding, as masked_sums(..., pad_left=False) reads
    reduce = masked_sums(labels, pad_left=False)
    return scores(forward_all(model.to(device), Encoded(inputs), EVAL_BATCH, device, collator, reduce=reduce))


def measure(session: harness.Session) -> Iterator[harness.Line]:
    args = session.args
    args.epochs = args.epochs or 1.0
    train_texts, eval_texts = split_contexts(
        Path(args.data_dir) / CORPORA[args.corpus], args.limit_train, args.limit_eval
    )
    files = (session.work / "train.txt", session.work / "eval.txt")
    for path, texts in zip(files, (train_texts, eval_texts), strict=True):
        path.write_text("\n".join(t.replace("\n", " ") for t in texts) + "\n", encoding="utf-8")
    label = f"{args.corpus}: peer (run_mlm.py recipe) on {len(train_texts)} paragraphs"
    peer = harness.run_side(
        log, label, peer_side, session.model_path, train_texts, args, session.work / "peer", session.precision
    )
    ours = harness.run_side(
        log, "encoderkit", encoderkit_side, args.model, files, args, session.work / "ek", session.precision
    )
    peer_scores = fixed_masking_scores(session.work / "peer" / "model", eval_texts, args.max_length)
    ours_scores = fixed_masking_scores(session.work / "ek" / "model", eval_texts, args.max_length)
    if not math.isclose(ours_scores["perplexity"], ours["own_perplexity"], rel_tol=1e-3):
        log(f"warning: encoderkit's own perplexity {ours['own_perplexity']:.4f} differs from the rescore")
    yield {
        **session.context,
        "task": "mlm",
        "corpus": args.corpus,
        "n_train": len(train_texts),
        "n_eval": len(eval_texts),
        "max_length": args.max_length,
        "epochs": args.epochs,
        "recipe": {
            "lr": args.lr,
            "batch_size": args.batch_size,
            "mlm_probability": MLM_PROBABILITY,
            "precision": session.precision,
            "warmup": 0.0,
            "weight_decay": 0.0,
            "seed": SEED,
        },
        "peer_blocks": peer["blocks"],
        "peer_steps": peer["steps"],
        "encoderkit_steps": ours["steps"],
        "peer_train_s": peer["train_s"],
        "encoderkit_train_s": ours["train_s"],
        "speed_ratio": harness.ratio(peer["train_s"], ours["train_s"]),
        "peer_perplexity": peer_scores["perplexity"],
        "encoderkit_perplexity": ours_scores["perplexity"],
        "perplexity_ratio": harness.ratio(ours_scores["perplexity"], peer_scores["perplexity"], 4),
        "peer_accuracy": peer_scores["accuracy"],
        "encoderkit_accuracy": ours_scores["accuracy"],
        "masked_tokens": ours_scores["masked_tokens"],
    }


def main(argv: list[str] | None = None) -> int:
    return harness.run(parse_args(argv), measure, RESULTS, log)


if __name__ == "__main__":
    sys.exit(main())
