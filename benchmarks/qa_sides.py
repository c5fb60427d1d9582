"""The two sides of the QA benchmark (squad-split, korquad-split), for qa.py, speed.py and strategies.py.

- the split (../shared/guides/benchmarks.md): SQuAD v1.1 dev (or KorQuAD 1.0 dev), train on the
  articles whose index % 5 != 4, evaluate on index % 5 == 4, optionally cut to the first N questions
  in file order; written as SQuAD JSON files that both sides read;
- the peer: ``peer_hf_qa.run_peer``, the HF Trainer recipe of ``../shared/tools/peer/hf_qa_baseline.py``,
  its evaluation timed with reading the eval file;
- encoderkit: one ``train()``, then a timed ``Predictor.from_dir(run/model).evaluate_file`` of the
  saved model, as a user would evaluate it;
- the JSON line of one encoderkit variant against the peer (or without one, for korquad).
"""

from __future__ import annotations

import copy
import gzip
import json
from pathlib import Path
from typing import Any

import harness
from common import release_memory
from peer_hf import EVAL_BATCH_SIZE, SEED, WARMUP, WEIGHT_DECAY
from peer_hf_qa import MAX_LEN, STRIDE, load_squad, run_peer, train_features

from encoderkit.errors import UserError
from encoderkit.inference.predictor import Predictor

SOURCES = {
    "squad": "squad_v1.1/dev-v1.1.json.gz",
    "korquad": "korquad_v1.0/KorQuAD_v1.0_dev.json.gz",
}
METRICS = {"squad": "squad", "korquad": "korquad"}
# The peer's recipe (../shared/guides/benchmarks.md, squad-split row).
PEER_BS, PEER_LR, PEER_EPOCHS = 32, 1e-4, 2.0
PEER_SKIPPED = "skipped: the peer is SQuAD v1.1 only (English answer normalisation and scorer)"
ENCODERKIT_KEYS = (
    "max_length", "doc_stride", "max_query_length", "batch_size", "lr", "epochs", "warmup_ratio",
    "weight_decay", "seed", "precision", "max_grad_norm", "group_by_length", "save_steps", "qa_metric",
)  # fmt: skip
PEER_EVAL_PARTS = ("read", "eval_features", "eval_forward", "postprocess", "score")


# --- the split -------------------------------------------------------------------------------------


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


def read_split(source: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(train, eval) documents of `source`, or a UserError naming the missing file."""
    if not source.is_file():
        raise UserError(f"{source}: data file not found (set --data-dir)")
    return split_articles(read_json(source))


def write_split(
    source: Path, folder: Path, limit_train: int | None, limit_eval: int | None
) -> tuple[Path, Path]:
    """Write the (subset) train and eval splits of `source` as SQuAD JSON into `folder`."""
    train_doc, eval_doc = read_split(source)
    folder.mkdir(parents=True, exist_ok=True)
    paths = folder / "train.json", folder / "eval.json"
    for doc, limit, path in ((train_doc, limit_train, paths[0]), (eval_doc, limit_eval, paths[1])):
        path.write_text(json.dumps(first_questions(doc, limit), ensure_ascii=False), encoding="utf-8")
    return paths


def split_info(
    task: str, paths: tuple[Path, Path], n_features: int, limit_train: int | None, limit_eval: int | None
) -> dict[str, Any]:
    """The data fields of a JSON line: questions (and the peer's windows) on each side of the split."""
    return {
        "task": f"{task}-split",
        "n_train_questions": count_questions(read_json(paths[0])),
        "n_train_features": n_features,
        "n_eval": count_questions(read_json(paths[1])),
        "subset": "full" if limit_train is None and limit_eval is None else "subset",
        "limit_train": limit_train,
        "limit_eval": limit_eval,
    }


def questions_cell(line: harness.Line) -> str:
    """The table's data cell: `first 24 (25 windows) / first 16`."""
    train_first = "first " if line.get("limit_train") is not None else ""
    eval_first = "first " if line.get("limit_eval") is not None else ""
    windows = f"{line['n_train_features']} windows"
    return f"{train_first}{line['n_train_questions']} ({windows}) / {eval_first}{line['n_eval']}"


# --- the recipe ------------------------------------------------------------------------------------


def recipe_values(epochs: float, precision: str, bs: int = PEER_BS) -> dict[str, Any]:
    """The peer's hyperparameters in encoderkit's config names (384 / 128 windows, warmup 0.1, ...)."""
    return harness.peer_recipe(
        MAX_LEN, bs, PEER_LR, epochs,
        doc_stride=STRIDE, warmup_ratio=WARMUP, weight_decay=WEIGHT_DECAY, seed=SEED, precision=precision,
    )  # fmt: skip


def same_overrides(epochs: float, precision: str, bs: int = PEER_BS) -> dict[str, Any]:
    """encoderkit config values of the `same` variant: the peer's recipe."""
    # The peer saves nothing; per-epoch checkpoints remain.
    return {**recipe_values(epochs, precision, bs), "save_steps": None}


def peer_recipe_record(epochs: float, precision: str, bs: int = PEER_BS) -> dict[str, Any]:
    return {
        **recipe_values(epochs, precision, bs),
        "padding": "max_length",
        "eval_batch_size": EVAL_BATCH_SIZE,
        "eval_precision": precision,
    }


def encoderkit_recipe_record(config: dict[str, Any], eval_batch_size: int) -> dict[str, Any]:
    record = harness.encoderkit_recipe(config, ENCODERKIT_KEYS)
    record["padding"] = "dynamic"
    # Predictor.evaluate_file runs the saved model without autocast.
    record["predictor_eval_batch_size"] = eval_batch_size
    record["predictor_eval_precision"] = "fp32"
    return record


# --- the sides -------------------------------------------------------------------------------------


def peer_side(
    model_path: str,
    paths: tuple[Path, Path],
    epochs: float,
    precision: str,
    out: Path,
    bs: int = PEER_BS,
    **extra: Any,
) -> dict[str, Any]:
    """Train and evaluate the peer; `eval_s` adds reading the eval file, as evaluate_file does.

    `extra` goes to `run_peer` (`max_steps`, `callbacks`).
    """
    train_rows = load_squad(str(paths[0]))
    dev_rows, read_s = harness.timed(load_squad, str(paths[1]))
    peer = run_peer(model_path, train_rows, dev_rows, bs, PEER_LR, epochs, precision, str(out), **extra)
    peer["eval_read_s"] = round(read_s, 3)
    peer["eval_s"] = round(peer["eval_s"] + read_s, 3)
    return peer


def peer_feature_count(model_path: str, train_path: Path) -> int:
    """The peer's number of training windows (computed without training, for the korquad check)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    return len(train_features(tokenizer, load_squad(str(train_path)))["input_ids"])


def encoderkit_side(
    model: str, paths: tuple[Path, Path], output: Path, overrides: dict[str, Any]
) -> dict[str, Any]:
    """One encoderkit run, then a timed Predictor evaluation of its saved model."""
    fields = {"task": "qa", "model": model, "output": str(output), **overrides}
    run = harness.train_encoderkit({**fields, "train": str(paths[0]), "eval": str(paths[1])}, "eval_f1")
    m, last = run.metrics, run.last_eval
    assert last is not None  # encoderkit evaluates at least at the end of each epoch
    release_memory()  # before the Predictor loads the saved model
    predictor, load_s = harness.timed(Predictor.from_dir, run.run_dir / "model")
    scored, eval_s = harness.timed(predictor.evaluate_file, str(paths[1]), {})
    eval_batch_size = predictor.batch_size
    del predictor
    return {
        **run.schedule(),
        "exact_match": round(m["exact_match"], 2),
        "f1": round(m["f1"], 2),
        "last_exact_match": round(last["eval_exact_match"], 2),
        "last_f1": round(last["eval_f1"], 2),
        "in_training_eval_s": last.get("eval_runtime_s"),
        "load_s": round(load_s, 3),
        "eval_s": round(eval_s, 3),
        "eval_batch_size": eval_batch_size,
        "predictor_exact_match": round(scored["exact_match"], 2),
        "predictor_f1": round(scored["f1"], 2),
        "predictor_metric": scored.get("metric"),
        **run.memory(),
        "config": run.config,
    }


def result_line(
    context: dict[str, Any],
    info: dict[str, Any],
    variant: str,
    peer: dict[str, Any] | None,
    peer_recipe: dict[str, Any] | None,
    ek: dict[str, Any],
) -> harness.Line:
    """The JSON line of one encoderkit run against the peer (None: no peer, as for korquad).

    `info` describes the data (`split_info`).
    """
    recipes = (peer_recipe, encoderkit_recipe_record(ek["config"], ek["eval_batch_size"]))
    figures: dict[str, Any] = {"peer": "HF Trainer (peer_hf_qa.run_peer)" if peer else PEER_SKIPPED}
    figures |= peer_figures(peer, ek)
    figures |= {
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
        "peer_eval_parts_s": peer_eval_parts(peer) if peer else None,
        "peer_n_eval_features": peer["n_eval_features"] if peer else None,
        "encoderkit_eval_load_s": ek["load_s"],
        "encoderkit_in_training_eval_s": ek["in_training_eval_s"],
    }
    return harness.result_line(context, info, variant, recipes, figures)


def peer_figures(peer: dict[str, Any] | None, ek: dict[str, Any]) -> dict[str, Any]:
    """Train and eval times with their speed-ups, and EM / F1, of both sides (peer None: no peer)."""
    peer_train_s = None if peer is None else peer["train_runtime_s"]
    peer_eval_s = None if peer is None else peer["eval_s"]
    return {
        "peer_train_s": None if peer_train_s is None else round(peer_train_s, 3),
        "encoderkit_train_s": ek["train_runtime_s"],
        "train_speed_ratio": harness.ratio(peer_train_s, ek["train_runtime_s"]),
        "peer_eval_s": peer_eval_s,
        "encoderkit_eval_s": ek["eval_s"],
        "eval_speed_ratio": harness.ratio(peer_eval_s, ek["eval_s"]),
        "peer_exact_match": peer["exact_match"] if peer else None,
        "peer_f1": peer["f1"] if peer else None,
        "encoderkit_exact_match": ek["exact_match"],
        "encoderkit_f1": ek["f1"],
    }


def peer_eval_parts(peer: dict[str, Any]) -> dict[str, float]:
    """The peer's eval time in parts: reading the file, windows, forward, post-processing, scoring."""
    return {k: peer["eval_read_s"] if k == "read" else peer[f"{k}_s"] for k in PEER_EVAL_PARTS}
