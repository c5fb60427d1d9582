"""What benchmarks/speed.py compares its figures with, and how its lines become RESULTS.md rows.

The targets are those of issue #4 ("Speed"), as data: each names the figure of a JSON line it reads,
its bound, and the setting the issue states it for. A run in another setting (a CPU smoke run, a
subset) still reports `met`, with `as_specified: false`, so nobody mistakes it for the real check.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import harness
from common import logger
from qa_sides import questions_cell

log = logger("bench-speed")


@dataclass(frozen=True)
class Target:
    label: str  # short, for the table
    key: str  # the figure of the JSON line it reads
    at_least: float | None = None
    at_most: float | None = None

    def met(self, value: float | None) -> bool | None:
        if value is None:
            return None
        if self.at_least is not None and value < self.at_least:
            return False
        return not (self.at_most is not None and value > self.at_most)


@dataclass(frozen=True)
class TargetSet:
    setting: dict[str, Any]  # what the issue states the figures for; `device` matches a substring
    targets: tuple[Target, ...]


MEMORY = Target("peak memory <= peer", "peak_memory_ratio", at_most=1.0)
# (mode or task, device kind) -> targets; the issue has none for sst2 or bert-base on a CPU.
TARGETS = {
    ("squad-split", "cuda"): TargetSet(
        {"device": "H100", "subset": "full", "batch_size": 32, "epochs": 2.0, "max_steps": None},
        (
            Target("train >= 8x", "train_speed_ratio", at_least=8.0),
            Target("F1 within 0.5", "quality_gap", at_least=-0.5),
            Target("eval >= 5x", "eval_speed_ratio", at_least=5.0),
            MEMORY,
        ),
    ),
    ("sst2", "cuda"): TargetSet(
        {"device": "H100", "subset": "full", "batch_size": 32, "epochs": 1.0, "max_steps": None},
        (
            Target("train >= 5x", "train_speed_ratio", at_least=5.0),
            Target("acc within 0.3", "quality_gap", at_least=-0.3),
            MEMORY,
        ),
    ),
    ("bert-base", "cuda"): TargetSet(
        {"device": "H100", "batch_size": 32},
        (Target("encoderkit >= 3,600 feat/s", "encoderkit_train_features_per_s", at_least=3600.0), MEMORY),
    ),
    ("squad-split", "cpu"): TargetSet(
        {"device": "(2 cores", "limit_train": 128, "batch_size": 16, "epochs": 1.0, "precision": "fp32"},
        (Target("train time <= 0.55x peer", "train_time_fraction", at_most=0.55),),
    ),
}


# Variant flags that change the training recipe itself, so the row is not the peer's hyperparameters.
RECIPE_FLAGS = ("--batch-tokens",)


def check_targets(line: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets for this line's mode and device, each with its value and verdict."""
    kind = "cpu" if line["device"].startswith("cpu ") else "cuda"  # common.device_name()
    target_set = TARGETS.get((line["mode"] if line["mode"] == "bert-base" else line["task"], kind))
    if target_set is None:
        return []
    setting = line["setting"]
    as_specified = all(
        expected in setting["device"] if key == "device" else setting.get(key) == expected
        for key, expected in target_set.setting.items()
    ) and not set(line.get("variant_flags", ())) & set(RECIPE_FLAGS)
    return [
        {
            "target": t.label,
            "key": t.key,
            "value": line.get(t.key),
            "met": t.met(line.get(t.key)),
            "as_specified": as_specified,
            "issue_setting": target_set.setting,
        }
        for t in target_set.targets
    ]


# --- RESULTS.md ----------------------------------------------------------------------------------

SPEED_HEADING = "## Speed: encoderkit vs HF Trainer (benchmarks/speed.py)"
SPEED_NOTE = """Written by `benchmarks/speed.py` (issue #4, see README.md). In one process, on the same rows:
the HF Trainer peer (the recipe of `../shared/guides/benchmarks.md`), then encoderkit once per
variant with the peer's hyperparameters. `same` keeps encoderkit's defaults for its speed switches;
each other variant turns techniques off (`no-unpad`: padded batches; `no-compile`: no
`torch.compile`; `no-group-by-length`: batches in random order; `padded-plain`: all three off), so a
variant's time minus `same`'s is what those techniques contributed in that run. Train s: pure
training time (Trainer `train_runtime`, encoderkit `train_runtime_s`); feat/s: training features
(QA windows, or sentences) per second. Eval s (QA): read + windows + forward + post-processing +
EM/F1 on both sides. Peak MB: CUDA memory allocated by torch during each side's training; on a CPU,
the process's peak resident set during it (one process holds both sides there, so read it loosely).
Quality: the peer's final weights against encoderkit's last epoch (best epoch in brackets when it
differs); bert-base rows train a random-init model for a few hundred steps, so they have none.
Targets: the issue's, marked "(not the issue's setting)" when the row's device, data or recipe is
not the one the target is stated for. Speed-up = peer s / encoderkit s."""
SPEED_COLUMNS = harness.Columns(
    "task | data | variant | precision | bs / epochs | peer train s | encoderkit train s "
    "| train speed-up | feat/s peer / encoderkit | peer eval s | encoderkit eval s | eval speed-up "
    "| peak MB peer / encoderkit | peer quality | encoderkit quality | targets",
    "lllllrrrrrrrrrrl",
)

SCALE_HEADING = (
    "## Scale: encoderkit training time by data size and sequence length (benchmarks/speed.py --scale)"
)
SCALE_NOTE = """Written by `benchmarks/speed.py --scale`: encoderkit alone on squad-split training
questions (batch size and epochs in the data cell), lr 1e-4, in the precision shown, once padded
(`--no-unpad`) and once unpadded (`--unpad on` on a CPU, where it runs the exact per-sequence
attention; the default `auto` on a GPU), everything else at encoderkit's defaults (on a GPU that
includes `torch.compile`). Data: the base subset (`--scale-base` questions, or all 8,595) copied
1x / 4x / 16x at max_length 384; then the base at max_length 128 / 256 / 384 / 512 (doc stride
min(128, max_length / 3), so shorter windows make more features). Train s is `train_runtime_s`,
with whatever one-off cost it holds; s / 1k feat is the figure to scale a run by: time for N
features ~ N / 1000 x that figure, once it has stopped falling with size."""
SCALE_COLUMNS = harness.Columns(
    "precision | data | max_length | features | padded s | unpadded s | unpadded speed-up "
    "| s / 1k feat padded / unpadded | peak MB padded / unpadded",
    "llrrrrrrr",
)


def _rate(x: float | None) -> str:
    """Three significant digits or more, without exponents: 7,234 / 12.3 / 0.123."""
    if x is None:
        return "-"
    return f"{x:,.0f}" if x >= 100 else f"{x:.3g}" if x >= 0.001 else f"{x:.2g}"


def _quality(line: dict[str, Any], side: str) -> str:
    if line["mode"] == "bert-base":
        return "- (random init)"
    value, best = line[f"{side}_quality"], line.get(f"{side}_best_quality")
    text = f"{line['quality_metric']} {harness.num(value)}"
    return text + (f" (best {best:.2f})" if best is not None and best != value else "")


def _data_cell(line: dict[str, Any]) -> str:
    if line["task"] == "sst2":
        return line["subset"]
    cell = questions_cell(line)
    return f"bert-base shape, {cell}" if line["mode"] == "bert-base" else cell


def _targets_cell(line: dict[str, Any]) -> str:
    checks = line["targets"]
    if not checks:
        return "-"
    verdict = {True: "yes", False: "no", None: "n/a"}
    cell = ", ".join(f"{c['target']}: {verdict[c['met']]}" for c in checks)
    return cell if checks[0]["as_specified"] else cell + " (not the issue's setting)"


def speed_row(line: dict[str, Any]) -> list[object]:
    setting = line["setting"]
    schedule = f"{setting['max_steps']} steps" if setting.get("max_steps") else f"{setting['epochs']:g}"
    memory = harness.slash(line["peer_peak_memory_mb"], line["encoderkit_peak_memory_mb"], "{:.0f}")
    if line.get("peak_memory_ratio") is not None:
        memory += f" ({line['peak_memory_ratio']:.2f}x)"
    cells = [
        line["task"],
        _data_cell(line),
        line["variant"],
        line["precision"],
        f"{setting['batch_size']} / {schedule}",
        harness.num(line["peer_train_s"]),
        harness.num(line["encoderkit_train_s"]),
        harness.num(line["train_speed_ratio"], "{:.2f}x"),
        f"{_rate(line['peer_train_features_per_s'])} / {_rate(line['encoderkit_train_features_per_s'])}",
        harness.num(line["peer_eval_s"]),
        harness.num(line["encoderkit_eval_s"]),
        harness.num(line["eval_speed_ratio"], "{:.2f}x"),
        memory,
        _quality(line, "peer"),
        _quality(line, "encoderkit"),
        _targets_cell(line),
    ]
    return cells


def scale_row(line: dict[str, Any]) -> list[object]:
    padded, unpadded = line["padded"], line["unpadded"]
    base = "full split" if line["scale_base"] is None else f"first {line['scale_base']} q"
    cells = [
        line["precision"],
        f"{line['size_factor']}x {base} ({line['n_train_questions']} q), bs {line['batch_size']}, "
        f"{line['epochs']:g} ep",
        line["max_length"],
        padded["features"],
        harness.num(padded["train_s"]),
        harness.num(unpadded["train_s"]),
        harness.num(line["unpadded_speedup"], "{:.2f}x"),
        f"{_rate(padded['s_per_1k_features'])} / {_rate(unpadded['s_per_1k_features'])}",
        harness.slash(padded["peak_memory_mb"], unpadded["peak_memory_mb"], "{:.0f}"),
    ]
    return cells


SPEED = harness.Table(SPEED_HEADING, SPEED_COLUMNS, speed_row, SPEED_NOTE)
SCALE = harness.Table(SCALE_HEADING, SCALE_COLUMNS, scale_row, SCALE_NOTE)
# Speed comparisons and scale points each go under their own heading.
RESULTS = harness.Results(
    "benchmarks/speed.py", lambda line: SPEED if line["benchmark"] == "speed" else SCALE
)
