"""kill -9 a real `encoderkit train` process at random moments, resume it each time, and check that
the run it finally finishes equals an uninterrupted run: same weights bit for bit, same metrics,
same log (timings aside). The tests kill at chosen points; this kills wherever the clock says.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/kill_resume.py --kills 8 --seed 0
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/kill_resume.py --kills 1 --kills-per-run 1   # smoke

Runs the tiny random BERT of tests/conftest.py on toy regression data (CPU, a few seconds a run).
"""

from __future__ import annotations

import harness  # first: it sets HF_HUB_OFFLINE before anything imports huggingface_hub

# isort: split
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from common import REPO

# The tests' tiny model and toy data, and the run the reliability tests kill (the same run here).
FIXTURES = harness.load_source("encoderkit_test_fixtures", REPO / "tests" / "conftest.py")
RELIABILITY_TESTS = REPO / "tests" / "integration" / "test_reliability.py"


_CONSTANTS = harness.literal_constants(RELIABILITY_TESTS, "RUN", "TIMED")
RUN: list[str] = _CONSTANTS["RUN"]  # `encoderkit train` flags of the run that is killed
TIMED: set[str] = _CONSTANTS["TIMED"]  # figures that measure the machine, not the run


def command(model: Path, data: Path, output: Path, resume: bool) -> list[str]:
    files = ["--train", str(data / "train.jsonl"), "--eval", str(data / "eval.jsonl")]
    args = ["train", "--model", str(model), *files, "--output", str(output), *RUN]
    return [sys.executable, "-m", "encoderkit", *args, *(["--resume"] if resume else [])]


def prepare(root: Path) -> tuple[Path, Path]:
    model = FIXTURES._build_tiny_model(root / "tiny")
    data = root / "data"
    data.mkdir()
    for name, n, seed in (("train", 96, 2), ("eval", 32, 3)):
        rows = FIXTURES.sentiment_rows(n, seed)
        scores = [{"text": r["text"], "score": 4.5 if r["label"] == "positive" else 0.5} for r in rows]
        FIXTURES.write_jsonl(data / f"{name}.jsonl", scores)
    return model, data


def run_once(cmd: list[str], kill_after: float | None) -> tuple[int, float, str]:
    """(exit code, seconds, last stderr line); killed with SIGKILL after `kill_after` seconds."""
    started = time.monotonic()
    process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _, err = process.communicate(timeout=kill_after)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        _, err = process.communicate()
    lines = err.strip().splitlines()
    return process.returncode, time.monotonic() - started, lines[-1] if lines else ""


def outcome(run_dir: Path) -> tuple[dict, list[dict], dict]:
    from safetensors.torch import load_file

    weights = load_file(str(run_dir / "model" / "model.safetensors"))
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    untimed = [{k: v for k, v in e.items() if k not in TIMED} for e in log]
    return weights, untimed, {k: v for k, v in metrics.items() if k not in TIMED}


def state_of(run_dir: Path) -> str:
    if not run_dir.exists():
        return "no run folder"
    root = run_dir / "checkpoints"
    kept = sorted(p.name for p in root.iterdir() if p.name != "best") if root.is_dir() else []
    return f"checkpoints {kept or 'none'}" + (", finished" if (run_dir / "metrics.json").exists() else "")


def killed_run(
    model: Path, data: Path, run_dir: Path, rng: random.Random, window_s: float, most: int | None
) -> int:
    """Start a run, kill it at a random moment, resume it, ... until one attempt finishes; after
    `most` kills (None: no limit) the next attempt is left to finish.

    Returns the number of kills. A run killed before its folder existed has nothing to resume: it
    is started again without --resume.
    """
    kills = 0
    while True:
        cmd = command(model, data, run_dir, resume=run_dir.exists())
        kill_after = None if most is not None and kills >= most else rng.uniform(0.5, window_s)
        code, seconds, last = run_once(cmd, kill_after)
        how = "resumed" if "--resume" in cmd else "started"
        print(f"  {how}, exit {code} after {seconds:.1f} s: {state_of(run_dir)}")
        if code == -signal.SIGKILL:
            kills += 1
            if not (run_dir / "metrics.json").exists():
                continue  # else killed after marking the run finished, while removing checkpoints
        elif code != 0:
            raise SystemExit(f"failed: {last}")
        return kills


def main(argv: list[str] | None = None) -> int:
    parser = harness.Parser(__doc__)
    parser.add_argument("--kills", type=int, default=8, help="kill at least this many times, over runs")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill times")
    parser.add_argument(
        "--kills-per-run",
        type=int,
        help="kill a run at most N times, then let its next attempt finish (default: no limit; "
        "a resumed run pays the start-up again, so without a limit one run may take many attempts)",
    )
    parser.add_argument("--work-dir", help="keep the model, data and runs here (default: a temporary folder)")
    parser.check_at_least(1, "kills_per_run")
    args = parser.parse(argv)
    with contextlib.ExitStack() as stack:
        root = harness.work_folder(stack, args.work_dir, "kill-resume-")
        return kill_and_compare(root, args.kills, random.Random(args.seed), args.kills_per_run)


def kill_and_compare(root: Path, at_least: int, rng: random.Random, kills_per_run: int | None) -> int:
    """The uninterrupted run, then killed runs until `at_least` kills; 0 when all of them equal it."""
    model, data = prepare(root)
    code, straight_s, _ = run_once(command(model, data, root / "straight", resume=False), None)
    assert code == 0, "the uninterrupted run failed"
    print(f"uninterrupted run: {straight_s:.1f} s (with imports)")
    expected = outcome(root / "straight")
    kills, runs, equal = 0, 0, 0
    while kills < at_least:
        runs += 1
        print(f"run {runs}:")
        run_dir = root / f"killed-{runs}"
        kills += killed_run(model, data, run_dir, rng, straight_s, kills_per_run)
        got = outcome(run_dir)
        same = [expected[0].keys() == got[0].keys() and all(expected[0][k].equal(got[0][k]) for k in got[0])]
        same += [expected[1] == got[1], expected[2] == got[2]]
        print(f"  weights identical: {same[0]}; log identical: {same[1]}; metrics identical: {same[2]}")
        equal += all(same)
    print(f"{kills} kills over {runs} runs; {equal} of {runs} finished runs equal the uninterrupted one")
    return 0 if equal == runs else 1


if __name__ == "__main__":
    sys.exit(main())
