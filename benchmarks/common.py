"""The machine a benchmark runs on: device, commit, precision rules, memory windows, warm-up.

The run itself (command line, sides, results tables) is `harness.py`.
"""

from __future__ import annotations

import contextlib
import gc
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


def logger(prefix: str) -> Callable[[str], None]:
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
    # Ids 1000-2000 (ordinary word pieces of a real vocabulary), inside a tiny test model's vocabulary.
    config: Any = model.config  # a transformers model's
    high = min(2000, int(config.vocab_size))
    ids = torch.randint(min(1000, high // 2), high, (batch, seq_len), device=device)
    labels = {k: v.to(device) for k, v in targets.items()}
    for _ in range(3):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16 and device.type == "cuda"):
            loss = model(input_ids=ids, **labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    del model, optimizer
    release_memory()
