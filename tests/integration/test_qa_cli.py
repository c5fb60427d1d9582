"""Extractive QA end to end through the real CLI on tiny random BERTs.

SQuAD v1.1 JSON (gzipped) -> run folder, learning, predict/score/evaluate agreement; SQuAD v2.0
with a tuned null threshold reused by predict; the answer check's repairs and skips; a Korean
(KorQuAD-style) WordPiece model; and bad input exiting with code 2 and one `error:` line.
"""

from __future__ import annotations

import gzip
import html
import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from encoderkit.cli import main
from encoderkit.evaluation.squad_metrics import normalize_squad
from tests.conftest import build_tiny_bert, write_jsonl

WORDS = ["the", "film", "was", "good", "and", "the", "meal", "was", "bad", "so", "it", "is", "quite", "fine"]
QUESTIONS = ["what was it?", "is this a question?", "what is the answer?", "where is it?"]
ANSWERS = ("one two three", "four")
# 64-token windows: a 20-90 word context spans one to three of them.
WINDOW = ["--max-length", "64", "--doc-stride", "24", "--max-query-length", "16"]
FAST = ["--batch-size", "8", "--lr", "3e-3", "--eval-batch-size", "64", *WINDOW]
PREDICTION_KEYS = {"id", "answer", "score", "start", "end", "nbest"}


# --- data ------------------------------------------------------------------------------------------


def record(
    qid: str,
    rng: random.Random,
    answer: str | None,
    words: list[str] = WORDS,
    question: str | None = None,
    length: tuple[int, int] = (20, 90),
) -> dict[str, Any]:
    """A flat QA record: `length` filler words with `answer` inserted at a word boundary (None: no answer)."""
    filler = [rng.choice(words) for _ in range(rng.randint(*length))]
    cut = rng.randint(0, len(filler))
    before, after = " ".join(filler[:cut]), " ".join(filler[cut:])
    parts = [before, answer or "", after]
    context = " ".join(p for p in parts if p)
    start = len(before) + 1 if before else 0
    answers: dict[str, list[Any]] = {"text": [], "answer_start": []}
    if answer:
        assert context[start : start + len(answer)] == answer
        answers = {"text": [answer], "answer_start": [start]}
    question = question or rng.choice(QUESTIONS)
    return {"id": qid, "question": question, "context": context, "answers": answers}


def qa_records(n: int, seed: int, unanswerable_every: int = 0) -> list[dict[str, Any]]:
    """`n` records answered by "one two three" or "four"; every k-th has no answer phrase at all."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        no_answer = unanswerable_every and i % unanswerable_every == unanswerable_every - 1
        out.append(record(f"q{i}", rng, None if no_answer else ANSWERS[i % 2]))
    return out


def squad_doc(records: list[dict[str, Any]], version: str) -> dict[str, Any]:
    """Records as a SQuAD JSON document: one article, one paragraph per record."""
    paragraphs = []
    for r in records:
        answers = [
            {"text": t, "answer_start": s}
            for t, s in zip(r["answers"]["text"], r["answers"]["answer_start"], strict=True)
        ]
        qa: dict[str, Any] = {"id": r["id"], "question": r["question"], "answers": answers}
        if version.startswith("v2"):
            qa["is_impossible"] = not answers
        paragraphs.append({"context": r["context"], "qas": [qa]})
    return {"version": version, "data": [{"title": "toy", "paragraphs": paragraphs}]}


def write_squad(path: Path, records: list[dict[str, Any]], version: str = "1.1") -> Path:
    text = json.dumps(squad_doc(records, version), ensure_ascii=False, indent=1)
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode("utf-8")))
    else:
        path.write_text(text, encoding="utf-8")
    return path


def without_answers(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k != "answers"} for r in records]


# --- running and reading -----------------------------------------------------------------------------


def run_cli(*args: Any) -> int:
    return main([str(a) for a in args])


def train_qa(model: str, train: Path, output: Path, *extra: Any) -> None:
    args = ["train", "--task", "qa", "--model", model, "--train", train, "--output", output, *FAST, *extra]
    assert run_cli(*args) == 0


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def cli_json(capsys: pytest.CaptureFixture[str], *args: Any) -> dict[str, Any]:
    """Run a command that prints one JSON object and return it."""
    capsys.readouterr()
    assert run_cli(*args) == 0
    return json.loads(capsys.readouterr().out)


def data_row(report: str, key: str) -> str:
    """The value cell of `key` in the report's data table."""
    match = re.search(rf"<tr><td>{re.escape(html.escape(key))}</td><td>([^<]*)</td></tr>", report)
    assert match, f"no data row {key!r} in the report"
    return html.unescape(match.group(1))


def example_rows(report: str) -> list[tuple[str, str, str]]:
    """(mark, predicted, gold) of each row of the report's example-answers table, answers normalised."""
    table = re.search(r"<table id='qa-examples'>(.*?)</table>", report, re.S)
    assert table, "no example-answers table"
    cells = r"<tr><td>([✓✗])</td><td>[^<]*</td><td>([^<]*)</td><td>([^<]*)</td><td>[^<]*</td></tr>"
    found = re.findall(cells, table.group(1))
    return [(m, normalize_squad(html.unescape(p)), normalize_squad(html.unescape(g))) for m, p, g in found]


def predict(model_dir: Path, records: list[dict[str, Any]], folder: Path) -> tuple[list[dict], dict]:
    """`encoderkit predict` on answer-less JSONL: (JSONL rows, the --squad-predictions object)."""
    source = write_jsonl(folder / "questions.jsonl", without_answers(records))
    out, official = folder / "pred.jsonl", folder / "pred.json"
    args = ["predict", "--model", model_dir, "--input", source, "--output", out]
    assert run_cli(*args, "--squad-predictions", official) == 0
    return read_jsonl(out), read_json(official)


def check_offsets(rows: list[dict[str, Any]], records: list[dict[str, Any]]) -> None:
    """One row per question in input order; every answer and n-best span is the context at its offsets."""
    assert [r["id"] for r in rows] == [r["id"] for r in records]
    for row, rec in zip(rows, records, strict=True):
        assert set(row) == PREDICTION_KEYS
        context = rec["context"]
        if row["answer"]:
            assert context[row["start"] : row["end"]] == row["answer"], row
        for span in row["nbest"]:
            assert context[span["start"] : span["end"]] == span["text"], span
        scores = [span["score"] for span in row["nbest"]]
        assert scores == sorted(scores, reverse=True)


# --- SQuAD v1.1 ----------------------------------------------------------------------------------------

# One answer of 60 words cannot fit the ~45 context tokens of a 64-token window.
LONG_ANSWER = " ".join(["good", "bad"] * 30)


@pytest.fixture(scope="module")
def v1_records() -> list[dict[str, Any]]:
    records = qa_records(24, seed=11)
    rng = random.Random(12)
    context = " ".join(rng.choice(WORDS) for _ in range(10))
    long = {"id": "q-long", "question": "what was it?", "context": f"{context} {LONG_ANSWER} the end"}
    long["answers"] = {"text": [LONG_ANSWER], "answer_start": [len(context) + 1]}
    return [*records, long]


@pytest.fixture(scope="module")
def v1_files(v1_records: list[dict[str, Any]], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(train-v1.1.json.gz, dev-v1.1.json): the same questions, gzipped and plain."""
    folder = tmp_path_factory.mktemp("squad-v1")
    return (
        write_squad(folder / "train-v1.1.json.gz", v1_records),
        write_squad(folder / "dev-v1.1.json", v1_records),
    )


@pytest.fixture(scope="module")
def v1_run(tiny_model: str, v1_files: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    train, dev = v1_files
    out = tmp_path_factory.mktemp("qa-runs") / "v1"
    train_qa(tiny_model, train, out, "--eval", dev, "--epochs", "6")
    return out


def test_squad_v1_run_folder(v1_run: Path) -> None:
    for name in ("config.yaml", "metrics.json", "log.jsonl", "report.html", "model/model.safetensors"):
        assert (v1_run / name).is_file(), name
    assert not (v1_run / "checkpoints").exists()
    metrics = read_json(v1_run / "metrics.json")
    assert {"exact_match", "f1", "train_runtime_s", "trainable_params"} <= metrics.keys()
    assert 0 <= metrics["exact_match"] <= metrics["f1"] <= 100
    meta = read_json(v1_run / "model" / "encoderkit.json")
    assert meta["task"] == "qa" and meta["qa_metric"] == "squad"
    assert (meta["max_length"], meta["doc_stride"], meta["max_query_length"]) == (64, 24, 16)
    assert meta["n_best"] == 20 and meta["max_answer_length"] == 30
    assert meta["null_threshold"] is None
    config = read_json(v1_run / "model" / "config.json")
    assert config["architectures"] == ["BertForQuestionAnswering"]


def test_squad_v1_report_has_data_check_and_example_answers(v1_run: Path) -> None:
    report = (v1_run / "report.html").read_text(encoding="utf-8")
    assert data_row(report, "train questions") == "25"
    assert data_row(report, "answers lost to truncation") == "1"  # the 60-word answer
    assert data_row(report, "answers repaired (answer_start off)") == "0"
    assert data_row(report, "metric") == "squad"
    assert int(data_row(report, "train windows")) > 25, "long contexts give several windows"
    rows = example_rows(report)
    assert rows and any(mark == "✓" for mark, _, _ in rows)
    assert all((mark == "✓") == (pred == gold) for mark, pred, gold in rows), rows


def test_squad_v1_learns_and_keeps_the_best_checkpoint_by_f1(v1_run: Path) -> None:
    metrics = read_json(v1_run / "metrics.json")
    evals = [e for e in read_jsonl(v1_run / "log.jsonl") if "eval_f1" in e]
    assert [e["step"] for e in evals][:1] == [0], "the untrained model is evaluated first"
    evals = evals[1:]
    assert len(evals) == 6, "one evaluation per epoch"
    assert all(0 <= e["eval_exact_match"] <= e["eval_f1"] <= 100 for e in evals)
    best = max(e["eval_f1"] for e in evals)
    assert metrics["f1"] == pytest.approx(best)
    assert metrics["best_step"] == next(e["step"] for e in evals if e["eval_f1"] == best)
    assert metrics["f1"] >= 80, metrics
    losses = [e["loss"] for e in read_jsonl(v1_run / "log.jsonl") if "loss" in e]
    assert losses[-1] < 0.5 * losses[0]


def test_packed_training_learns_as_well_as_padded(
    tiny_model: str, v1_files: tuple[Path, Path], v1_run: Path, tmp_path: Path
) -> None:
    """`--unpad on`: the packed path with per-sequence attention (on CPU), the same run otherwise."""
    train, dev = v1_files
    train_qa(tiny_model, train, tmp_path / "packed", "--eval", dev, "--epochs", "6", "--unpad", "on")
    packed, padded = (read_json(d / "metrics.json") for d in (tmp_path / "packed", v1_run))
    assert packed["unpadded"] is True and padded["unpadded"] is False
    assert packed["f1"] >= 80 and abs(packed["f1"] - padded["f1"]) <= 10, (packed, padded)
    losses = [e["loss"] for e in read_jsonl(tmp_path / "packed" / "log.jsonl") if "loss" in e]
    assert losses[-1] < 0.5 * losses[0]


def test_predict_score_and_evaluate_agree_with_the_run(
    v1_run: Path,
    v1_records: list[dict[str, Any]],
    v1_files: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rows, official = predict(v1_run / "model", v1_records, tmp_path)
    check_offsets(rows, v1_records)
    assert all(r["answer"] and r["answer"] == r["nbest"][0]["text"] for r in rows), "v1 always answers"
    assert official == {r["id"]: r["answer"] for r in rows}
    dev = v1_files[1]
    scored = cli_json(
        capsys, "score", "--task", "squad", "--data", dev, "--predictions", tmp_path / "pred.json"
    )
    evaluated = cli_json(capsys, "evaluate", "--model", v1_run / "model", "--data", dev)
    metrics = read_json(v1_run / "metrics.json")
    assert evaluated["examples"] == len(v1_records) and evaluated["metric"] == "squad"
    for key in ("exact_match", "f1"):
        assert scored[key] == pytest.approx(metrics[key]), key
        assert evaluated[key] == pytest.approx(metrics[key]), key


# --- SQuAD v2.0 ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def v2_records() -> list[dict[str, Any]]:
    return qa_records(36, seed=21, unanswerable_every=3)  # 24 answerable, 12 without the phrase


@pytest.fixture(scope="module")
def v2_run(
    tiny_model: str, v2_records: list[dict[str, Any]], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("squad-v2")
    data = write_squad(folder / "train-v2.0.json", v2_records, version="v2.0")
    train_qa(tiny_model, data, folder / "run", "--eval", data, "--epochs", "4")
    return folder / "run", data


def test_squad_v2_metrics_and_saved_null_threshold(v2_run: tuple[Path, Path]) -> None:
    run, _ = v2_run
    metrics = read_json(run / "metrics.json")
    keys = {"exact_match", "f1", "HasAns_f1", "NoAns_f1", "HasAns_exact", "NoAns_exact", "best_f1"}
    assert keys | {"best_f1_thresh"} <= metrics.keys()
    assert (metrics["HasAns_total"], metrics["NoAns_total"]) == (24, 12)
    meta = read_json(run / "model" / "encoderkit.json")
    assert meta["qa_metric"] == "squad_v2"
    assert isinstance(meta["null_threshold"], float)
    assert meta["null_threshold"] == metrics["best_f1_thresh"]
    # exact_match/f1 are reported at the tuned threshold, so they are the sweep's best.
    assert metrics["f1"] == pytest.approx(metrics["best_f1"])
    assert metrics["f1"] >= 80 and metrics["NoAns_f1"] >= 50, metrics


def test_squad_v2_report_shows_the_answers_that_were_scored(v2_run: tuple[Path, Path]) -> None:
    run, _ = v2_run
    metrics = read_json(run / "metrics.json")
    rows = example_rows((run / "report.html").read_text(encoding="utf-8"))
    # A no-answer question is right when the prediction, after the saved threshold, is "".
    assert rows and all((mark == "✓") == (pred == gold) for mark, pred, gold in rows), rows
    wrong = round(metrics["total"] * (100 - metrics["exact_match"]) / 100)
    assert sum(mark == "✗" for mark, _, _ in rows) == min(6, wrong), (rows, metrics["exact_match"])
    assert any(gold == "" and mark == "✓" for mark, _, gold in rows), "no right no-answer row"


def test_v1_metric_on_eval_data_with_unanswerable_questions_fails_before_training(
    tiny_model: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_squad(tmp_path / "v2.json", qa_records(6, seed=22, unanswerable_every=3), version="v2.0")
    out = tmp_path / "run"
    args = ["train", "--task", "qa", "--model", tiny_model, "--train", data, "--eval", data]
    assert run_cli(*args, "--output", out, *FAST, "--qa-metric", "squad") == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"{data}: question 'q2'" in errors[0], errors
    assert not out.exists(), "the metric must be checked before the run folder is created"


def test_squad_v2_predict_applies_the_saved_threshold(
    v2_run: tuple[Path, Path],
    v2_records: list[dict[str, Any]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run, data = v2_run
    threshold = read_json(run / "model" / "encoderkit.json")["null_threshold"]
    rows, official = predict(run / "model", v2_records, tmp_path)
    check_offsets(rows, v2_records)
    empty = [r for r in rows if r["answer"] == ""]
    assert empty, "the model answers no question with 'no answer'"
    for r in empty:
        assert (r["start"], r["end"]) == (-1, -1)
        # an empty answer's score is the null score; it beats the best span by more than the threshold
        assert r["score"] - r["nbest"][0]["score"] > threshold - 1e-3, r
    assert official == {r["id"]: r["answer"] for r in rows}
    metrics = read_json(run / "metrics.json")
    pred = tmp_path / "pred.json"
    scored = cli_json(capsys, "score", "--task", "squad_v2", "--data", data, "--predictions", pred)
    evaluated = cli_json(capsys, "evaluate", "--model", run / "model", "--data", data)
    for key in ("exact_match", "f1", "HasAns_f1", "NoAns_f1"):
        assert scored[key] == pytest.approx(metrics[key]), key
        assert evaluated[key] == pytest.approx(metrics[key]), key


# --- the answer check --------------------------------------------------------------------------------


def test_answer_check_repairs_and_skips_and_reports_both(
    tiny_model: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = qa_records(12, seed=31)
    shifted = records[0]
    shifted["answers"]["answer_start"] = [shifted["answers"]["answer_start"][0] + 7]  # text 7 chars earlier
    records[1]["answers"] = {"text": ["seven eight"], "answer_start": [3]}  # nowhere in the context
    train = write_jsonl(tmp_path / "train.jsonl", records)
    train_qa(tiny_model, train, tmp_path / "run", "--epochs", "1")
    stdout = capsys.readouterr().out
    assert re.search(r"answers repaired \(answer_start off\)\s+1\n", stdout), stdout
    assert re.search(r"answers skipped \(text not in context\)\s+1\n", stdout), stdout
    assert (tmp_path / "run" / "metrics.json").is_file()
    report = (tmp_path / "run" / "report.html").read_text(encoding="utf-8")
    assert data_row(report, "train questions") == "12"
    assert data_row(report, "answers repaired (answer_start off)") == "1"
    assert data_row(report, "answers skipped (text not in context)") == "1"
    warning = html.escape("question 'q1' (line 2): answer 'seven eight' does not occur in the context")
    assert warning in report
    assert html.escape("question 'q1' (line 2): no valid answer left; question removed") in report


# --- KorQuAD-style: Korean WordPiece --------------------------------------------------------------------

CITIES = ["서울", "부산", "대구", "광주"]
KOREAN_WORDS = ["오늘은", "날씨가", "좋아서", "우리는", "공원에", "갔다", "친구와", "함께"]
KOREAN_WORDS += ["점심을", "먹었고", "정말", "즐거운", "하루였다"]
KOREAN_QUESTION = "회의는 어디에서 열렸나요?"


def build_korean_model(folder: Path) -> str:
    """A tiny random BERT with a WordPiece vocabulary trained on Korean (as KLUE BERT: no lower-casing)."""
    corpus = [" ".join(KOREAN_WORDS), KOREAN_QUESTION, "그 도시는 어디인가요?", "회의는 서울에서 열렸다"]
    corpus += [f"{city}{particle}" for city in CITIES for particle in ("에서", "은", "으로", "의", "")]
    # ~120 entries: cities and particles become separate pieces (서울 ##에서), as in KLUE BERT.
    return str(build_tiny_bert(folder, corpus, vocab_size=120, lowercase=False))


def korean_records(n: int, seed: int) -> list[dict[str, Any]]:
    """The answer is a city inside "회의는 <city>에서 열렸다": a particle is glued to it."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        city = CITIES[i % len(CITIES)]
        r = record(f"ko{i}", rng, f"회의는 {city}에서 열렸다", KOREAN_WORDS, KOREAN_QUESTION, (8, 30))
        sentence_start = r["answers"]["answer_start"][0]
        r["answers"] = {"text": [city], "answer_start": [sentence_start + len("회의는 ")]}
        out.append(r)
    return out


def test_korquad_style_korean_training_and_prediction(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = build_korean_model(tmp_path / "ko-bert")
    records = korean_records(24, seed=41)
    data = write_squad(tmp_path / "korquad.json", records)
    run = tmp_path / "run"
    train_qa(model, data, run, "--eval", data, "--epochs", "4", "--qa-metric", "korquad")
    metrics = read_json(run / "metrics.json")
    assert {"exact_match", "f1"} <= metrics.keys() and "HasAns_f1" not in metrics
    assert 0 <= metrics["exact_match"] <= metrics["f1"] <= 100
    assert metrics["f1"] >= 60, metrics  # character F1: "서울에서" for "서울" still scores 67
    assert read_json(run / "model" / "encoderkit.json")["qa_metric"] == "korquad"
    rows, _ = predict(run / "model", records, tmp_path)
    check_offsets(rows, records)
    assert all(r["answer"] for r in rows)
    assert any(r["answer"] in CITIES for r in rows), [r["answer"] for r in rows]
    pred = tmp_path / "pred.json"
    scored = cli_json(capsys, "score", "--task", "korquad", "--data", data, "--predictions", pred)
    assert scored["f1"] == pytest.approx(metrics["f1"])
    assert scored["exact_match"] == pytest.approx(metrics["exact_match"])


# --- bad input through the real command -----------------------------------------------------------------


def _good_qas(n: int = 3) -> list[dict[str, Any]]:
    return [
        {"id": f"q{i}", "question": "what was it?", "answers": [{"text": "four", "answer_start": 9}]}
        for i in range(n)
    ]


def _doc(qas: list[dict[str, Any]], context: str = "the film four was good") -> dict[str, Any]:
    return {"version": "1.1", "data": [{"title": "t", "paragraphs": [{"context": context, "qas": qas}]}]}


def _malformed(path: Path) -> None:
    path.write_text('{"version": "1.1",\n "data": [\n  {"title": "t" "paragraphs": []}\n ]\n}\n')


def _write_doc(doc: dict[str, Any]) -> Any:
    return lambda path: path.write_text(json.dumps(doc, indent=1), encoding="utf-8")


NO_ID = _good_qas()
del NO_ID[1]["id"]
ALL_BAD = _good_qas()
for _qa in ALL_BAD:
    _qa["answers"] = [{"text": "seven", "answer_start": 0}]

# name -> (writes train.json, a fragment the error line must hold)
BAD_INPUTS = {
    "malformed-json": (_malformed, "train.json:3: not valid JSON"),
    "question-without-id": (_write_doc(_doc(NO_ID)), "train.json: data[0].paragraphs[0].qas[1].id: missing"),
    "duplicate-ids": (_write_doc(_doc([*_good_qas(), _good_qas(1)[0]])), "qas[3].id: duplicate id 'q0'"),
    "empty-context": (_write_doc(_doc(_good_qas(), context="  ")), "paragraphs[0].context: empty"),
    "every-answer-bad": (_write_doc(_doc(ALL_BAD)), "train.json: no usable training questions"),
}


@pytest.fixture(scope="module")
def bad_input_runs(
    tiny_model: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[Path, subprocess.CompletedProcess[str]]]:
    """Every case of BAD_INPUTS as `python -m encoderkit train`, started at once (~4 s of imports each)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    procs = {}
    for name, (write, _) in BAD_INPUTS.items():
        folder = tmp_path_factory.mktemp(name)
        write(folder / "train.json")
        out = folder / "run"
        cmd = [sys.executable, "-m", "encoderkit", "train", "--task", "qa", "--model", tiny_model]
        cmd += ["--train", str(folder / "train.json"), "--output", str(out), *FAST, "--max-steps", "1"]
        procs[name] = (
            out,
            cmd,
            subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
        )
    results = {}
    for name, (out, cmd, proc) in procs.items():
        stdout, stderr = proc.communicate(timeout=300)
        results[name] = (out, subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr))
    return results


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_qa_input_exits_2_with_one_error_line(
    case: str, bad_input_runs: dict[str, tuple[Path, subprocess.CompletedProcess[str]]]
) -> None:
    out, proc = bad_input_runs[case]
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    assert BAD_INPUTS[case][1] in errors[0], errors[0]
    assert not (out / "metrics.json").exists()
    assert not out.exists(), "input is checked before the run folder is created"
