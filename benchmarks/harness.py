"""The benchmark harness: the command line, the run loop, the sides and the results tables that every
script in benchmarks/ shares, so that a script declares only what it measures.

A script builds its command line from `Parser`'s flag groups, declares its `Table`s (as `Results`)
and a `measure(session)` generator that yields one JSON line per comparison, and hands them to
`run()`. `run()` does the rest the same way for every script: `--append-from`, resolving the model,
the precision and the run context, the work folder, keeping stdout for the JSON lines (each printed
as soon as it is measured), appending RESULTS.md rows unless `--no-write`, and an `error:` line
with exit code 2 for a `UserError`.

Scripts run as `python benchmarks/X.py`: this folder is then on sys.path, so `import harness` works.
encoderkit itself must be importable: installed (the venv's editable install), or, on a bare
checkout such as the accelerator machine's, with `PYTHONPATH=src`.
"""

from __future__ import annotations

import os

# Before anything imports huggingface_hub, which reads it once: the benchmarks load local models only.
# Every script imports this module first for that reason.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import argparse
import ast
import contextlib
import datetime as dt
import importlib.util
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

try:
    import encoderkit  # noqa: F401
except ImportError as exc:  # say how to fix it, not only what is missing
    raise SystemExit(
        "error: encoderkit is not importable: install it (`pip install -e .`) or run with PYTHONPATH=src"
    ) from exc

import torch
import yaml
from common import (
    REPO,
    device_name,
    encoderkit_auto_precision,
    git_commit,
    peak_memory_mb,
    release_memory,
    reset_peak_memory,
    resolved_precision,
    warm_up,
)

from encoderkit.config import build_config
from encoderkit.errors import UserError
from encoderkit.modeling import resolve_model
from encoderkit.training.run import train

T = TypeVar("T")
Line = dict[str, Any]  # one JSON line: one measured comparison
# The encoderkit variants of the classification and QA comparisons: `same` trains with the peer's
# hyperparameters, `defaults` with encoderkit's own (only task, model, data and output given).
RECIPE_VARIANTS = ("same", "defaults")

DATA_DIR = REPO.parent / "shared" / "data"
RESULTS = REPO / "benchmarks" / "RESULTS.md"
# The start of RESULTS.md when a script has to create it; each section explains its own columns.
INTRO = """# Benchmark results

Written by the scripts in this folder; every row is one measured run, appended by the script.
Each section says what its columns mean. Times from the shared CPU machines are noise; compare
them only within one row.
"""


# --- the command line ------------------------------------------------------------------------------


class Parser(argparse.ArgumentParser):
    """argparse with the flags the benchmarks share, one method per group, checked after parsing."""

    def __init__(self, doc: str | None, **kwargs: Any) -> None:
        super().__init__(description=(doc or "").split("\n\n")[0], **kwargs)
        self._checks: list[Callable[[argparse.Namespace], None]] = []

    def check(self, check: Callable[[argparse.Namespace], None]) -> None:
        """Run `check(args)` after parsing; it calls `self.error` to stop with a usage error."""
        self._checks.append(check)

    def parse(self, argv: Sequence[str] | None = None) -> argparse.Namespace:
        args = self.parse_args(argv)
        for check in self._checks:
            check(args)
        return args

    def add_model(self, help: str = "`minilm` (bundled) or a model folder, for both sides") -> None:
        self.add_argument("--model", default="minilm", help=help)

    def add_data(self, holds: str, of: str = "rows", min_limit: int = 1, eval_default: str = "all") -> None:
        """--data-dir (a folder holding `holds`) and --limit-train / --limit-eval (the first N `of`)."""
        self.add_argument(
            "--data-dir",
            default=str(DATA_DIR),
            help=f"folder holding {holds} (default: ../shared/data beside the repo)",
        )
        self.add_argument("--limit-train", type=int, help=f"use the first N training {of} (default: all)")
        self.add_argument(
            "--limit-eval", type=int, help=f"use the first N eval {of} (default: {eval_default})"
        )
        self.check_at_least(min_limit, "limit_train", "limit_eval")

    def add_precision(self) -> None:
        self.add_argument(
            "--precision",
            default="auto",
            choices=("auto", "fp32", "bf16"),
            help="peer and `same`: auto = bf16 on a CUDA GPU that supports it, else fp32; "
            "bf16 is used on CUDA only",
        )

    def add_epochs(self, help: str) -> None:
        self.add_argument("--epochs", type=float, help=help)

        def positive(args: argparse.Namespace) -> None:
            if args.epochs is not None and not args.epochs > 0:
                self.error("--epochs must be > 0")

        self.check(positive)

    def add_variants(self, names: Sequence[str], default: Sequence[str] | None, help: str) -> None:
        """--variants a,b: a list of `names`; without a `default`, none given leaves None (the script's
        choice, e.g. by device); with one, naming none is an error."""
        self.add_argument("--variants", default=",".join(default) if default else None, help=help)

        def known(args: argparse.Namespace) -> None:
            args.variants = comma_list(args.variants or "") or None
            if args.variants is None and default:
                self.error(f"--variants: give at least one of {','.join(names)}")
            for variant in args.variants or ():
                if variant not in names:
                    self.error(f"unknown variant {variant!r}; choose from {', '.join(names)}")

        self.check(known)

    def add_output(self, keeps: str = "run folders") -> None:
        """Where rows go (--results, --no-write, --append-from), --work-dir and --commit."""
        self.add_argument("--results", default=str(RESULTS), help="table to append to")
        self.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
        self.add_argument("--work-dir", help=f"keep {keeps} here (default: a temporary folder, removed)")
        self.add_argument(
            "--commit", help="commit to record (default: `git rev-parse --short HEAD` or unknown)"
        )
        self.add_argument(
            "--append-from",
            metavar="JSONL",
            help="measure nothing: append the JSON lines an earlier run printed (e.g. on the GPU "
            "machine) to --results",
        )

    def check_at_least(self, least: int, *names: str) -> None:
        """Integer flags that, when given, must be >= `least`."""

        def at_least(args: argparse.Namespace) -> None:
            for name in names:
                if getattr(args, name) is not None and getattr(args, name) < least:
                    self.error(f"--{name.replace('_', '-')} must be >= {least}")

        self.check(at_least)


def comma_list(text: str) -> list[str]:
    """`a, b,,c` -> [a, b, c]."""
    return [part.strip() for part in text.split(",") if part.strip()]


# --- RESULTS.md ------------------------------------------------------------------------------------


# Every table starts with the run context: when, what code, which machine (`run_context`).
CONTEXT_COLUMNS = ("date", "commit", "device")


@dataclass(frozen=True)
class Columns:
    """A table's own columns, after the context's (`a | b | c`), and their alignment, one letter a
    column: `l` text, `r` figures. One letter a column, so a table cannot lose a column unseen."""

    names: str
    align: str

    def __post_init__(self) -> None:
        if len(self.names.split(" | ")) != len(self.align) or set(self.align) - {"l", "r"}:
            raise ValueError(f"columns {self.names!r}: give one alignment letter (l or r) a column")

    @property
    def head(self) -> list[str]:
        """The Markdown table's first two lines."""
        names = " | ".join([*CONTEXT_COLUMNS, self.names])
        rule = "|".join("---:" if a == "r" else "---" for a in "l" * len(CONTEXT_COLUMNS) + self.align)
        return [f"| {names} |", f"|{rule}|"]


@dataclass(frozen=True)
class Table:
    """One section of RESULTS.md: its heading, its columns, the cells of a JSON line, and a note."""

    heading: str
    columns: Columns
    cells: Callable[[Line], list[object]]  # the table's own cells, after the context's
    note: str = ""  # what the columns mean, written under the heading when the section is created

    def row(self, line: Line) -> str:
        return markdown_row([*(line[key] for key in CONTEXT_COLUMNS), *self.cells(line)])


@dataclass(frozen=True)
class Results:
    """The tables one script writes, and which of them a JSON line belongs in."""

    what: str  # the script, for messages about a saved file that is not its output
    table_of: Callable[[Line], Table]

    @classmethod
    def one(cls, what: str, table: Table) -> Results:
        return cls(what, lambda line: table)

    def append(self, path: Path, lines: Iterable[Line], log: Callable[[str], None]) -> None:
        """Append each line as a row of its table (rows of one table together, in line order)."""
        grouped: dict[str, tuple[Table, list[str]]] = {}
        for line in lines:
            table = self.table_of(line)
            grouped.setdefault(table.heading, (table, []))[1].append(table.row(line))
        for table, rows in grouped.values():
            append_table_rows(path, table.heading, table.columns.head, rows, INTRO, table.note)
            log(f"appended {len(rows)} row(s) to {path} under {table.heading!r}")

    def append_saved(self, jsonl: Path, path: Path, log: Callable[[str], None]) -> int:
        """`--append-from`: the rows of the JSON lines an earlier run printed; 2 for a bad file."""
        lines = read_saved_lines(jsonl, lambda line: self.table_of(line).row(line), self.what)
        if lines is None:
            return 2
        self.append(path, lines, log)
        return 0


def with_last(best: str, last: str, line: Line) -> str:
    """encoderkit's figures of its best checkpoint, followed by its last epoch's (the ones comparable
    with the peer, which keeps its last weights) when the best is not the last."""
    return best if line["encoderkit_best_step"] == line["encoderkit_steps"] else f"{best} (last {last})"


def markdown_row(cells: Iterable[object]) -> str:
    """A table row; a `|` inside a cell would split it, so it becomes `/`."""
    return "| " + " | ".join(str(c).replace("|", "/") for c in cells) + " |"


def num(x: float | None, fmt: str = "{:.2f}") -> str:
    """A figure for a cell, `-` when the line has none."""
    return "-" if x is None else fmt.format(x)


def slash(a: float | None, b: float | None, fmt: str = "{:.2f}") -> str:
    """`a / b` for a cell, each `-` when missing."""
    return f"{num(a, fmt)} / {num(b, fmt)}"


def append_table_rows(
    path: Path, heading: str, table_head: list[str], rows: list[str], intro: str, note: str = ""
) -> None:
    """Append rows to the table under `heading` in a Markdown file; create the file (with `intro`),
    the section (with `note`) or the table when missing. Other sections are left as they are."""
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else intro.rstrip().splitlines()
    if heading not in lines:
        while lines and not lines[-1].strip():
            lines.pop()
        preface = [*note.splitlines(), ""] if note else []
        lines += ["", heading, "", *preface, *table_head, *rows]
    else:
        start = lines.index(heading)
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        table = [i for i in range(start + 1, end) if lines[i].startswith("|")]
        if table:
            lines[table[-1] + 1 : table[-1] + 1] = rows
        else:
            lines[start + 1 : start + 1] = ["", *table_head, *rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def read_saved_lines(jsonl: Path, check: Callable[[Line], Any], what: str) -> list[Line] | None:
    """The JSON lines an earlier run printed (e.g. on the GPU machine), logs mixed in skipped.

    `check(line)` raises on a line the table cannot take, so nothing is written for a bad file.
    Returns None after printing one `error:` line (unreadable file, bad line, no line at all).
    """
    try:
        text = jsonl.read_text(encoding="utf-8")
    except OSError as exc:
        print(f"error: {jsonl}: cannot read ({exc.strerror})", file=sys.stderr)
        return None
    lines = []
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip().startswith("{"):
            continue
        try:
            line = json.loads(raw)
            check(line)
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            print(f"error: {jsonl}:{number}: not a line of {what} ({exc!r})", file=sys.stderr)
            return None
        lines.append(line)
    if not lines:
        print(f"error: {jsonl}: no JSON lines found", file=sys.stderr)
        return None
    return lines


# --- the run ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Session:
    """What a script's `measure` gets: its arguments, a work folder, the model and the run context."""

    args: argparse.Namespace
    work: Path
    model_path: str  # `--model` resolved to a folder (`minilm` -> the bundled copy)
    context: dict[str, Any]  # the fields every JSON line starts with (`run_context`)
    log: Callable[[str], None]

    @property
    def precision(self) -> str:
        return str(self.context["precision"])


def run(
    args: argparse.Namespace,
    measure: Callable[[Session], Iterable[Line]],
    results: Results,
    log: Callable[[str], None],
    precision: str | None = None,
) -> int:
    """A script's main: append saved lines, or measure, print and append. Returns the exit code.

    `precision` is what the context records for a script without `--precision` (whose runs pick
    their own); with the flag, it is resolved for this machine (bf16 only on CUDA).
    """
    if args.append_from:
        return results.append_saved(Path(args.append_from), Path(args.results), log)
    try:
        model_path = resolve_model(args.model)
    except UserError as exc:
        return fail(exc)
    if precision is None:
        precision = resolved_precision(args.precision)
        if args.precision == "bf16" and precision != "bf16":
            log("--precision bf16 needs a CUDA GPU; running fp32")
    context = run_context(args.model, precision, args.commit)
    stdout = sys.stdout
    with contextlib.ExitStack() as stack:
        work = work_folder(stack, args.work_dir, "encoderkit-bench-")
        # Trainer and encoderkit print progress to stdout; keep stdout for the JSON lines.
        stack.enter_context(contextlib.redirect_stdout(sys.stderr))
        log(f"device {context['device']}, model {model_path}, precision {precision}, work folder {work}")
        try:
            for line in measure(Session(args, work, model_path, context, log)):
                print(json.dumps(line), file=stdout, flush=True)
                if not args.no_write:  # row by row: a run cut short keeps the rows it measured
                    results.append(Path(args.results), [line], log)
        except UserError as exc:
            return fail(exc)
    return 0


def fail(exc: UserError) -> int:
    print(f"error: {exc}", file=sys.stderr)
    return 2


def run_context(model: str, precision: str, commit: str | None) -> dict[str, Any]:
    """The fields every result line starts with: when, what code, which model, which machine."""
    import transformers

    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d"),
        "commit": commit or git_commit(),
        "model": model,
        "device": device_name(),
        "precision": precision,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }


def work_folder(stack: contextlib.ExitStack, work_dir: str | None, prefix: str) -> Path:
    """`--work-dir` when given (kept), else a temporary folder removed when `stack` closes."""
    if work_dir:
        Path(work_dir).mkdir(parents=True, exist_ok=True)
        return Path(work_dir)
    return Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=prefix)))


# --- the sides -------------------------------------------------------------------------------------


def run_side(
    log: Callable[[str], None], label: str, side: Callable[..., dict[str, Any]], *args: Any, **kwargs: Any
) -> dict[str, Any]:
    """One side of a comparison (the peer, or one encoderkit variant), `side(*args, **kwargs)`: logged,
    timed, and its memory freed afterwards, so that the next side starts from the same state."""
    log(f"{label} ...")
    result, seconds = timed(side, *args, **kwargs)
    release_memory()
    shown = {k: v for k, v in result.items() if k != "config"}
    log(f"{label}: {seconds:.1f} s wall, {json.dumps(shown)}")
    return result


def timed(call: Callable[..., T], *args: Any, **kwargs: Any) -> tuple[T, float]:
    """`call(*args, **kwargs)` and the seconds it took."""
    t0 = time.perf_counter()
    result = call(*args, **kwargs)
    return result, time.perf_counter() - t0


@dataclass(frozen=True)
class EncoderkitRun:
    """One encoderkit training run through its Python API, and what its run folder says."""

    metrics: dict[str, Any]  # metrics.json: times, steps, the best checkpoint's eval figures
    run_dir: Path
    config: dict[str, Any]  # the resolved config.yaml (`max_length` after `auto`, ...)
    last_eval: dict[str, Any] | None  # the last evaluation's log entry (None: no evaluation)
    peak_memory_mb: float | None  # during `train()`, from the floor it started at
    memory_floor_mb: float | None

    def schedule(self) -> dict[str, Any]:
        """Training time (pure and wall), speed, steps and the best checkpoint's step."""
        keys = ("train_runtime_s", "wall_time_s", "train_samples_per_s", "steps", "best_step")
        return {k: self.metrics[k] for k in keys}

    def memory(self) -> dict[str, float | None]:
        return {"peak_memory_mb": self.peak_memory_mb, "memory_floor_mb": self.memory_floor_mb}


def train_encoderkit(fields: dict[str, Any], eval_key: str | None = None) -> EncoderkitRun:
    """`train()` with these config fields (task, model, train, eval, output, overrides).

    `eval_key` names a figure every evaluation logs (e.g. `eval_f1`), to find the last one.
    """
    output = Path(fields["output"])
    if output.exists():  # a reused --work-dir
        shutil.rmtree(output)
    config = build_config({}, fields)
    floor = reset_peak_memory()
    result = train(config, echo=lambda message: print(message, file=sys.stderr, flush=True))
    peak = peak_memory_mb()
    log_lines = (result.run_dir / "log.jsonl").read_text(encoding="utf-8").splitlines()
    evals = [json.loads(line) for line in log_lines if eval_key and f'"{eval_key}"' in line]
    return EncoderkitRun(
        metrics=result.metrics,
        run_dir=result.run_dir,
        config=yaml.safe_load((result.run_dir / "config.yaml").read_text(encoding="utf-8")),
        last_eval=max(evals, key=lambda e: e["step"]) if evals else None,
        peak_memory_mb=peak,
        memory_floor_mb=floor,
    )


def encoderkit_recipe(config: dict[str, Any], keys: Sequence[str]) -> dict[str, Any]:
    """The resolved config values a JSON line records; `auto` precision says what it became here."""
    record = {k: config[k] for k in keys}
    if record.get("precision") == "auto":
        record["precision"] = f"auto ({encoderkit_auto_precision()})"
    return record


def peer_recipe(max_length: int, batch_size: int, lr: float, epochs: float, **rest: Any) -> dict[str, Any]:
    """The peer's hyperparameters under encoderkit's config names: what the `same` variant trains
    with and what a JSON line records for the peer (`rest`: warmup, weight decay, seed, ...)."""
    return {"max_length": max_length, "batch_size": batch_size, "lr": lr, "epochs": epochs, **rest}


def result_line(
    context: dict[str, Any],
    data: dict[str, Any],
    variant: str,
    recipes: tuple[dict[str, Any] | None, dict[str, Any]],
    figures: dict[str, Any],
) -> Line:
    """The JSON line of one encoderkit variant against the peer: the run context, the data, the
    variant, both recipes (peer, encoderkit; no peer: None) and the measured figures."""
    return {
        **context,
        **data,
        "variant": variant,
        "recipe": {"peer": recipes[0], "encoderkit": recipes[1]},
        **figures,
    }


def ratio(a: float | None, b: float | None, digits: int = 3) -> float | None:
    """a / b (a speed-up: peer s / encoderkit s), None when either is missing."""
    return None if a is None or b is None else round(a / max(b, 1e-9), digits)


def warm_up_for(kind: str, model_path: str, bf16: bool) -> None:
    """Untimed training steps, so CUDA and thread-pool start-up is charged to neither side.

    `kind`: `classification` (a 2-label head, 64 tokens) or `qa` (a span head, 128 tokens).
    """
    from transformers import AutoModelForQuestionAnswering, AutoModelForSequenceClassification

    labels = torch.zeros(8, dtype=torch.long)
    if kind == "classification":
        model = AutoModelForSequenceClassification.from_pretrained(
            model_path, num_labels=2, dtype=torch.float32
        )
        warm_up(model, {"labels": labels}, 64, bf16)
    else:
        model = AutoModelForQuestionAnswering.from_pretrained(model_path, dtype=torch.float32)
        warm_up(model, {"start_positions": labels, "end_positions": labels}, 128, bf16)


# --- code from outside benchmarks/ ------------------------------------------------------------------


def load_source(name: str, path: Path) -> ModuleType:
    """Import a Python file by its path (e.g. the tests' fixtures), without putting its folder on
    sys.path, where its names could shadow others."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"{path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def literal_constants(path: Path, *names: str) -> dict[str, Any]:
    """Module-level constants of a Python file, read without importing it: literals only (lists,
    sets, strings, numbers). For a test module that cannot be imported from here (its imports need
    the repo root on sys.path, and encoderkit internals)."""
    found = {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        target = node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else None
        if isinstance(node, ast.Assign) and isinstance(target, ast.Name) and target.id in names:
            found[target.id] = ast.literal_eval(node.value)
    missing = set(names) - set(found)
    if missing:
        raise SystemExit(f"error: {path}: no literal {', '.join(sorted(missing))}")
    return found
