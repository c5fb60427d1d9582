"""The two sides of the classification benchmark (mrpc, sst2, imdb), for classification.py and speed.py.

- the data: each split read once as the peer reads it (``peer_hf.read_rows``), and written as JSONL
  (`text`, `text_pair`, `label`) for encoderkit, so both sides see exactly the same rows;
- the peer: ``peer_hf.run_peer``, the HF Trainer recipe of ``../shared/tools/peer/hf_cls_baseline.py``;
- encoderkit: one ``train()`` with config overrides (``same_overrides``: the peer's recipe);
- the JSON line of one encoderkit variant against the peer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import harness
from peer_hf import SEED, WARMUP, WEIGHT_DECAY, PeerRecipe, Row, read_rows, run_peer

from encoderkit.errors import UserError

FILES = {
    "mrpc": ("glue_mrpc/train.tsv.gz", "glue_mrpc/dev.tsv.gz"),
    "sst2": ("glue_sst2/train.tsv.gz", "glue_sst2/dev.tsv.gz"),
    "imdb": ("imdb/train_5k.jsonl.gz", "imdb/test_5k.jsonl.gz"),
}
BALANCED = {"imdb"}  # subsets of these take the classes interleaved
NO_SAVE_STEPS = 10**9  # the `same` variant: no step checkpoints (the peer saves nothing)
ENCODERKIT_KEYS = (
    "max_length", "batch_size", "lr", "epochs", "warmup_ratio", "weight_decay", "seed", "precision",
    "max_grad_norm", "group_by_length", "eval_batch_size", "save_steps",
)  # fmt: skip


# --- the data --------------------------------------------------------------------------------------


def write_jsonl(rows: list[Row], path: Path) -> None:
    """The rows the peer reads, in a form encoderkit reads with its default columns."""
    with path.open("w", encoding="utf-8") as f:
        for text, pair, label in rows:
            record: dict[str, Any] = {"text": text}
            if pair is not None:
                record["text_pair"] = pair
            record["label"] = label
            f.write(json.dumps(record, ensure_ascii=False) + "\n")


@dataclass(frozen=True)
class TaskData:
    """The rows both sides train and evaluate on, and encoderkit's copy of them as JSONL."""

    train_rows: list[Row]
    eval_rows: list[Row]
    train_jsonl: Path
    eval_jsonl: Path
    subset: str  # `full`, or `N/M` (`balanced` when the classes were interleaved)

    def info(self, task: str) -> dict[str, Any]:
        """The data fields of a JSON line."""
        return {
            "task": task,
            "n_train": len(self.train_rows),
            "n_eval": len(self.eval_rows),
            "subset": self.subset,
        }


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


# --- the recipe ------------------------------------------------------------------------------------


def recipe_values(recipe: PeerRecipe, precision: str) -> dict[str, Any]:
    """The peer's hyperparameters in encoderkit's config names (warmup 0.1, weight decay 0.01, seed 42)."""
    return harness.peer_recipe(
        recipe.max_len, recipe.bs, recipe.lr, recipe.epochs,
        warmup_ratio=WARMUP, weight_decay=WEIGHT_DECAY, seed=SEED, precision=precision,
    )  # fmt: skip


def same_overrides(recipe: PeerRecipe, precision: str) -> dict[str, Any]:
    """encoderkit config values of the `same` variant: the peer's recipe, no step checkpoints."""
    return {**recipe_values(recipe, precision), "save_steps": NO_SAVE_STEPS}


def peer_recipe_record(recipe: PeerRecipe, precision: str) -> dict[str, Any]:
    return {**recipe_values(recipe, precision), "padding": "dynamic (DataCollatorWithPadding)"}


# --- the sides -------------------------------------------------------------------------------------


def peer_side(
    model_path: str, data: TaskData, recipe: PeerRecipe, out: Path, precision: str, **extra: Any
) -> dict[str, Any]:
    """Train and evaluate the peer (`extra`: `callbacks` for the Trainer)."""
    return run_peer(
        model_path, data.train_rows, data.eval_rows, recipe, str(out), bf16=precision == "bf16", **extra
    )


def encoderkit_side(model: str, data: TaskData, output: Path, overrides: dict[str, Any]) -> dict[str, Any]:
    """One encoderkit run; metrics on the 0-100 scale, its peak memory and resolved config."""
    fields = {"task": "classification", "model": model, "output": str(output), **overrides}
    run = harness.train_encoderkit(
        {**fields, "train": str(data.train_jsonl), "eval": str(data.eval_jsonl)}, "eval_accuracy"
    )
    m, last = run.metrics, run.last_eval
    assert last is not None  # encoderkit evaluates at least at the end of each epoch
    return {
        **run.schedule(),
        **percent(m, "accuracy", "f1", "mcc"),
        **percent(last, "eval_accuracy", "eval_f1", prefix="last_"),
        **run.memory(),
        "config": run.config,
    }


def percent(figures: dict[str, Any], *keys: str, prefix: str = "") -> dict[str, float]:
    """Figures in [0, 1] on the 0-100 scale, named `prefix` + the key without `eval_`."""
    return {prefix + key.removeprefix("eval_"): round(100 * figures[key], 2) for key in keys}


def result_line(
    context: dict[str, Any],
    data: TaskData,
    task: str,
    variant: str,
    peer_recipe: dict[str, Any],
    peer: dict[str, Any],
    ek: dict[str, Any],
) -> harness.Line:
    """The JSON line of one encoderkit variant against the peer."""
    figures = {
        "peer_train_s": round(peer["train_runtime_s"], 3),
        "encoderkit_train_s": ek["train_runtime_s"],
        "encoderkit_wall_s": ek["wall_time_s"],
        "speed_ratio": harness.ratio(peer["train_runtime_s"], ek["train_runtime_s"]),
        "peer_steps": peer["steps"],
        "encoderkit_steps": ek["steps"],
        "peer_train_samples_per_s": peer["train_samples_per_s"],
        "encoderkit_train_samples_per_s": ek["train_samples_per_s"],
        **{f"peer_{k}": peer[k] for k in ("accuracy", "f1", "mcc")},
        **{
            f"encoderkit_{k}": ek[k]
            for k in ("accuracy", "f1", "mcc", "best_step", "last_accuracy", "last_f1")
        },
    }
    recipes = (peer_recipe, harness.encoderkit_recipe(ek["config"], ENCODERKIT_KEYS))
    return harness.result_line(context, data.info(task), variant, recipes, figures)
