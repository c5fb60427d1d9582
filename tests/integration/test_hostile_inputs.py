"""The hostile-input corpus (tests/data/bad_inputs/manifest.json) through the CLI.

Every case runs in-process through `encoderkit.cli.main` (a subprocess spends seconds importing
torch, and there are over a hundred cases) and must end, within a time limit, in exit 2 with
exactly one stderr line `error: <file>:<line>: ...` and nothing left that looks like a result,
or in exit 0 where the corpus says the input is accepted or its bad answers are skipped and
counted. A few cases that used to crash also run as real subprocesses, proving that no traceback
reaches the real stderr and that a 50 MB line is refused in bounded memory.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from encoderkit.cli import main
from tests.conftest import sentiment_rows, write_jsonl

CORPUS = Path(__file__).resolve().parents[1] / "data" / "bad_inputs"
MANIFEST = json.loads((CORPUS / "manifest.json").read_text(encoding="utf-8"))
CASES: list[dict[str, Any]] = MANIFEST["cases"]
CASE_IDS = [f"{c['run']}:{c['file'].removeprefix('generated/')}" for c in CASES]
CASE_SECONDS = 60  # per case; the slowest (50 MB lines) take a few seconds

FAST = ["--batch-size", "8", "--epochs", "1", "--max-steps", "1"]
QA_WINDOW = ["--max-length", "64", "--doc-stride", "24", "--max-query-length", "16"]
TRAIN = ["train", "--model", "{tiny}", "--output", "{out}", *FAST]
RUNS: dict[str, list[str]] = {
    "train": [*TRAIN, "--train", "{file}"],
    "train-eval": [*TRAIN, "--train", "{good}", "--eval", "{file}"],
    "train-regression": [*TRAIN, "--task", "regression", "--train", "{file}"],
    "train-qa": [*TRAIN, "--task", "qa", "--train", "{file}", *QA_WINDOW],
    "predict": ["predict", "--model", "{classifier}", "--input", "{file}", "--output", "{out}"],
    "predict-qa": ["predict", "--model", "{reader}", "--input", "{file}", "--output", "{out}"],
    "evaluate": ["evaluate", "--model", "{classifier}", "--data", "{file}"],
    "evaluate-qa": ["evaluate", "--model", "{reader}", "--data", "{file}"],
    "lengths": ["lengths", "--model", "{tiny}", "--data", "{file}"],
    "lengths-text-column": ["lengths", "--model", "{tiny}", "--data", "{file}", "--text-column", "txt"],
    "score": ["score", "--task", "squad", "--data", "{file}", "--predictions", "{predictions}"],
    "score-predictions": ["score", "--task", "squad", "--data", "{gold}", "--predictions", "{file}"],
    "score-na-probs": [
        *["score", "--task", "squad_v2", "--data", "{gold}", "--predictions", "{predictions}", "--na-probs"],
        "{file}",
    ],
}


# --- files written at test time (too big, or not files at all) ---------------------------------------

HUGE = 50 * 1024 * 1024  # characters in the enormous line / cell
DEEP = 100_000  # nesting levels


def _huge_text(path: Path) -> None:
    rows = [
        {"text": "good film", "label": "positive"},
        {"text": "good film " * (HUGE // 10), "label": "negative"},
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


def _huge_cell(path: Path) -> None:
    path.write_text(f"text,label\ngood film,positive\n{'x' * HUGE},negative\n", encoding="utf-8")


def _huge_context(path: Path) -> None:
    path.write_text(json.dumps({"id": "q1", "question": "what?", "context": "four " * 400_000}) + "\n")


def _huge_question(path: Path) -> None:
    qa = {"id": "q1", "question": "what " * 400_000, "answers": []}
    doc = {"data": [{"title": "t", "paragraphs": [{"context": "the film four was good", "qas": [qa]}]}]}
    path.write_text(json.dumps(doc), encoding="utf-8")


def _gzip_bomb(path: Path) -> None:
    # 64 MiB of spaces in ~64 KiB; the case lowers the cap to 16 MiB (the real one is 2 GiB).
    with gzip.open(path, "wb") as f:
        for _ in range(64):
            f.write(b" " * 1024**2)


def _deep(prefix: str, opener: str, closer: str, suffix: str) -> Callable[[Path], None]:
    return lambda path: path.write_text(prefix + opener * DEEP + closer * DEEP + suffix, encoding="utf-8")


GOOD_ROW = json.dumps({"text": "good film", "label": "positive"}) + "\n"
GENERATED: dict[str, Callable[[Path], None]] = {
    "huge_text_line_2.jsonl": _huge_text,
    "huge_cell_line_3.csv": _huge_cell,
    "huge_context_line_1.jsonl": _huge_context,
    "huge_question.json": _huge_question,
    "gzip_bomb.jsonl.gz": _gzip_bomb,
    "deep_array.json": _deep("", "[", "]", ""),
    "deep_line_2.jsonl": _deep(GOOD_ROW + '{"text": ', "[", "]", ', "label": "negative"}\n'),
    "deep_squad.json": _deep('{"data": ', "[", "]", "}"),
    "deep_squad_line_1.jsonl": _deep('{"id": "q1", "question": "what?", "context": ', '{"a": ', "}", "}\n"),
    "deep_predictions.json": _deep('{"q1": ', "[", "]", "}"),
    "folder.jsonl": lambda path: path.mkdir(),
    "folder.json": lambda path: path.mkdir(),
    "folder_predictions.json": lambda path: path.mkdir(),
    "missing.csv": lambda path: None,
}


# --- fixtures ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("generated-bad-inputs")
    for name, write in GENERATED.items():
        write(folder / name)
    return folder


def _qa_record(i: int) -> dict[str, Any]:
    context = f"the film was good and the answer is four {i} so it was fine"
    answer = {"text": ["four"], "answer_start": [context.index("four")]}
    return {"id": f"q{i}", "question": "what is the answer?", "context": context, "answers": answer}


@pytest.fixture(scope="module")
def models(tiny_model: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A classifier and a QA reader trained for one step: what predict and evaluate need."""
    d = tmp_path_factory.mktemp("hostile-models")
    good = write_jsonl(d / "good.jsonl", sentiment_rows(16, seed=5))
    qa = write_jsonl(d / "qa.jsonl", [_qa_record(i) for i in range(8)])
    predictions = d / "predictions.json"
    predictions.write_text(json.dumps({"q1": "four", "q2": "film"}), encoding="utf-8")
    runs = {"classifier": ("classification", good, []), "reader": ("qa", qa, QA_WINDOW)}
    for name, (task, data, extra) in runs.items():
        argv = [
            "train",
            "--task",
            task,
            "--model",
            tiny_model,
            "--train",
            str(data),
            "--output",
            str(d / name),
        ]
        assert main([*argv, *FAST, *extra]) == 0
    return {
        "tiny": tiny_model,
        "good": str(good),
        "classifier": str(d / "classifier" / "model"),
        "reader": str(d / "reader" / "model"),
        "gold": str(CORPUS / "gold.json"),
        "predictions": str(predictions),
    }


class CaseTimeout(Exception):
    pass


@contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    """Fail a case that runs too long (a hang) instead of blocking the suite."""

    def expire(signum: int, frame: Any) -> None:
        raise CaseTimeout(f"no result after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str
    path: str  # the input file as given on the command line
    out: Path  # the run folder / predictions file the command was told to write


def input_path(file: str, generated: Path) -> str:
    """A manifest `file`: under the corpus folder, or `generated/...` under this run's folder."""
    return str(
        generated / file.removeprefix("generated/") if file.startswith("generated/") else CORPUS / file
    )


def argv_of(run: str, path: str, out: Path, paths: dict[str, str]) -> list[str]:
    return [arg.format(file=path, out=out, **paths) for arg in RUNS[run]]


def run_case(case: dict[str, Any], paths: dict[str, str], generated: Path, out: Path, capsys: Any) -> Outcome:
    path = input_path(case["file"], generated)
    argv = argv_of(case["run"], path, out, paths)
    capsys.readouterr()
    with time_limit(CASE_SECONDS):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse usage errors exit instead of returning
            code = int(exc.code or 0)
    captured = capsys.readouterr()
    return Outcome(code, captured.out, captured.err, path, out)


def _assert_one_error_line(outcome: Outcome, expected: str) -> None:
    assert "Traceback" not in outcome.stderr, outcome.stderr
    assert outcome.code == 2, outcome.stderr
    lines = outcome.stderr.strip().splitlines()
    assert len(lines) == 1, outcome.stderr
    # The message starts with the file (as given), then `:line` or the JSON field, then what is wrong.
    assert lines[0].startswith(f"error: {outcome.path}{expected}"), lines[0]
    assert len(lines[0]) < 500, "an error line quotes bad input briefly"
    assert not (outcome.out / "metrics.json").exists(), "a failed run must not look finished"
    assert not outcome.out.exists(), "bad input is refused before anything is written"


# --- the corpus --------------------------------------------------------------------------------------


def test_every_corpus_file_is_in_the_manifest() -> None:
    listed = {c["file"] for c in CASES} | {"manifest.json", "gold.json"}
    assert sorted(p.name for p in CORPUS.iterdir() if p.name not in listed) == []
    assert {c["file"].removeprefix("generated/") for c in CASES if c["file"].startswith("generated/")} == set(
        GENERATED
    )
    assert all(c["run"] in RUNS for c in CASES)
    assert all(("error" in c) + ("skipped" in c) + ("accepted" in c) == 1 for c in CASES)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_hostile_input(
    case: dict[str, Any],
    models: dict[str, str],
    generated: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if "max_gunzipped_bytes" in case:
        monkeypatch.setattr("encoderkit.data.files.MAX_GUNZIPPED_BYTES", case["max_gunzipped_bytes"])
    outcome = run_case(case, models, generated, tmp_path / "out", capsys)
    if "error" in case:
        _assert_one_error_line(outcome, case["error"])
    elif "skipped" in case:
        assert outcome.code == 0, outcome.stderr
        pattern = rf"answers skipped \(text not in context\)\s+{case['skipped']}\n"
        assert re.search(pattern, outcome.stdout), outcome.stdout
        assert (outcome.out / "metrics.json").is_file()
    else:
        assert outcome.code == 0, outcome.stderr
        assert "error:" not in outcome.stderr


def test_predict_writes_formula_looking_cells_back_as_json_strings(
    models: dict[str, str], tmp_path: Path
) -> None:
    # CSV injection: cells starting with = + - @ are text. Nothing evaluates them, and the output is
    # JSONL, where they stay quoted strings that a spreadsheet import does not take for formulas.
    out = tmp_path / "predictions.jsonl"
    assert main(argv_of("predict", str(CORPUS / "csv_injection.csv"), out, models)) == 0
    lines = out.read_text(encoding="utf-8").splitlines()
    ids = ["=cmd|' /C calc'!A0", "@SUM(1+1)*cmd|' /C calc'!A0", "-2+3"]
    assert [json.loads(line)["id"] for line in lines] == ids
    assert all(line.startswith('{"id": "') for line in lines)


# --- a few through a real process -----------------------------------------------------------------------

SUBPROCESS_CASES = {
    # name -> (run, file). Before the fixes the first took minutes and ~7.7 GB, the second crashed
    # with a RecursionError traceback. Two only: each process spends seconds importing torch.
    "huge_text_line_2.jsonl": ("train", "generated/huge_text_line_2.jsonl"),
    "deep_squad.json": ("train-qa", "generated/deep_squad.json"),
}
MAX_RSS_BYTES = 2 * 1024**3  # ~0.7 GB measured for the 50 MB line; tokenizing it would need ~10 GB


@dataclass
class ProcessOutcome:
    outcome: Outcome
    max_rss_bytes: int


def _run_process(argv: list[str], path: str, out: Path, log: Path) -> ProcessOutcome:
    """`python -m encoderkit argv` with its own peak memory (os.wait4), killed after 240 s."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    with open(log.with_suffix(".out"), "w+") as stdout, open(log.with_suffix(".err"), "w+") as stderr:
        command = [sys.executable, "-m", "encoderkit", *argv]
        proc = subprocess.Popen(command, env=env, stdout=stdout, stderr=stderr)
        timer = threading.Timer(240, proc.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: keep Popen from waiting again
        stdout.seek(0)
        stderr.seek(0)
        outcome = Outcome(proc.returncode, stdout.read(), stderr.read(), path, out)
    return ProcessOutcome(outcome, usage.ru_maxrss * 1024)  # Linux reports KiB


@pytest.fixture(scope="module")
def processes(
    models: dict[str, str], generated: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, ProcessOutcome]:
    from concurrent.futures import ThreadPoolExecutor

    d = tmp_path_factory.mktemp("hostile-processes")
    jobs = {}
    for name, (run, file) in SUBPROCESS_CASES.items():
        path, out = input_path(file, generated), d / f"out-{name}"
        jobs[name] = (argv_of(run, path, out, models), path, out, d / name)
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        futures = {name: pool.submit(_run_process, *job) for name, job in jobs.items()}
        return {name: f.result() for name, f in futures.items()}


@pytest.mark.parametrize("name", list(SUBPROCESS_CASES))
def test_real_process_prints_one_error_line_and_no_traceback(
    name: str, processes: dict[str, ProcessOutcome]
) -> None:
    file = SUBPROCESS_CASES[name][1]
    [case] = [c for c in CASES if c["file"] == file and c["run"] == SUBPROCESS_CASES[name][0]]
    _assert_one_error_line(processes[name].outcome, case["error"])


def test_fifty_megabyte_line_is_refused_in_bounded_memory(processes: dict[str, ProcessOutcome]) -> None:
    assert processes["huge_text_line_2.jsonl"].max_rss_bytes < MAX_RSS_BYTES
