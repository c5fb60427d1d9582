"""The bad-input corpus through the real CLI in a subprocess: exit code 2, one `error:` line that
names the file (and line) or the field, no traceback, and no run folder that looks finished.

Each process spends seconds importing torch and transformers, so the module fixture starts all
cases at once (one per core) and the tests only inspect their outcomes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import sentiment_rows, write_jsonl


@dataclass
class Case:
    argv: list[str]
    expected: list[str]  # substrings of the error line: the file(:line) or field, and what is wrong
    output: Path | None = None  # the --output of the case, checked for a finished-looking run


def train(tiny: str, data: Path | str, out: Path, *extra: str) -> list[str]:
    fast = ["--batch-size", "8", "--epochs", "1", "--eval-batch-size", "16"]
    return ["train", "--model", tiny, "--train", str(data), "--output", str(out), *fast, *extra]


def lines(path: Path, *rows: str) -> Path:
    path.write_text("".join(r + "\n" for r in rows), encoding="utf-8")
    return path


def row(text: str, label: object) -> str:
    return json.dumps({"text": text, "label": label})


def build_cases(d: Path, tiny: str) -> dict[str, Case]:
    """Write every bad file under `d`; return the cases by id."""
    good = write_jsonl(d / "good.jsonl", sentiment_rows(16, seed=11))
    cases: dict[str, Case] = {}

    def train_case(name: str, data: Path, expected: list[str], *extra: str, model: str = tiny) -> None:
        output = d / "out" / name
        cases[name] = Case(train(model, data, output, *extra), expected, output)

    missing = d / "missing.jsonl"
    train_case("missing_train", missing, [f"{missing}: ", "not found"])

    bad_json = lines(
        d / "bad.jsonl", row("good film", "pos"), row("bad film", "neg"), '{"text": "x", label: 1}'
    )
    train_case("bad_json_line_3", bad_json, [f"{bad_json}:3: ", "JSON"])

    tabs = lines(d / "tabs.csv", "text\tlabel", "good film\tpos", "bad film\tneg", "fine film\tpos")
    train_case("csv_with_tabs", tabs, [f"{tabs}: ", "delimiter"])

    short = lines(
        d / "short.tsv", "sentence\tlabel", "good film\tpos", "bad film\tneg", "no label", "ok\tpos"
    )
    train_case("tsv_field_count_line_4", short, [f"{short}:4: ", "fields"])

    train_case(
        "misspelled_label_column", good, [f"{good}: ", "'lable'", "did you mean"], "--label-column", "lable"
    )

    empty = lines(d / "empty_text.jsonl", row("good film", "pos"), row("  ", "neg"), row("bad film", "neg"))
    train_case("empty_text_line_2", empty, [f"{empty}:2: ", "empty text"])

    dev = lines(d / "dev.jsonl", row("good film", "positive"), row("bad", "negative"), row("meh", "neutral"))
    train_case("eval_label_unseen", good, [f"{dev}:3: ", "'neutral'", "training data"], "--eval", str(dev))

    scores = lines(d / "scores.jsonl", row("good film", 4.5), row("bad film", "high"), row("ok film", 2.0))
    train_case(
        "regression_target_not_a_number", scores, [f"{scores}:2: ", "not a number"], "--task", "regression"
    )

    no_model = "no-such-org/no-such-model"
    train_case("unknown_model_offline", good, [f"'{no_model}'"], model=no_model)

    latin1 = d / "latin1.jsonl"
    latin1.write_bytes(
        f"{row('good film', 'pos')}\n{row('bad', 'neg')}\n".encode() + b'{"text": "caf\xe9"}\n'
    )
    train_case("bad_utf8_line_3", latin1, [f"{latin1}:3: ", "UTF-8"])

    train_case("batch_size_0", good, ["'batch_size'", "> 0"], "--batch-size", "0")
    # The toy rows are 6-16 tokens long: a budget of 6 cannot hold the longest.
    train_case("batch_tokens_below_longest", good, ["'batch_tokens'", "longest"], "--batch-tokens", "6")
    train_case("unknown_flag", good, ["--learning-rate"], "--learning-rate", "0.1")

    config = lines(d / "run.yaml", f"train: {good}", "epochs: 1", "bogus_field: 3")
    output = d / "out" / "config_unknown_field"
    cases["config_unknown_field"] = Case(
        ["train", "--config", str(config), "--output", str(output)], [f"{config}: ", "'bogus_field'"], output
    )

    finished = d / "out" / "finished_run_without_overwrite"
    train_case(finished.name, good, [f"{finished}: ", "finished run", "--overwrite"])
    resume = d / "out" / "resume_without_checkpoint"
    train_case(resume.name, good, [f"{resume}: ", "no checkpoint"], "--resume")

    cases["predict_with_a_plain_model_folder"] = Case(
        ["predict", "--model", tiny, "--input", str(good), "--output", str(d / "predictions.jsonl")],
        [f"{tiny}: ", "not an encoderkit model"],
    )

    paragraph = {"context": "Denver won.", "qas": [{"id": "q1", "question": "Who won?", "answers": []}]}
    gold = d / "gold.json"
    gold.write_text(json.dumps({"version": "1.1", "data": [{"title": "t", "paragraphs": [paragraph]}]}))
    pred = lines(d / "pred.json", '{"q1": "Denver"', '"q2": "x"}')  # a comma missing at the end of line 1
    cases["score_predictions_not_json"] = Case(
        ["score", "--task", "squad", "--data", str(gold), "--predictions", str(pred)], [f"{pred}:2: ", "JSON"]
    )
    return cases


def prepare_finished_run(folder: Path) -> None:
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text('{"accuracy": 0.9}\n')
    (folder / "config.yaml").write_text("task: classification\n")


def run(case: Case, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "encoderkit", *case.argv]
    return subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=240)


@pytest.fixture(scope="module")
def outcomes(
    tiny_model: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[Case, subprocess.CompletedProcess[str]]]:
    d = tmp_path_factory.mktemp("bad-input")
    cases = build_cases(d, tiny_model)
    prepare_finished_run(cases["finished_run_without_overwrite"].output)  # type: ignore[arg-type]
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        futures = {name: pool.submit(run, case, d) for name, case in cases.items()}
        return {name: (cases[name], f.result()) for name, f in futures.items()}


CASE_IDS = [
    "missing_train",
    "bad_json_line_3",
    "csv_with_tabs",
    "tsv_field_count_line_4",
    "misspelled_label_column",
    "empty_text_line_2",
    "eval_label_unseen",
    "regression_target_not_a_number",
    "unknown_model_offline",
    "bad_utf8_line_3",
    "batch_size_0",
    "batch_tokens_below_longest",
    "unknown_flag",
    "config_unknown_field",
    "finished_run_without_overwrite",
    "resume_without_checkpoint",
    "predict_with_a_plain_model_folder",
    "score_predictions_not_json",
]


def test_the_corpus_is_complete(outcomes: dict) -> None:
    assert sorted(outcomes) == sorted(CASE_IDS)


@pytest.mark.parametrize("name", CASE_IDS)
def test_bad_input_is_one_error_line_and_exit_2(
    name: str, outcomes: dict[str, tuple[Case, subprocess.CompletedProcess[str]]]
) -> None:
    case, proc = outcomes[name]
    stderr = proc.stderr.strip()
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 2, proc.stderr
    assert len(stderr.splitlines()) == 1, stderr
    assert stderr.startswith("error: "), stderr
    for part in case.expected:
        assert part in stderr, f"{part!r} not in {stderr!r}"
    if case.output is not None and name != "finished_run_without_overwrite":
        assert not (case.output / "metrics.json").exists(), "a failed run must not look finished"


def test_finished_run_is_left_untouched(
    outcomes: dict[str, tuple[Case, subprocess.CompletedProcess[str]]],
) -> None:
    case, _ = outcomes["finished_run_without_overwrite"]
    assert case.output is not None
    assert (case.output / "metrics.json").read_text() == '{"accuracy": 0.9}\n'
    assert sorted(p.name for p in case.output.iterdir()) == ["config.yaml", "metrics.json"]


def test_failed_runs_leave_no_run_folder(
    outcomes: dict[str, tuple[Case, subprocess.CompletedProcess[str]]],
) -> None:
    # Everything is checked before the run folder is created.
    outputs = {name: case.output for name, (case, _) in outcomes.items() if case.output is not None}
    made = [
        name for name, out in outputs.items() if name != "finished_run_without_overwrite" and out.exists()
    ]
    assert made == []


def test_predict_and_score_write_nothing(
    outcomes: dict[str, tuple[Case, subprocess.CompletedProcess[str]]],
) -> None:
    case, _ = outcomes["predict_with_a_plain_model_folder"]
    assert not Path(case.argv[case.argv.index("--output") + 1]).exists()


def test_a_mistyped_flag_gets_the_close_one_and_its_subcommand_help_before_torch_loads() -> None:
    """`train --ephocs 2` names `--epochs` and `encoderkit train --help`, from the parser alone:
    torch and transformers are not imported yet, so the answer is immediate."""
    probe = (
        "import sys\nfrom encoderkit.cli import main\n"
        "try:\n    main(['train', '--ephocs', '2'])\nexcept SystemExit as exc:\n    code = exc.code\n"
        "missing = main(['train'])\n"  # a config error: every missing field, also before torch
        "print(code, missing, 'torch' in sys.modules, 'transformers' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["2", "2", "False", "False"], done.stdout + done.stderr
    mistyped = (
        "error: unrecognized arguments: --ephocs 2; did you mean --epochs? (see `encoderkit train --help`)"
    )
    missing = "error: fields 'train' and 'output': required (--train PATH, --output DIR)"
    assert done.stderr.strip().splitlines() == [mistyped, missing]
