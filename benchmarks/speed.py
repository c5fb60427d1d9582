#!/usr/bin/env python
"""Speed benchmark (issue #4): encoderkit against the HF Trainer, same data and hyperparameters, one run.

In one process, after an untimed warm-up: the peer once, then encoderkit once per variant, each with
the peer's hyperparameters plus the variant's `encoderkit train` flags. Modes:

- ``--task squad`` (default): squad-split (``qa_sides.write_split``); the peer is ``peer_hf_qa.run_peer``
  (384/128 padded to 384, bs 32, lr 1e-4, 2 epochs, warmup 0.1). Training and evaluation (read +
  windows + forward + post-processing + EM/F1) are timed on both sides, as ``qa.py`` does (both
  use the sides of ``qa_sides.py``; ``--task sst2`` those of ``classification_sides.py``).
- ``--task sst2``: GLUE SST-2; the peer is ``peer_hf.run_peer`` (max 128, bs 32, lr 5e-5, 1 epoch).
- ``--bert-base``: squad-split through a random-init bert-base-shaped model (``BertConfig()``: 12
  layers, hidden 768) with the ``--model`` tokenizer, ``--max-steps`` steps on both sides, for train
  features/s. Its EM/F1 mean nothing.
- ``--scale``: encoderkit alone, padded vs unpadded, by data size and max_length (``speed_scale.py``).

Variants (``VARIANTS``, chosen with ``--variants``) switch encoderkit's speed techniques off one at a
time, so the table shows what each contributed. Peak memory is measured per side (``PeakMemory``
around the Trainer's training, a reset before encoderkit's ``train()``). Stdout: one JSON line per
comparison, as soon as it is measured; logs go to stderr. Unless ``--no-write`` the lines are
appended to benchmarks/RESULTS.md (``speed_report.py``); ``--append-from FILE`` appends saved ones.

    python benchmarks/speed.py --limit-train 16 --limit-eval 8 --epochs 1 --no-write
"""

from __future__ import annotations

import harness  # first: it sets HF_HUB_OFFLINE before anything imports huggingface_hub

# isort: split
import argparse
import contextlib
import dataclasses
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import classification_sides as cls
import qa_sides as qa
import speed_scale
import torch
from common import peak_memory_mb, reset_peak_memory
from peer_hf import RECIPES
from speed_report import RESULTS, check_targets, log
from transformers import AutoTokenizer, TrainerCallback

import encoderkit
from encoderkit.cli import build_parser
from encoderkit.config import FIELD_NAMES

# name -> `encoderkit train` flags added to the peer's recipe.
VARIANTS: dict[str, tuple[str, ...]] = {
    "same": (),  # the peer's hyperparameters; encoderkit's defaults for the speed switches
    "no-unpad": ("--no-unpad",),
    "no-compile": ("--no-compile",),
    "no-group-by-length": ("--no-group-by-length",),
    "padded-plain": ("--no-unpad", "--no-compile", "--no-group-by-length"),
    # Not the peer's hyperparameters: batches of batch_size x max_length tokens (the peer's padded
    # batch) instead of batch_size examples, so short examples come in larger batches, fewer steps.
    "token-budget": ("--batch-tokens", "BS_X_MAX_LENGTH"),
}
# `auto` turns unpadding and compilation on only on CUDA: on a CPU those two variants equal `same`.
CPU_VARIANTS = ("same", "padded-plain")
BERT_BASE_STEPS = 300  # ~1 epoch of squad-split features at bs 32
BERT_BASE_EVAL = 64  # questions; the random model's answers only need to go through the pipeline


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = harness.Parser(__doc__)
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--bert-base", action="store_true", help="random-init bert-base shape, train feat/s")
    mode.add_argument("--scale", action="store_true", help="encoderkit padded vs unpadded by size and length")
    ap.add_argument("--task", default="squad", choices=("squad", "sst2"), help="squad-split or GLUE SST-2")
    ap.add_data(
        "squad_v1.1/, glue_sst2/", of="questions / rows", eval_default=f"all; bert-base: {BERT_BASE_EVAL}"
    )
    ap.add_epochs("both sides (default: the peer recipe's, squad 2, sst2 1)")
    ap.add_argument("--batch-size", type=int, help="both sides (default: the peer recipe's 32)")
    ap.add_argument("--max-steps", type=int, default=BERT_BASE_STEPS, help="--bert-base: steps on both sides")
    ap.check_at_least(1, "batch_size", "max_steps")
    ap.add_model()
    ap.add_precision()
    ap.add_variants(
        tuple(VARIANTS),
        None,
        f"encoderkit variants, from {', '.join(VARIANTS)} (default: all on CUDA, "
        f"{','.join(CPU_VARIANTS)} on CPU)",
    )
    speed_scale.add_arguments(ap)
    ap.add_output("data, models and run folders")
    ap.check(lambda args: check_modes(ap, args))
    return ap.parse(argv)


def check_modes(ap: harness.Parser, args: argparse.Namespace) -> None:
    """--bert-base and --scale: squad-split only; --scale sizes its own data and has no variants."""
    if (args.bert_base or args.scale) and args.task != "squad":
        ap.error("--bert-base and --scale train on squad-split (leave --task at squad)")
    if args.scale and (args.limit_train or args.limit_eval or args.variants):
        ap.error("--scale sizes its data with --scale-base/--scale-sizes and has no variants")
    if args.bert_base and args.limit_eval is None:
        args.limit_eval = BERT_BASE_EVAL
    speed_scale.check_arguments(ap, args)


def variant_flags(name: str, bs: int, max_length: int) -> tuple[str, ...]:
    """The variant's `encoderkit train` flags, with the token budget of this run filled in."""
    return tuple(str(bs * max_length) if f == "BS_X_MAX_LENGTH" else f for f in VARIANTS[name])


def flag_overrides(flags: Sequence[str]) -> dict[str, Any]:
    """The config values `encoderkit train FLAGS` sets, parsed by encoderkit's own command line."""
    parsed = build_parser().parse_args(["train", *flags])
    return {k: v for k, v in vars(parsed).items() if k in FIELD_NAMES}


class PeakMemory(TrainerCallback):
    """The peer's peak memory during `Trainer.train()`: a new window when training begins."""

    def __init__(self) -> None:
        self.baseline_mb: float | None = None
        self.peak_mb: float | None = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.baseline_mb = reset_peak_memory()

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.peak_mb = peak_memory_mb()

    def fields(self, ek: dict[str, Any]) -> dict[str, Any]:
        """Both sides' peaks and the floor each window opened at (what the process held then), MB."""
        return {
            "peer_peak_memory_mb": self.peak_mb,
            "encoderkit_peak_memory_mb": ek["peak_memory_mb"],
            "peer_memory_floor_mb": self.baseline_mb,
            "encoderkit_memory_floor_mb": ek["memory_floor_mb"],
        }


def build_bert_base(tokenizer_path: str, folder: Path) -> Path:
    """A random-init bert-base-shaped QA model with the given tokenizer, saved for both sides to load."""
    from transformers import BertConfig, BertForQuestionAnswering, set_seed

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)
    set_seed(qa.SEED)
    model = BertForQuestionAnswering(BertConfig(vocab_size=len(tokenizer)))  # 12 x 768, 110M weights
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    del model
    return folder


def speed_line(
    base: dict[str, Any],
    mode: str,
    flags: Sequence[str],
    setting: dict[str, Any],
    quality: tuple[str, float | None, float | None, float | None],
    memory: dict[str, float | None],
) -> dict[str, Any]:
    """qa_sides' / classification_sides' line for one variant, plus the figures issue #4 asks for.

    `quality`: (metric, peer, encoderkit last epoch, encoderkit best epoch); `memory`: from
    `PeakMemory.fields`.
    """
    metric, peer_q, ek_q, ek_best = quality
    ratio = harness.ratio
    line = {"benchmark": "speed", "mode": mode, **base, "variant_flags": list(flags), "setting": setting}
    line.setdefault("train_speed_ratio", base.get("speed_ratio"))
    for key in ("peer_eval_s", "encoderkit_eval_s", "eval_speed_ratio"):
        line.setdefault(key, None)  # sst2: the classification peer's evaluation is not timed
    line["train_time_fraction"] = ratio(base["encoderkit_train_s"], base["peer_train_s"])
    line["peer_train_features_per_s"] = base["peer_train_samples_per_s"]
    line["encoderkit_train_features_per_s"] = base["encoderkit_train_samples_per_s"]
    line.update(memory)
    line["peak_memory_ratio"] = ratio(memory["encoderkit_peak_memory_mb"], memory["peer_peak_memory_mb"])
    line["peak_memory_kind"] = "cuda max allocated" if torch.cuda.is_available() else "process peak RSS"
    line["quality_metric"] = metric
    line["peer_quality"], line["encoderkit_quality"], line["encoderkit_best_quality"] = peer_q, ek_q, ek_best
    line["quality_gap"] = None if peer_q is None or ek_q is None else round(ek_q - peer_q, 2)
    if mode == "bert-base":
        line["quality_note"] = "none: random-init weights trained for --max-steps steps only"
    line["targets"] = check_targets(line)
    return line


def run_setting(args: argparse.Namespace, context: dict[str, Any], bs: int, epochs: float) -> dict[str, Any]:
    """What the issue's targets are stated for, as this run did it."""
    return {
        "device": context["device"],
        "subset": "full" if args.limit_train is None and args.limit_eval is None else "subset",
        "limit_train": args.limit_train,
        "batch_size": bs,
        "epochs": epochs,
        "max_steps": args.max_steps if args.bert_base else None,
        "precision": context["precision"],
    }


def compare_squad(session: harness.Session, variants: list[str]) -> Iterator[dict[str, Any]]:
    """squad-split (or, with --bert-base, the bert-base shape on it): the peer, then each variant."""
    args, work, context = session.args, session.work, session.context
    precision, mode = session.precision, "bert-base" if args.bert_base else "compare"
    source = Path(args.data_dir) / qa.SOURCES["squad"]
    paths = qa.write_split(source, work / "data", args.limit_train, args.limit_eval)
    bs = args.batch_size or qa.PEER_BS
    epochs = args.epochs or qa.PEER_EPOCHS
    max_steps = args.max_steps if args.bert_base else -1
    model_path, ek_model = session.model_path, args.model
    if args.bert_base:  # both sides load the random model built here
        model_path = ek_model = str(build_bert_base(session.model_path, work / "bert-base-random"))
    memory = PeakMemory()
    peer = harness.run_side(
        log, f"squad-split {mode}: peer (HF Trainer), bs {bs}, {precision}", qa.peer_side,
        model_path, paths, epochs, precision, work / "peer", bs=bs, max_steps=max_steps, callbacks=[memory],
    )  # fmt: skip
    info = qa.split_info("squad", paths, peer["n_train_features"], args.limit_train, args.limit_eval)
    peer_recipe = qa.peer_recipe_record(epochs, precision, bs)
    if args.bert_base:
        peer_recipe["max_steps"] = max_steps
        context = {**context, "model": f"bert-base shape, random init ({args.model} tokenizer)"}
    for name in variants:
        flags = variant_flags(name, bs, qa.MAX_LEN)
        overrides = {
            "qa_metric": "squad",
            **qa.same_overrides(epochs, precision, bs),
            **flag_overrides(flags),
        }
        if args.bert_base:
            overrides["max_steps"] = max_steps
        output = work / f"encoderkit-{name}"
        label = f"squad-split {mode}: encoderkit, variant {name} {' '.join(flags)}"
        ek = harness.run_side(log, label, qa.encoderkit_side, ek_model, paths, output, overrides)
        base = qa.result_line(context, info, name, peer, peer_recipe, ek)
        base["recipe"]["encoderkit"]["max_steps"] = ek["config"]["max_steps"]
        yield speed_line(
            base,
            mode,
            flags,
            run_setting(args, context, bs, epochs),
            ("F1", peer["f1"], ek["last_f1"], ek["f1"]),
            memory.fields(ek),
        )


def compare_sst2(session: harness.Session, variants: list[str]) -> Iterator[dict[str, Any]]:
    """GLUE SST-2: the classification peer, then each variant."""
    args, work, precision = session.args, session.work, session.precision
    data = cls.prepare_task("sst2", args.data_dir, args.limit_train, args.limit_eval, work / "sst2")
    recipe = RECIPES["sst2"]
    recipe = dataclasses.replace(recipe, bs=args.batch_size or recipe.bs, epochs=args.epochs or recipe.epochs)
    memory = PeakMemory()
    label = f"sst2: peer (HF Trainer) on {len(data.train_rows)} / {len(data.eval_rows)} rows, {recipe}"
    peer = harness.run_side(
        log, label, cls.peer_side, session.model_path, data, recipe, work / "sst2" / "peer", precision,
        callbacks=[memory],
    )  # fmt: skip
    peer_recipe = cls.peer_recipe_record(recipe, precision)
    for name in variants:
        flags = variant_flags(name, recipe.bs, recipe.max_len)
        overrides = {**cls.same_overrides(recipe, precision), **flag_overrides(flags)}
        output = work / "sst2" / f"encoderkit-{name}"
        label = f"sst2: encoderkit, variant {name} {' '.join(flags)}"
        ek = harness.run_side(log, label, cls.encoderkit_side, args.model, data, output, overrides)
        base = cls.result_line(session.context, data, "sst2", name, peer_recipe, peer, ek)
        yield speed_line(
            base,
            "compare",
            flags,
            run_setting(args, session.context, recipe.bs, recipe.epochs),
            ("acc", peer["accuracy"], ek["last_accuracy"], ek["accuracy"]),
            memory.fields(ek),
        )


@contextlib.contextmanager
def token_cache_in(folder: Path) -> Iterator[None]:
    """encoderkit's tokenized-data cache in `folder` for this run (unless $ENCODERKIT_CACHE is set):
    nothing is left in the user's cache, and nothing tokenized earlier is reused from it."""
    if "ENCODERKIT_CACHE" in os.environ:
        yield
        return
    os.environ["ENCODERKIT_CACHE"] = str(folder)
    try:
        yield
    finally:
        del os.environ["ENCODERKIT_CACHE"]


def measure(session: harness.Session) -> Iterator[dict[str, Any]]:
    args = session.args
    log(f"encoderkit from {Path(encoderkit.__file__).parent}")
    with token_cache_in(session.work / "token-cache"):
        kind = "classification" if args.task == "sst2" else "qa"
        harness.warm_up_for(kind, session.model_path, session.precision == "bf16")
        if args.scale:
            yield from speed_scale.run_scale(session, flag_overrides)
            return
        variants = args.variants or list(VARIANTS if torch.cuda.is_available() else CPU_VARIANTS)
        for name in variants:  # a flag this encoderkit does not know fails now, not after the peer
            flag_overrides(variant_flags(name, 32, 384))
        compare = compare_sst2 if args.task == "sst2" else compare_squad
        yield from compare(session, variants)


def main(argv: list[str] | None = None) -> int:
    return harness.run(parse_args(argv), measure, RESULTS, log)


if __name__ == "__main__":
    sys.exit(main())
