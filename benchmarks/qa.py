#!/usr/bin/env python
"""QA benchmark: encoderkit against the HF Trainer peer on squad-split, same data, same machine, one run.

squad-split (../shared/guides/benchmarks.md): SQuAD v1.1 dev, train on the articles whose index
% 5 != 4 (39 articles, 8,595 questions), evaluate on index % 5 == 4 (9 articles, 1,975 questions).
``--limit-train N`` / ``--limit-eval N`` keep the first N questions of each split in file order
(article, paragraph, question order; emptied paragraphs and articles are dropped). The splits are
written as SQuAD JSON to a temporary folder, and both sides read those same files.

In this process, one after the other:

1. the peer (``peer_hf_qa.run_peer``: the HF Trainer recipe of ``../shared/tools/peer/hf_qa_baseline.py``:
   windows of 384 / stride 128 padded to 384, bs 32, lr 1e-4, 2 epochs, warmup 0.1, weight decay
   0.01, seed 42), then its evaluation: windows + ``Trainer.predict`` + n-best post-processing +
   SQuAD v1.1 EM/F1, timed, plus reading the eval file;
2. encoderkit with the peer's recipe (variant ``same``: the values above, precision matched: fp32 on
   CPU, bf16 on a CUDA GPU that has it; no step checkpoints, as the peer saves none);
3. encoderkit with its own defaults (variant ``defaults``: only task/model/train/eval/output given).

Each encoderkit run is evaluated again, timed, through its saved model exactly as a user would:
``Predictor.from_dir(run/model).evaluate_file(eval_file, {})`` (read + windows + forward + decode +
score); loading the model is timed apart. ``--task korquad`` runs korquad-split (KorQuAD 1.0 dev,
the same article rule, the ``korquad`` metric) through encoderkit only, as a pipeline check: the
peer is SQuAD v1.1 only, so it is skipped and the JSON line says so.

Stdout: one JSON line per encoderkit variant; everything else goes to stderr. Unless ``--no-write``,
each line is also appended as a table row to benchmarks/RESULTS.md; ``--append-from FILE`` appends the
saved lines of an earlier run (on the GPU machine) instead. The sides are in ``qa_sides.py``.

    python benchmarks/qa.py --limit-train 24 --limit-eval 16 --epochs 1 --no-write
"""

from __future__ import annotations

import harness  # first: it sets HF_HUB_OFFLINE before anything imports huggingface_hub

# isort: split
import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import qa_sides as sides
from common import logger

log = logger("bench-qa")

VARIANTS = harness.RECIPE_VARIANTS


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = harness.Parser(__doc__)
    ap.add_argument(
        "--task", default="squad", choices=tuple(sides.SOURCES), help="squad-split or korquad-split"
    )
    ap.add_data("squad_v1.1/ and korquad_v1.0/", of="questions")
    ap.add_epochs(
        "override the epochs of every run, the defaults variant included (smoke runs); "
        "default: the peer recipe's 2 for the peer and `same`, encoderkit's own for `defaults`"
    )
    ap.add_model()
    ap.add_precision()
    ap.add_variants(VARIANTS, VARIANTS, "encoderkit variants: same,defaults")
    ap.add_output("split files and run folders")
    return ap.parse(argv)


# --- RESULTS.md ------------------------------------------------------------------------------------

SQUAD_NOTE = """Written by `benchmarks/qa.py` (see `benchmarks/README_QA.md`); one row per measured run.
Train s: pure training time (HF Trainer `train_runtime`, encoderkit `train_runtime_s`). Eval s: the
peer's eval file read + windows + `Trainer.predict` + n-best post-processing + EM/F1, against
encoderkit's `Predictor.evaluate_file` (the same steps; model loading not counted). Speed-up = peer s /
encoderkit s (above 1: encoderkit is faster). EM / F1 on the eval split, 0-100; encoderkit's are
those of its best epoch, with the last epoch's (comparable with the peer, which keeps its last
weights) in brackets when they differ. Questions: train questions (the peer's 384/128 windows) /
eval questions; "first N" marks a `--limit-train` / `--limit-eval` subset. Times from the shared CPU
machines are noise; compare them only within one row."""
KORQUAD_NOTE = """Pipeline check, not a comparison: the peer is SQuAD v1.1 only, so its columns stay empty.
encoderkit trains on korquad-split and is scored with the official KorQuAD 1.0 metric. The bundled
MiniLM vocabulary has almost no Hangul, so its scores say nothing about quality; use `--model` with
a model whose tokenizer covers Korean for that. Columns as in the squad-split section; written by
`benchmarks/qa.py --task korquad`."""
COLUMNS = harness.Columns(
    "task | questions | variant | precision | peer train s | encoderkit train s | train speed-up "
    "| peer eval s | encoderkit eval s | eval speed-up | peer EM / F1 | encoderkit EM / F1",
    "llllrrrrrrrr",
)


def table_row(line: harness.Line) -> list[object]:
    def pair(em: float | None, f: float | None) -> str:
        return "-" if em is None or f is None else harness.slash(em, f)

    best = pair(line["encoderkit_exact_match"], line["encoderkit_f1"])
    last = pair(line["encoderkit_last_exact_match"], line["encoderkit_last_f1"])
    return [
        line["task"],
        sides.questions_cell(line),
        line["variant"],
        line["recipe"]["encoderkit"]["precision"],
        harness.num(line["peer_train_s"]),
        harness.num(line["encoderkit_train_s"]),
        harness.num(line["train_speed_ratio"], "{:.2f}x"),
        harness.num(line["peer_eval_s"]),
        harness.num(line["encoderkit_eval_s"]),
        harness.num(line["eval_speed_ratio"], "{:.2f}x"),
        pair(line["peer_exact_match"], line["peer_f1"]),
        harness.with_last(best, last, line),
    ]


TABLES = {
    "squad": harness.Table("## QA (squad-split): encoderkit vs HF Trainer", COLUMNS, table_row, SQUAD_NOTE),
    "korquad": harness.Table(
        "## QA (korquad-split): encoderkit pipeline check (no peer)", COLUMNS, table_row, KORQUAD_NOTE
    ),
}
# Each line goes under its task's heading: `squad-split` -> TABLES["squad"].
RESULTS = harness.Results("this benchmark", lambda line: TABLES[line["task"].removesuffix("-split")])


# --- the run ---------------------------------------------------------------------------------------


def measure(session: harness.Session) -> Iterator[harness.Line]:
    """The peer (squad only), then each encoderkit variant, on the same split files."""
    args, precision, model_path = session.args, session.precision, session.model_path
    harness.warm_up_for("qa", model_path, precision == "bf16")
    source = Path(args.data_dir) / sides.SOURCES[args.task]
    paths = sides.write_split(source, session.work / "data", args.limit_train, args.limit_eval)
    split = f"{args.task}-split"
    peer_epochs = args.epochs if args.epochs is not None else sides.PEER_EPOCHS

    peer: dict[str, Any] | None = None
    if args.task == "squad":
        label = f"{split}: peer (HF Trainer), {precision}"
        peer = harness.run_side(
            log, label, sides.peer_side, model_path, paths, peer_epochs, precision, session.work / "peer"
        )
        n_features = peer["n_train_features"]
    else:
        log(f"{split}: peer {sides.PEER_SKIPPED}")
        n_features = sides.peer_feature_count(model_path, paths[0])
    info = sides.split_info(args.task, paths, n_features, args.limit_train, args.limit_eval)
    peer_recipe = sides.peer_recipe_record(peer_epochs, precision) if peer else None

    for variant in args.variants:
        overrides: dict[str, Any] = {"qa_metric": sides.METRICS[args.task]}
        if variant == "same":
            overrides.update(sides.same_overrides(peer_epochs, precision))
        elif args.epochs is not None:
            overrides["epochs"] = args.epochs
        output = session.work / f"encoderkit-{variant}"
        ek = harness.run_side(
            log,
            f"{split}: encoderkit, variant {variant}",
            sides.encoderkit_side,
            args.model,
            paths,
            output,
            overrides,
        )
        yield sides.result_line(session.context, info, variant, peer, peer_recipe, ek)


def main(argv: list[str] | None = None) -> int:
    return harness.run(parse_args(argv), measure, RESULTS, log)


if __name__ == "__main__":
    sys.exit(main())
