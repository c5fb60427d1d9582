"""The peer: sequence classification with the Hugging Face Trainer and dynamic padding.

A faithful re-implementation, as importable functions, of ``../shared/tools/peer/hf_cls_baseline.py``
(the script that measured the peer figures in ``../shared/guides/benchmarks.md``). Kept the same:

- ``read_rows``: GLUE TSV read with ``csv`` (tab, ``QUOTE_NONE``, ``utf-8-sig``), MRPC columns 3/4/0,
  SST-2 columns 0/1; IMDB JSONL ``text``/``label``.
- ``Enc``: tokenize once with ``truncation=True, max_length=max_len`` and no padding;
  ``DataCollatorWithPadding`` pads each batch.
- ``AutoModelForSequenceClassification.from_pretrained(model, num_labels=2, dtype=torch.float32)``.
- ``TrainingArguments``: ``per_device_eval_batch_size=256``, ``warmup_steps=0.1`` (a float < 1 is
  a ratio of the total steps in transformers 5), ``weight_decay=0.01``, ``logging_steps=500``,
  ``save_strategy="no"``, ``report_to=[]``, ``seed=42``; the Trainer's defaults otherwise (fused
  AdamW, linear decay, grad clipping 1.0, random sampler).
- Metrics with scikit-learn on ``Trainer.predict`` of the eval split: accuracy, binary F1 (label 1),
  MCC; time = ``train_runtime`` of ``Trainer.train()``.

Differences, all forced by where it runs or needed for subsets:

- ``bf16`` only on CUDA (the peer's default ``--precision bf16`` would fail or emulate on CPU);
  ``dataloader_num_workers`` 4 on CUDA as in the peer, 0 on CPU (no worker processes competing
  for the few cores of the shared CPU machines).
- ``limit``: keep only the first N rows; ``balanced=True`` interleaves the classes in file order
  first (label 0, 1, 0, 1, ...), so a prefix has both classes even if a file is sorted by label.
- ``output_dir`` is a caller-given temporary folder instead of ``/tmp/hfcls``.
- ``set_seed(42)`` before the model is built, so the new head's initial weights do not depend on
  what ran earlier in the same process (the peer script builds it from torch's start-up seed).
- ``callbacks``: extra ``TrainerCallback``s (e.g. to measure memory) when a caller gives them.
"""

from __future__ import annotations

import csv
import gzip
import json
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    Trainer,
    TrainingArguments,
    set_seed,
)

Row = tuple[str, str | None, int]  # (text, text_pair or None, label)


@dataclass(frozen=True)
class PeerRecipe:
    """Per-task peer hyperparameters, from the table in ../shared/guides/benchmarks.md."""

    max_len: int
    bs: int
    lr: float
    epochs: float


RECIPES = {
    "mrpc": PeerRecipe(max_len=128, bs=8, lr=5e-5, epochs=3),
    "sst2": PeerRecipe(max_len=128, bs=32, lr=5e-5, epochs=1),
    "imdb": PeerRecipe(max_len=256, bs=8, lr=2e-5, epochs=3),
}
WARMUP = 0.1
WEIGHT_DECAY = 0.01
SEED = 42
EVAL_BATCH_SIZE = 256
LOGGING_STEPS = 500


def read_rows(path: str, limit: int | None = None, balanced: bool = False) -> list[Row]:
    """All rows of a GLUE TSV (MRPC, SST-2) or IMDB JSONL file, as the peer reads them.

    `limit` keeps the first N rows (after interleaving the classes when `balanced`).
    """
    op: Any = gzip.open if path.endswith(".gz") else open
    rows: list[Row]
    if ".jsonl" in path:
        with op(path, "rt", encoding="utf-8") as f:
            records = [json.loads(line) for line in f]
        rows = [(r["text"], None, r["label"]) for r in records]
    else:
        with op(path, "rt", encoding="utf-8-sig") as f:
            rd = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
            head = next(rd)
            if "#1 String" in head:  # MRPC
                rows = [(r[3], r[4], int(r[0])) for r in rd]
            else:  # SST-2
                rows = [(r[0], None, int(r[1])) for r in rd]
    return select(rows, limit, balanced)


def select(rows: list[Row], limit: int | None, balanced: bool) -> list[Row]:
    """The first `limit` rows; with `balanced`, of the classes interleaved in file order."""
    if balanced:
        by_label: dict[int, list[Row]] = {}
        for row in rows:
            by_label.setdefault(row[2], []).append(row)
        queues = [by_label[k] for k in sorted(by_label)]
        rows = [q[i] for i in range(max(map(len, queues), default=0)) for q in queues if i < len(q)]
    return rows if limit is None else rows[:limit]


def training_arguments(
    output_dir: str,
    bs: int,
    lr: float,
    epochs: float,
    logging_steps: int,
    *,
    bf16: bool,
    fp16: bool = False,
    max_steps: int = -1,
) -> TrainingArguments:
    """The ``TrainingArguments`` both peer scripts pass (``hf_cls_baseline.py``, ``hf_qa_baseline.py``):
    the recipe's batch size, lr, epochs and logging interval; eval batch 256, warmup 0.1, weight
    decay 0.01, no saving, no reporting, seed 42; 4 dataloader workers on CUDA, none on CPU."""
    return TrainingArguments(
        output_dir=output_dir,
        per_device_train_batch_size=bs,
        per_device_eval_batch_size=EVAL_BATCH_SIZE,
        learning_rate=lr,
        num_train_epochs=epochs,
        max_steps=max_steps,  # -1 (the default): train `epochs`
        warmup_steps=WARMUP,
        weight_decay=WEIGHT_DECAY,
        bf16=bf16,
        fp16=fp16,
        logging_steps=logging_steps,
        save_strategy="no",
        report_to=[],
        dataloader_num_workers=4 if torch.cuda.is_available() else 0,
        seed=SEED,
    )


class Enc(torch.utils.data.Dataset):
    """Tokenized once, unpadded; the collator pads each batch (as in the peer)."""

    def __init__(self, tok: Any, rows: list[Row], max_len: int) -> None:
        a = [r[0] for r in rows]
        b = [r[1] for r in rows] if rows[0][1] is not None else None
        self.enc = tok(a, b, truncation=True, max_length=max_len)
        self.y = [r[2] for r in rows]

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {**{k: v[i] for k, v in self.enc.items()}, "labels": self.y[i]}


def run_peer(
    model_path: str,
    train_rows: list[Row],
    eval_rows: list[Row],
    recipe: PeerRecipe,
    output_dir: str,
    bf16: bool,
    callbacks: list[Any] | None = None,
) -> dict[str, Any]:
    """Fine-tune and evaluate like the peer; metrics on the 0-100 scale, times in seconds.

    `callbacks` go to the Trainer.
    """
    tok = AutoTokenizer.from_pretrained(model_path)
    dtr, dev = Enc(tok, train_rows, recipe.max_len), Enc(tok, eval_rows, recipe.max_len)
    set_seed(SEED)
    model = AutoModelForSequenceClassification.from_pretrained(model_path, num_labels=2, dtype=torch.float32)
    args = training_arguments(
        output_dir,
        recipe.bs,
        recipe.lr,
        recipe.epochs,
        LOGGING_STEPS,
        bf16=bf16 and torch.cuda.is_available(),
    )
    t = Trainer(
        model=model,
        args=args,
        train_dataset=dtr,
        data_collator=DataCollatorWithPadding(tok),
        callbacks=callbacks,
    )
    out = t.train()
    p = t.predict(dev)
    y = np.array(dev.y)
    yh = cast(np.ndarray, p.predictions).argmax(-1)  # one head: one array of logits
    result = {
        "n_train": len(train_rows),
        "n_eval": len(eval_rows),
        "steps": out.global_step,
        "train_runtime_s": out.metrics["train_runtime"],
        "train_samples_per_s": out.metrics["train_samples_per_second"],
        "accuracy": round(100 * accuracy_score(y, yh), 2),
        "f1": round(100 * f1_score(y, yh), 2),
        "mcc": round(100 * matthews_corrcoef(y, yh), 2),
    }
    del t, model
    return result
