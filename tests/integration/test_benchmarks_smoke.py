"""Every script in benchmarks/ runs end to end in its smallest CPU mode and prints what it measured.

Each script runs as a user runs it (`python benchmarks/X.py ...`, a subprocess, HF_HUB_OFFLINE=1) on a
handful of examples with the tests' tiny random BERT, with `--no-write`; its JSON lines are then
appended to a scratch RESULTS.md with `--append-from`, the way lines measured on the GPU machine
come back. The peers (the HF Trainer recipes) run inside the classification, QA, speed, MLM and NER
cases.
A case whose ../shared/data file is absent is skipped and says which file. The serving case talks
to 127.0.0.1 only.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from tests.conftest import SHARED_DATA, _build_tiny_model

REPO = Path(__file__).resolve().parents[2]
BENCHMARKS = REPO / "benchmarks"
TIMEOUT_S = 300  # one script; they take 10-40 s each on 2 idle cores


@dataclass(frozen=True)
class Case:
    script: str  # benchmarks/<script>.py
    args: tuple[str, ...]  # besides --model (when `model`) and --no-write
    data: tuple[str, ...] = ()  # files under ../shared/data it reads
    variants: tuple[str, ...] = ()  # the `variant` (or `strategy`, `measure`) of each JSON line, in order
    heading: str = ""  # the RESULTS.md section its lines go under
    key: str = "variant"  # the field that names a line
    model: bool = True  # takes --model


MRPC = ("glue_mrpc/train.tsv.gz", "glue_mrpc/dev.tsv.gz")
SQUAD = ("squad_v1.1/dev-v1.1.json.gz",)
DATA = ("--data-dir", str(SHARED_DATA))
CASES = [
    Case(
        "classification",
        ("--tasks", "mrpc", "--limit-train", "8", "--limit-eval", "8", *DATA),
        MRPC,
        ("same", "defaults"),
        "## Classification: encoderkit vs HF Trainer",
    ),
    Case(
        "qa",
        ("--limit-train", "4", "--limit-eval", "4", "--epochs", "1", *DATA),
        SQUAD,
        ("same", "defaults"),
        "## QA (squad-split): encoderkit vs HF Trainer",
    ),
    Case(  # on a CPU its default variants are `same` and `padded-plain`
        "speed",
        ("--limit-train", "4", "--limit-eval", "4", "--epochs", "1", *DATA),
        SQUAD,
        ("same", "padded-plain"),
        "## Speed: encoderkit vs HF Trainer (benchmarks/speed.py)",
    ),
    Case(
        "strategies",
        (
            "--task",
            "mrpc",
            "--limit-train",
            "8",
            "--limit-eval",
            "8",
            "--strategies",
            "frozen",
            "--epochs",
            "1",
            *DATA,
        ),
        MRPC,
        ("frozen",),
        "## Strategies: `encoderkit compare` (full, frozen, LoRA, scratch)",
        key="strategy",
    ),
    Case(
        "mlm",
        ("--limit-train", "8", "--limit-eval", "4", "--max-length", "32", *DATA),
        SQUAD,
        ("squad",),
        "## Masked LM: encoderkit vs HF run_mlm.py recipe",
        key="corpus",
    ),
    Case(
        "ner",
        ("--limit-train", "40", "--limit-eval", "4", "--epochs", "1", "--max-length", "32", *DATA),
        ("conll2003/train.txt.gz", "conll2003/dev.txt.gz", "conll2003/test.txt.gz"),
        ("same", "defaults"),
        "## Token classification: encoderkit vs HF run_ner.py recipe",
    ),
    Case(
        "tune_search",
        ("--limit-train", "8", "--limit-eval", "4", "--epochs", "1", "--trials", "2", *DATA),
        MRPC,
        ("mrpc",),
        "## Hyperparameter search: `encoderkit tune` vs the defaults (benchmarks/tune_search.py)",
        key="task",
    ),
    Case(
        "qa_scratch",
        (
            "--limit-train",
            "8",
            "--limit-eval",
            "4",
            "--mlm-epochs",
            "1",
            "--qa-epochs",
            "1",
            "--max-length",
            "64",
            "--vocab-size",
            "400",
            *DATA,
        ),
        ("korquad_v1.0/KorQuAD_v1.0_dev.json.gz",),
        ("qa-scratch",),
        "## From scratch: KorQuAD QA from an MLM-pretrained vs a random encoder (benchmarks/qa_scratch.py)",
        key="task",
    ),
    Case(
        "mlm_adapt",
        (
            "--limit-train",
            "16",
            "--limit-eval",
            "8",
            "--max-length",
            "32",
            "--mlm-epochs",
            "1",
            "--epochs",
            "1",
            *DATA,
        ),
        ("imdb/train_5k.jsonl.gz", "imdb/test_5k.jsonl.gz"),
        ("",),
        "## Domain adaptation: MLM on the task text, then classification (benchmarks/mlm_adapt.py)",
        key="",
    ),
    Case(
        "ner_klue",
        (
            "--limit-train",
            "30",
            "--limit-eval",
            "10",
            "--mlm-epochs",
            "1",
            "--ner-epochs",
            "1",
            "--vocab-size",
            "300",
            *DATA,
        ),
        ("klue_ner/klue-ner-v1.1_dev.tsv.gz",),
        ("minilm", "scratch-mlm"),
        "## Token classification: KLUE-NER pipeline check (Korean, character tags)",
    ),
    Case(
        "serve",
        ("--duration", "0.3", "--latency-requests", "3", "--clients", "1", "--context-tokens", "64"),
        (),
        ("latency", "latency in process", "throughput"),
        "## Serving (QA): encoderkit serve vs a plain baseline server",
        key="measure",
    ),
    Case(
        "launch_overhead",
        ("--max-steps", "2", "--batch-size", "4", "--repeats", "1", "--launchers", "plain,accelerate"),
        (),
        ("",),
        "## Launch overhead: plain vs `accelerate launch` / `torchrun` (1 process)",
        key="",
    ),
]


@pytest.fixture(scope="module")
def bench_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The tests' tiny random BERT with 512 positions: the QA benchmarks use the peer's 384-token
    windows, longer than the 128 positions of the `tiny_model` fixture."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    folder = _build_tiny_model(tmp_path_factory.mktemp("tiny-bert-512"))
    config = BertConfig.from_pretrained(folder)
    config.max_position_embeddings = 512
    with torch.random.fork_rng():
        torch.manual_seed(1)
        BertModel(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(folder, model_max_length=512).save_pretrained(folder)
    return str(folder)


def run_script(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`python benchmarks/<script>.py ARGS` from the repo root, offline; fails the test on a non-zero exit."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, str(BENCHMARKS / f"{script}.py"), *args]
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert done.returncode == 0, f"{' '.join(cmd)} exited {done.returncode}:\n{done.stderr[-4000:]}"
    return done


def skip_without(files: tuple[str, ...]) -> None:
    missing = [name for name in files if not (SHARED_DATA / name).is_file()]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} under {SHARED_DATA} (not present here)")


def append_from(script: str, saved: Path, results: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    """The script's `--append-from` in this process (a second subprocess would cost its imports)."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # as `python benchmarks/X.py` has it
    module = importlib.import_module(script)
    return module.main(["--append-from", str(saved), "--results", str(results)])


@pytest.mark.parametrize("case", CASES, ids=[case.script for case in CASES])
def test_benchmark_prints_its_lines_and_their_rows(
    case: Case, bench_model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    skip_without(case.data)
    model = ("--model", bench_model) if case.model else ()
    done = run_script(case.script, *case.args, *model, "--no-write", "--work-dir", str(tmp_path / "work"))

    lines = [json.loads(text) for text in done.stdout.splitlines() if text.startswith("{")]
    assert [line.get(case.key, "") for line in lines] == list(case.variants), done.stdout
    for line in lines:
        assert line["model"] == bench_model and line["device"] and line["date"]
    check_figures(case.script, lines)

    saved = tmp_path / "lines.jsonl"
    saved.write_text(done.stdout, encoding="utf-8")
    results = tmp_path / "RESULTS.md"
    assert append_from(case.script, saved, results, monkeypatch) == 0
    table = results.read_text(encoding="utf-8").split(case.heading, 1)[1]
    rows = [row for row in table.splitlines() if row.startswith(f"| {lines[0]['date']} |")]
    assert len(rows) == len(lines), table


def check_figures(script: str, lines: list[dict]) -> None:
    """What each script measured is there and makes sense (times > 0, scores in 0-100)."""
    for line in lines:
        if script == "classification":
            assert line["speed_ratio"] > 0 and 0 <= line["encoderkit_accuracy"] <= 100
            assert line["recipe"]["peer"]["batch_size"] == 8  # mrpc's peer recipe
        elif script in ("qa", "speed"):
            assert line["train_speed_ratio"] > 0 and line["eval_speed_ratio"] > 0
            assert 0 <= line["peer_f1"] <= 100 and 0 <= line["encoderkit_f1"] <= 100
        elif script == "strategies":
            assert 0 < line["trainable_params"] < line["total_params"]
        elif script == "mlm":
            assert line["speed_ratio"] > 0 and line["masked_tokens"] > 0
            assert line["peer_perplexity"] > 1 and line["encoderkit_perplexity"] > 1
        elif script == "qa_scratch":
            assert (
                line["mlm_steps"] > 0 and 0 <= line["random_f1"] <= 100 and 0 <= line["pretrained_f1"] <= 100
            )
        elif script == "tune_search":
            assert line["trials_complete"] + line["trials_pruned"] == 2 and line["search_s"] > 0
            assert 0 <= line["best_accuracy"] <= 1 and line["best_params"].split(":")[0].isdigit()
        elif script == "serve":
            assert line["ratio"] > 0
        elif script == "launch_overhead":
            assert line["plain_wall_s"] > 0 and line["accelerate_ratio_wall"] > 0
    if script == "speed":
        assert all(line["targets"] and not line["targets"][0]["as_specified"] for line in lines)


def test_kill_resume_finishes_a_killed_run_equal_to_the_uninterrupted_one(tmp_path: Path) -> None:
    done = run_script("kill_resume", "--kills", "1", "--kills-per-run", "1", "--work-dir", str(tmp_path))
    summary = re.search(r"(\d+) kills over (\d+) runs; (\d+) of (\d+) finished runs equal", done.stdout)
    assert summary, done.stdout
    kills, runs, equal, finished = map(int, summary.groups())
    assert kills >= 1 and equal == finished == runs >= 1, done.stdout
