#!/usr/bin/env python
"""Classification benchmark: encoderkit against the HF Trainer peer, same data, same machine, one run.

For each task (mrpc, sst2, imdb) it trains, one after the other in this process:

1. the peer (``peer_hf.run_peer``: the HF Trainer recipe of ``../shared/tools/peer/hf_cls_baseline.py``
   with the per-task hyperparameters of ``../shared/guides/benchmarks.md``);
2. encoderkit with the peer's hyperparameters (variant ``same``: batch, lr, epochs, max_length,
   warmup 0.1, weight decay 0.01, seed 42, the same precision);
3. encoderkit with its own defaults (variant ``defaults``: only task/model/train/eval/output given).

Both sides see exactly the same rows: the peer's reader parses the files once and encoderkit gets
those rows as JSONL in a temporary folder. ``--limit-train N`` / ``--limit-eval N`` keep the first N
rows of each split (IMDB: the classes interleaved in file order first, so a prefix is balanced).

Stdout: one JSON line per (task, encoderkit variant); everything else goes to stderr. Unless
``--no-write``, each line is also appended as a table row to benchmarks/RESULTS.md;
``--append-from FILE`` appends the saved lines of an earlier run (on the GPU machine) instead.

    python benchmarks/classification.py --tasks mrpc --limit-train 64 --limit-eval 32 --no-write
"""

from __future__ import annotations

import harness  # first: it sets HF_HUB_OFFLINE before anything imports huggingface_hub

# isort: split
import argparse
import sys
from collections.abc import Iterator

import classification_sides as sides
from common import logger
from peer_hf import RECIPES

log = logger("bench")

HEADING = "## Classification: encoderkit vs HF Trainer"
COLUMNS = harness.Columns(
    "task | subset | variant | peer s | encoderkit s | speed-up | peer acc/F1 | encoderkit acc/F1", "lllrrrrr"
)
VARIANTS = harness.RECIPE_VARIANTS


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = harness.Parser(__doc__)
    ap.add_argument("--tasks", default="mrpc,sst2,imdb", help="comma-separated: mrpc, sst2, imdb")
    ap.add_data("glue_mrpc/, glue_sst2/, imdb/", min_limit=2)
    ap.add_model()
    ap.add_precision()
    ap.add_variants(VARIANTS, VARIANTS, "encoderkit variants: same,defaults")
    ap.add_output()

    def known_tasks(args: argparse.Namespace) -> None:
        args.tasks = harness.comma_list(args.tasks)
        for task in args.tasks:
            if task not in sides.FILES:
                ap.error(f"unknown task {task!r}; choose from {', '.join(sides.FILES)}")

    ap.check(known_tasks)
    return ap.parse(argv)


def table_row(line: harness.Line) -> list[object]:
    best = f"{line['encoderkit_accuracy']:.2f} / {line['encoderkit_f1']:.2f}"
    last = f"{line['encoderkit_last_accuracy']:.2f} / {line['encoderkit_last_f1']:.2f}"
    return [
        line["task"],
        line["subset"],
        line["variant"],
        f"{line['peer_train_s']:.2f}",
        f"{line['encoderkit_train_s']:.2f}",
        f"{line['speed_ratio']:.2f}x",
        f"{line['peer_accuracy']:.2f} / {line['peer_f1']:.2f}",
        harness.with_last(best, last, line),
    ]


RESULTS = harness.Results.one("benchmarks/classification.py", harness.Table(HEADING, COLUMNS, table_row))


def measure(session: harness.Session) -> Iterator[harness.Line]:
    """Per task: the peer, then each encoderkit variant on the same rows."""
    args, precision = session.args, session.precision
    harness.warm_up_for("classification", session.model_path, precision == "bf16")
    for task in args.tasks:
        task_dir = session.work / task
        data = sides.prepare_task(task, args.data_dir, args.limit_train, args.limit_eval, task_dir)
        recipe = RECIPES[task]
        rows = f"{len(data.train_rows)} train / {len(data.eval_rows)} eval rows, {precision}"
        label = f"{task}: peer (HF Trainer) on {rows}"
        peer = harness.run_side(
            log, label, sides.peer_side, session.model_path, data, recipe, task_dir / "peer", precision
        )
        for variant in args.variants:
            overrides = sides.same_overrides(recipe, precision) if variant == "same" else {}
            output = task_dir / f"encoderkit-{variant}"
            label = f"{task}: encoderkit, variant {variant}"
            ek = harness.run_side(log, label, sides.encoderkit_side, args.model, data, output, overrides)
            record = sides.peer_recipe_record(recipe, precision)
            yield sides.result_line(session.context, data, task, variant, record, peer, ek)


def main(argv: list[str] | None = None) -> int:
    return harness.run(parse_args(argv), measure, RESULTS, log)


if __name__ == "__main__":
    sys.exit(main())
