"""The peer: extractive QA fine-tuning with the Hugging Face Trainer, run_qa style.

A faithful re-implementation, as importable functions, of ``../shared/tools/peer/hf_qa_baseline.py``
(the script that measured the squad-split peer figures in ``../shared/guides/benchmarks.md``).
Kept the same:

- ``load_squad``: every question of a SQuAD JSON file (optionally gzipped) in file order, question
  ``lstrip``-ed, answers as ``{"text": [...], "answer_start": [...]}``.
- ``train_features``: one tokenizer call with ``truncation="only_second", max_length=384, stride=128,
  return_overflowing_tokens, return_offsets_mapping, padding="max_length"``; the first answer is
  labelled with the run_qa rule (CLS when the window does not hold the whole answer). No
  question-length cut.
- ``eval_features``: the same windows, offsets kept only for context tokens.
- ``postprocess``: per example, the best of the top-20 starts x top-20 ends over all its windows
  (context tokens only, end >= start, at most 30 tokens), score = start + end logit.
- ``squad_v1``: SQuAD v1.1 normalisation, EM and token F1, max over the gold answers, 0-100.
- ``AutoModelForQuestionAnswering.from_pretrained(model, dtype=torch.float32)`` and
  ``TrainingArguments(per_device_eval_batch_size=256, warmup_steps=0.1`` (a float < 1 is a ratio
  of the total steps in transformers 5) ``, weight_decay=0.01, logging_steps=200, save_strategy="no",
  report_to=[], seed=42)``, ``default_data_collator``; the Trainer's defaults otherwise (AdamW,
  linear decay, grad clipping 1.0, random sampler). ``torch.backends.cuda.matmul.allow_tf32 = True``
  while the peer runs. Train time = ``train_runtime`` of ``Trainer.train()``.

Differences, forced by where it runs or needed for the benchmark:

- ``dataloader_num_workers`` 4 on CUDA as in the peer, 0 on CPU (no worker processes competing for
  the few cores of the shared CPU machines). bf16/fp16 only when the caller asks (fp32 on CPU).
  The ``TrainingArguments`` are built by ``peer_hf.training_arguments``, shared with the
  classification peer (the two peer scripts pass the same ones).
- ``set_seed(42)`` before the model is built, so the new QA head's initial weights do not depend on
  what ran earlier in the same process (the peer script builds it from torch's start-up seed).
- ``output_dir`` is a caller-given (or temporary) folder instead of ``/tmp/hfqa``; the TF32 flag is
  restored afterwards, so what runs next in the process keeps its own setting.
- ``max_steps`` (a fixed number of optimizer steps instead of epochs) and ``callbacks`` (extra
  ``TrainerCallback``s, e.g. to measure memory) are passed to the Trainer when a caller gives them;
  the defaults leave the recipe as it is.
- Evaluation is timed in parts: ``eval_features_s`` (windows), ``eval_forward_s``
  (``Trainer.predict``), ``postprocess_s`` and ``score_s``; the peer script reports the first two
  together as ``eval_prep_infer_s`` and does not time scoring.
"""

from __future__ import annotations

import collections
import gzip
import json
import re
import string
import tempfile
import time
from typing import Any, cast

import numpy as np
import torch
from peer_hf import SEED, training_arguments
from transformers import (
    AutoModelForQuestionAnswering,
    AutoTokenizer,
    Trainer,
    default_data_collator,
    set_seed,
)

MAX_LEN = 384
STRIDE = 128
N_BEST = 20
MAX_ANSWER = 30
LOGGING_STEPS = 200

Row = dict[str, Any]  # {"id", "question", "context", "answers": {"text": [...], "answer_start": [...]}}


def load_squad(path: str, limit: int | None = None) -> list[Row]:
    """Every question of a SQuAD JSON file, in file order (the first `limit` when given)."""
    op: Any = gzip.open if str(path).endswith(".gz") else open
    with op(path, "rt", encoding="utf-8") as f:
        data = json.load(f)["data"]
    rows = []
    for art in data:
        for para in art["paragraphs"]:
            for qa in para["qas"]:
                rows.append(
                    {
                        "id": qa["id"],
                        "question": qa["question"].lstrip(),
                        "context": para["context"],
                        "answers": {
                            "text": [a["text"] for a in qa["answers"]],
                            "answer_start": [a["answer_start"] for a in qa["answers"]],
                        },
                    }
                )
    return rows[:limit] if limit else rows


def windows(tok: Any, rows: list[Row], max_len: int, stride: int) -> Any:
    """One tokenizer call over all questions: overflowing windows padded to `max_len`, with offsets."""
    return tok(
        [r["question"] for r in rows],
        [r["context"] for r in rows],
        truncation="only_second",
        max_length=max_len,
        stride=stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        padding="max_length",
    )


def train_features(
    tok: Any, rows: list[Row], max_len: int = MAX_LEN, stride: int = STRIDE
) -> dict[str, list]:
    """Padded windows with start/end labels of the first answer (CLS when not inside the window)."""
    enc = windows(tok, rows, max_len, stride)
    starts, ends = [], []
    for i, offsets in enumerate(enc["offset_mapping"]):
        ids = enc["input_ids"][i]
        cls = ids.index(tok.cls_token_id)
        seq = enc.sequence_ids(i)
        ans = rows[enc["overflow_to_sample_mapping"][i]]["answers"]
        s_char = ans["answer_start"][0]
        e_char = s_char + len(ans["text"][0])
        ts = 0
        while seq[ts] != 1:
            ts += 1
        te = len(ids) - 1
        while seq[te] != 1:
            te -= 1
        if not (offsets[ts][0] <= s_char and offsets[te][1] >= e_char):
            starts.append(cls)
            ends.append(cls)
            continue
        while ts < len(offsets) and offsets[ts][0] <= s_char:
            ts += 1
        starts.append(ts - 1)
        while offsets[te][1] >= e_char:
            te -= 1
        ends.append(te + 1)
    feats = {k: enc[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc}
    feats["start_positions"] = starts
    feats["end_positions"] = ends
    return feats


def eval_features(
    tok: Any, rows: list[Row], max_len: int = MAX_LEN, stride: int = STRIDE
) -> tuple[dict[str, list], list[int], list[list[Any]]]:
    """Padded windows, the example of each window, and per-token context offsets (None elsewhere)."""
    enc = windows(tok, rows, max_len, stride)
    ex_idx, offs = [], []
    for i in range(len(enc["input_ids"])):
        seq = enc.sequence_ids(i)
        ex_idx.append(enc["overflow_to_sample_mapping"][i])
        offs.append([o if seq[k] == 1 else None for k, o in enumerate(enc["offset_mapping"][i])])
    feats = {k: enc[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc}
    return feats, ex_idx, offs


class DictDataset(torch.utils.data.Dataset):
    """Row i of a dict of equal-length lists."""

    def __init__(self, d: dict[str, list]) -> None:
        self.d = d
        self.n = len(next(iter(d.values())))

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {k: v[i] for k, v in self.d.items()}


def postprocess(
    rows: list[Row],
    ex_idx: list[int],
    offs: list[list[Any]],
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    n_best: int = N_BEST,
    max_answer: int = MAX_ANSWER,
) -> dict[str, str]:
    """{question id: best answer text} over all windows of each question."""
    per_ex = collections.defaultdict(list)
    for fi, ei in enumerate(ex_idx):
        per_ex[ei].append(fi)
    preds = {}
    for ei, r in enumerate(rows):
        best, best_score = "", -1e9
        for fi in per_ex[ei]:
            sl, el, off = start_logits[fi], end_logits[fi], offs[fi]
            for s in np.argsort(sl)[-1 : -n_best - 1 : -1]:
                for e in np.argsort(el)[-1 : -n_best - 1 : -1]:
                    if s >= len(off) or e >= len(off) or off[s] is None or off[e] is None:
                        continue
                    if e < s or e - s + 1 > max_answer:
                        continue
                    sc = sl[s] + el[e]
                    if sc > best_score:
                        best_score, best = sc, r["context"][off[s][0] : off[e][1]]
        preds[r["id"]] = best
    return preds


def normalize(s: str) -> str:
    """SQuAD v1.1 answer normalisation."""
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def f1(pred: str, gold: str) -> float:
    """SQuAD v1.1 token F1 in [0, 1]."""
    p, g = normalize(pred).split(), normalize(gold).split()
    common = collections.Counter(p) & collections.Counter(g)
    same = sum(common.values())
    if same == 0:
        return 0.0
    pr, rc = same / len(p), same / len(g)
    return 2 * pr * rc / (pr + rc)


def squad_v1(rows: list[Row], preds: dict[str, str]) -> tuple[float, float]:
    """(EM, F1) on 0-100, max over each question's gold answers."""
    em = np.mean(
        [max(float(normalize(preds[r["id"]]) == normalize(a)) for a in r["answers"]["text"]) for r in rows]
    )
    f = np.mean([max(f1(preds[r["id"]], a) for a in r["answers"]["text"]) for r in rows])
    return float(100 * em), float(100 * f)


def run_peer(
    model_path: str,
    train_rows: list[Row],
    dev_rows: list[Row],
    bs: int = 32,
    lr: float = 1e-4,
    epochs: float = 2,
    precision: str = "fp32",
    output_dir: str | None = None,
    max_steps: int = -1,
    callbacks: list[Any] | None = None,
) -> dict[str, Any]:
    """Fine-tune and evaluate like the peer script. Times in seconds, EM/F1 on 0-100.

    `precision`: fp32, bf16 or fp16 (the Trainer's ``bf16``/``fp16`` flags, autocast in training and
    prediction). `max_steps` > 0 trains that many steps instead of `epochs`. `callbacks` go to the
    Trainer. Returns train_runtime_s, the eval time split into features / forward /
    post-processing / scoring (``eval_s`` is their sum), EM and F1.
    """
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = True
    with tempfile.TemporaryDirectory(prefix="peer-hfqa-") as tmp:
        try:
            return _run(
                model_path, train_rows, dev_rows, bs, lr, epochs, precision, output_dir or tmp,
                max_steps=max_steps, callbacks=callbacks,
            )  # fmt: skip
        finally:
            torch.backends.cuda.matmul.allow_tf32 = tf32


def _run(
    model_path: str,
    train_rows: list[Row],
    dev_rows: list[Row],
    bs: int,
    lr: float,
    epochs: float,
    precision: str,
    output_dir: str,
    *,
    max_steps: int,
    callbacks: list[Any] | None,
) -> dict[str, Any]:
    tok = AutoTokenizer.from_pretrained(model_path)
    t0 = time.perf_counter()
    feats = train_features(tok, train_rows)
    t_prep = time.perf_counter() - t0
    set_seed(SEED)
    model = AutoModelForQuestionAnswering.from_pretrained(model_path, dtype=torch.float32)
    args = training_arguments(
        output_dir, bs, lr, epochs, LOGGING_STEPS,
        bf16=precision == "bf16", fp16=precision == "fp16", max_steps=max_steps,
    )  # fmt: skip
    tr = Trainer(
        model=model,
        args=args,
        train_dataset=DictDataset(feats),
        data_collator=default_data_collator,
        callbacks=callbacks,
    )
    out = tr.train()
    n_feat = len(feats["input_ids"])
    real_tokens = int(np.sum(feats["attention_mask"]))

    t0 = time.perf_counter()
    dfeats, ex_idx, offs = eval_features(tok, dev_rows)
    t1 = time.perf_counter()
    pred = tr.predict(DictDataset(dfeats))
    t2 = time.perf_counter()
    sl, el = cast(tuple[np.ndarray, np.ndarray], pred.predictions)  # start and end logits
    preds = postprocess(dev_rows, ex_idx, offs, sl, el)
    t3 = time.perf_counter()
    em, f = squad_v1(dev_rows, preds)
    t4 = time.perf_counter()
    result = {
        "precision": precision,
        "n_train_questions": len(train_rows),
        "n_train_features": n_feat,
        "real_token_frac": round(real_tokens / (n_feat * MAX_LEN), 4),
        "n_eval": len(dev_rows),
        "n_eval_features": len(dfeats["input_ids"]),
        "steps": out.global_step,
        "prep_s": round(t_prep, 3),
        "train_runtime_s": out.metrics["train_runtime"],
        "train_samples_per_s": out.metrics["train_samples_per_second"],
        "final_loss": out.metrics.get("train_loss"),
        "eval_features_s": round(t1 - t0, 3),
        "eval_forward_s": round(t2 - t1, 3),
        "postprocess_s": round(t3 - t2, 3),
        "score_s": round(t4 - t3, 3),
        "eval_s": round(t4 - t0, 3),
        "exact_match": round(em, 2),
        "f1": round(f, 2),
    }
    del tr, model
    return result
