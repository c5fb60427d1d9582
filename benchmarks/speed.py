#!/usr/bin/env python
"""Speed benchmark (issue #4): encoderkit against the HF Trainer, same data and hyperparameters, one run.

In one process, after an untimed warm-up: the peer once, then encoderkit once per variant, each with
the peer's hyperparameters plus the variant's `encoderkit train` flags. Modes:

- ``--task squad`` (default): squad-split (``qa.write_split``); the peer is ``peer_hf_qa.run_peer``
  (384/128 padded to 384, bs 32, lr 1e-4, 2 epochs, warmup 0.1). Training and evaluation (read +
  windows + forward + post-processing + EM/F1) are timed on both sides, as ``qa.py`` does.
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

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import argparse
import contextlib
import dataclasses
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
try:
    import encoderkit
except ImportError:  # a bare checkout (e.g. on the accelerator machine): use the source tree
    sys.path.insert(0, str(REPO / "src"))
    import encoderkit

import classification  # noqa: E402
import peer_hf  # noqa: E402
import qa  # noqa: E402
import speed_scale  # noqa: E402
import torch  # noqa: E402
from common import (  # noqa: E402
    peak_memory_mb,
    release_memory,
    reset_peak_memory,
    resolved_precision,
    run_context,
    warm_up,
    work_folder,
)
from speed_report import append_lines, append_saved, check_targets, log  # noqa: E402
from transformers import (  # noqa: E402
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    TrainerCallback,
)

from encoderkit.config import FIELD_NAMES  # noqa: E402
from encoderkit.errors import UserError  # noqa: E402
from encoderkit.modeling import resolve_model  # noqa: E402

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
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--bert-base", action="store_true", help="random-init bert-base shape, train feat/s")
    mode.add_argument("--scale", action="store_true", help="encoderkit padded vs unpadded by size and length")
    ap.add_argument("--task", default="squad", choices=("squad", "sst2"), help="squad-split or GLUE SST-2")
    ap.add_argument("--limit-train", type=int, help="first N training questions / rows (default: all)")
    ap.add_argument(
        "--limit-eval", type=int, help=f"first N eval questions / rows (bert-base: {BERT_BASE_EVAL})"
    )
    ap.add_argument("--epochs", type=float, help="both sides (default: the peer recipe's, squad 2, sst2 1)")
    ap.add_argument("--batch-size", type=int, help="both sides (default: the peer recipe's 32)")
    ap.add_argument("--max-steps", type=int, default=BERT_BASE_STEPS, help="--bert-base: steps on both sides")
    ap.add_argument("--model", default="minilm", help="`minilm` (bundled) or a model folder, for both sides")
    ap.add_argument(
        "--precision",
        default="auto",
        choices=("auto", "fp32", "bf16"),
        help="both sides: auto = bf16 on a CUDA GPU that supports it, else fp32; bf16 on CUDA only",
    )
    ap.add_argument(
        "--data-dir", default=str(REPO.parent / "shared" / "data"), help="squad_v1.1/, glue_sst2/"
    )
    ap.add_argument(
        "--variants",
        help=f"encoderkit variants, from {', '.join(VARIANTS)} (default: all on CUDA, "
        f"{','.join(CPU_VARIANTS)} on CPU)",
    )
    speed_scale.add_arguments(ap)
    ap.add_argument("--results", default=str(REPO / "benchmarks" / "RESULTS.md"), help="table to append to")
    ap.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    ap.add_argument("--work-dir", help="keep data, models and run folders here (default: a temporary folder)")
    ap.add_argument("--commit", help="commit to record (default: `git rev-parse --short HEAD` or unknown)")
    ap.add_argument(
        "--append-from", metavar="JSONL", help="run nothing: append saved JSON lines to --results"
    )
    args = ap.parse_args(argv)
    if (args.bert_base or args.scale) and args.task != "squad":
        ap.error("--bert-base and --scale train on squad-split (leave --task at squad)")
    if args.scale and (args.limit_train or args.limit_eval or args.variants):
        ap.error("--scale sizes its data with --scale-base/--scale-sizes and has no variants")
    names = args.variants.split(",") if args.variants else []
    args.variants = [v.strip() for v in names if v.strip()] or None
    for variant in args.variants or ():
        if variant not in VARIANTS:
            ap.error(f"unknown variant {variant!r}; choose from {', '.join(VARIANTS)}")
    for name in ("limit_train", "limit_eval", "batch_size", "max_steps"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.epochs is not None and not args.epochs > 0:
        ap.error("--epochs must be > 0")
    if args.bert_base and args.limit_eval is None:
        args.limit_eval = BERT_BASE_EVAL
    speed_scale.check_arguments(ap, args)
    return args


def variant_flags(name: str, bs: int, max_length: int) -> tuple[str, ...]:
    """The variant's `encoderkit train` flags, with the token budget of this run filled in."""
    return tuple(str(bs * max_length) if f == "BS_X_MAX_LENGTH" else f for f in VARIANTS[name])


def flag_overrides(flags: Sequence[str]) -> dict[str, Any]:
    """The config values `encoderkit train FLAGS` sets, parsed by encoderkit's own command line."""
    from encoderkit.cli import build_parser

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

    def fields(self, encoderkit_peak_mb: float | None, encoderkit_floor_mb: float | None) -> dict[str, Any]:
        """Both sides' peaks and the floor each window opened at (what the process held then), MB."""
        return {
            "peer_peak_memory_mb": self.peak_mb,
            "encoderkit_peak_memory_mb": encoderkit_peak_mb,
            "peer_memory_floor_mb": self.baseline_mb,
            "encoderkit_memory_floor_mb": encoderkit_floor_mb,
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


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a / max(b, 1e-9), 3)


def speed_line(
    base: dict[str, Any],
    mode: str,
    flags: Sequence[str],
    setting: dict[str, Any],
    quality: tuple[str, float | None, float | None, float | None],
    memory: dict[str, float | None],
) -> dict[str, Any]:
    """qa.py's / classification.py's line for one variant, plus the figures issue #4 asks for.

    `quality`: (metric, peer, encoderkit last epoch, encoderkit best epoch); `memory`: from
    `PeakMemory.fields`.
    """
    metric, peer_q, ek_q, ek_best = quality
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


def split_info(
    args: argparse.Namespace, train_path: Path, eval_path: Path, n_features: int
) -> dict[str, Any]:
    """The data fields of a squad-split line (`qa.result_line`'s `info`)."""
    return {
        "task": "squad-split",
        "n_train_questions": qa.count_questions(qa.read_json(train_path)),
        "n_train_features": n_features,
        "n_eval": qa.count_questions(qa.read_json(eval_path)),
        "subset": "full" if args.limit_train is None and args.limit_eval is None else "subset",
        "limit_train": args.limit_train,
        "limit_eval": args.limit_eval,
    }


def compare_squad(
    args: argparse.Namespace, work: Path, model_path: str, context: dict[str, Any], variants: list[str]
) -> Iterator[dict[str, Any]]:
    """squad-split (or, with --bert-base, the bert-base shape on it): the peer, then each variant."""
    precision, mode = context["precision"], "bert-base" if args.bert_base else "compare"
    source = Path(args.data_dir) / qa.SOURCES["squad"]
    train_path, eval_path = qa.write_split(source, work / "data", args.limit_train, args.limit_eval)
    bs = args.batch_size or qa.PEER_BS
    epochs = args.epochs or qa.PEER_EPOCHS
    max_steps = args.max_steps if args.bert_base else -1
    ek_model = args.model
    if args.bert_base:
        ek_model = str(build_bert_base(model_path, work / "bert-base-random"))
        model_path = ek_model
    memory = PeakMemory()
    log(f"squad-split {mode}: peer (HF Trainer), bs {bs}, {precision}")
    peer = qa.peer_side(
        model_path, train_path, eval_path, epochs, precision, work / "peer", bs=bs, max_steps=max_steps,
        callbacks=[memory],
    )  # fmt: skip
    release_memory()
    log(f"peer {json.dumps(peer)}")
    info = split_info(args, train_path, eval_path, peer["n_train_features"])
    peer_recipe = qa.peer_recipe_record(epochs, precision, bs)
    if args.bert_base:
        peer_recipe["max_steps"] = max_steps
        context = {**context, "model": f"bert-base shape, random init ({args.model} tokenizer)"}
    for name in variants:
        overrides = {"qa_metric": "squad", **qa.same_overrides(epochs, precision, bs)}
        flags = variant_flags(name, bs, qa.MAX_LEN)
        overrides.update(flag_overrides(flags))
        if args.bert_base:
            overrides["max_steps"] = max_steps
        log(f"squad-split {mode}: encoderkit, variant {name} {' '.join(flags)}")
        floor = reset_peak_memory()
        ek = qa.encoderkit_side(ek_model, train_path, eval_path, work / f"encoderkit-{name}", overrides)
        release_memory()
        log(f"encoderkit {name} " + json.dumps({k: v for k, v in ek.items() if k != "config"}))
        base = qa.result_line(context, info, name, peer, peer_recipe, ek)
        base["recipe"]["encoderkit"]["max_steps"] = ek["config"]["max_steps"]
        yield speed_line(
            base,
            mode,
            flags,
            run_setting(args, context, bs, epochs),
            ("F1", peer["f1"], ek["last_f1"], ek["f1"]),
            memory.fields(ek["peak_memory_mb"], floor),
        )


def compare_sst2(
    args: argparse.Namespace, work: Path, model_path: str, context: dict[str, Any], variants: list[str]
) -> Iterator[dict[str, Any]]:
    """GLUE SST-2: the classification peer, then each variant."""
    precision = context["precision"]
    data = classification.prepare_task(
        "sst2", args.data_dir, args.limit_train, args.limit_eval, work / "sst2"
    )
    recipe = peer_hf.RECIPES["sst2"]
    recipe = dataclasses.replace(recipe, bs=args.batch_size or recipe.bs, epochs=args.epochs or recipe.epochs)
    memory = PeakMemory()
    log(f"sst2: peer (HF Trainer) on {len(data.train_rows)} / {len(data.eval_rows)} rows, {recipe}")
    peer = peer_hf.run_peer(
        model_path, data.train_rows, data.eval_rows, recipe, str(work / "sst2" / "peer"),
        bf16=precision == "bf16", callbacks=[memory],
    )  # fmt: skip
    release_memory()
    log(f"peer {json.dumps(peer)}")
    for name in variants:
        flags = variant_flags(name, recipe.bs, recipe.max_len)
        overrides = {**classification.same_overrides(recipe, precision), **flag_overrides(flags)}
        log(f"sst2: encoderkit, variant {name} {' '.join(flags)}")
        floor = reset_peak_memory()
        ek = classification.run_encoderkit(
            args.model, data.train_jsonl, data.eval_jsonl, work / "sst2" / f"encoderkit-{name}", overrides
        )
        release_memory()
        base = classification.result_line(context, "sst2", data, name, recipe, precision, peer, ek)
        yield speed_line(
            base,
            "compare",
            flags,
            run_setting(args, context, recipe.bs, recipe.epochs),
            ("acc", peer["accuracy"], ek["last_accuracy"], ek["accuracy"]),
            memory.fields(ek["peak_memory_mb"], floor),
        )


def warm_up_for(task: str, model_path: str, bf16: bool) -> None:
    """Untimed training steps, so CUDA and thread-pool start-up is charged to neither side."""
    labels = torch.zeros(8, dtype=torch.long)
    if task == "sst2":
        model = AutoModelForSequenceClassification.from_pretrained(
            model_path, num_labels=2, dtype=torch.float32
        )
        warm_up(model, {"labels": labels}, 64, bf16)
    else:
        model = AutoModelForQuestionAnswering.from_pretrained(model_path, dtype=torch.float32)
        warm_up(model, {"start_positions": labels, "end_positions": labels}, 128, bf16)


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


def measure(
    args: argparse.Namespace, work: Path, model_path: str, context: dict[str, Any]
) -> Iterator[dict[str, Any]]:
    if args.scale:
        return speed_scale.run_scale(args, work, context, flag_overrides)
    variants = args.variants or list(VARIANTS if torch.cuda.is_available() else CPU_VARIANTS)
    for name in variants:  # a flag this encoderkit does not know fails now, not after the peer
        flag_overrides(variant_flags(name, 32, 384))
    compare = compare_sst2 if args.task == "sst2" else compare_squad
    return compare(args, work, model_path, context, variants)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.append_from:
        return append_saved(Path(args.append_from), Path(args.results))
    stdout = sys.stdout
    try:
        model_path = resolve_model(args.model)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    precision = resolved_precision(args.precision)
    if args.precision == "bf16" and precision != "bf16":
        log("--precision bf16 needs a CUDA GPU; running fp32")
    context = run_context(args.model, precision, args.commit)
    lines = []
    with contextlib.ExitStack() as stack:
        work = work_folder(stack, args.work_dir, "encoderkit-bench-speed-")
        stack.enter_context(token_cache_in(work / "token-cache"))
        # Trainer and encoderkit print progress to stdout; keep stdout for the JSON lines.
        stack.enter_context(contextlib.redirect_stdout(sys.stderr))
        log(f"device {context['device']}, model {model_path}, precision {precision}, work folder {work}")
        log(f"encoderkit from {Path(encoderkit.__file__).parent}")
        try:
            warm_up_for(args.task, model_path, precision == "bf16")
            for line in measure(args, work, model_path, context):
                print(json.dumps(line), file=stdout, flush=True)
                lines.append(line)
        except UserError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    if not args.no_write and lines:
        append_lines(Path(args.results), lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
