"""What every benchmark script shares: the machine, the commit, precision rules, warm-up."""

from __future__ import annotations

import contextlib
import gc
import json
import os
import platform
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]


def resolved_precision(requested: str) -> str:
    """What the peer and the `same` variant run in: bf16 only on CUDA, fp32 otherwise."""
    if not torch.cuda.is_available():
        return "fp32"
    if requested == "auto":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return requested


def encoderkit_auto_precision() -> str:
    """What encoderkit's `precision: auto` (its default) resolves to on this machine."""
    if not torch.cuda.is_available():
        return "fp32"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def device_name() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"cpu {cpu} ({os.cpu_count()} cores, {torch.get_num_threads()} threads)"


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def logger(prefix: str):
    def log(message: str) -> None:
        print(f"[{prefix}] {message}", file=sys.stderr, flush=True)

    return log


def release_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.empty_cache()


_cpu_window_open = False  # whether /proc/self/clear_refs accepted the last reset


def reset_peak_memory() -> float | None:
    """Start a new peak-memory window; return what is held now (MB), the floor of the coming peak.

    CUDA: torch's allocated memory. CPU: the process's resident set, whose high-water mark Linux
    resets when "5" is written to /proc/self/clear_refs; None where that is not allowed.
    """
    global _cpu_window_open
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        return round(torch.cuda.memory_allocated() / 2**20, 1)
    try:
        Path("/proc/self/clear_refs").write_text("5")
        _cpu_window_open = True
    except OSError:
        _cpu_window_open = False
        return None
    return _proc_status_mb("VmRSS")


def peak_memory_mb() -> float | None:
    """Peak since the last `reset_peak_memory()`: CUDA memory allocated by torch, else the process's
    peak resident set (None when the CPU window could not be reset, or /proc does not say)."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        return round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return _proc_status_mb("VmHWM") if _cpu_window_open else None


def _proc_status_mb(key: str) -> float | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return round(int(line.split()[1]) / 1024, 1)  # kB
    return None


def warm_up(model: torch.nn.Module, targets: dict[str, torch.Tensor], seq_len: int, bf16: bool) -> None:
    """A few training steps before anything is timed, so that one-off costs (CUDA/cuBLAS start-up,
    kernel loading, thread pools) are not charged to whichever side runs first."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6)
    batch = len(next(iter(targets.values())))
    ids = torch.randint(1000, 2000, (batch, seq_len), device=device)
    labels = {k: v.to(device) for k, v in targets.items()}
    for _ in range(3):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16 and device.type == "cuda"):
            loss = model(input_ids=ids, **labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    del model, optimizer
    release_memory()


def run_context(model: str, precision: str, commit: str | None) -> dict[str, str]:
    """The fields every result line starts with: when, what code, which model, which machine."""
    import datetime as dt

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
    import tempfile

    if work_dir:
        Path(work_dir).mkdir(parents=True, exist_ok=True)
        return Path(work_dir)
    return Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=prefix)))


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


def read_saved_lines(
    jsonl: Path, check: Callable[[dict[str, Any]], Any], what: str
) -> list[dict[str, Any]] | None:
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
