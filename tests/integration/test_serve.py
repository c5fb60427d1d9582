"""`encoderkit serve` end to end over HTTP on 127.0.0.1 with tiny models: answers equal `encoderkit predict`.

Three servers run for the whole module (QA with a bearer token, classification, fill-mask), each
in a thread on a free port. Bad requests (malformed, oversized, unknown fields, path-like input,
wrong token) get a 4xx with one clear `error`, concurrent requests are micro-batched and answered
right, and after all of it a valid request still gets the right answer. The browser test starts
the real command and drives the page in headless Chromium.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from encoderkit.cli import main
from encoderkit.inference.predictor import Predictor
from encoderkit.serving.app import create_app
from encoderkit.serving.settings import ServeSettings
from tests.conftest import sentiment_rows, write_jsonl
from tests.integration.test_qa_cli import predict, qa_records, read_jsonl, train_qa, write_squad

TOKEN = "test-token-1234"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# Small limits so the tests can cross them cheaply; a long batch wait so concurrent requests meet.
LIMITED = ServeSettings(max_inputs=8, max_chars=4000, max_body_bytes=64 * 1024, batch_wait_ms=30.0)
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("ENCODERKIT_TEST_ARTIFACTS", REPO / "build" / "test-artifacts"))


@contextmanager
def running(app: Any) -> Iterator[str]:
    """Serve `app` with uvicorn in a thread on a free loopback port; yield its base URL."""
    import uvicorn

    from encoderkit.serving.server import bind

    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def post(url: str, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(f"{url}/v1/predict", json=body, headers=headers, timeout=30)


def error_of(response: httpx.Response) -> str:
    """The one-line `error` of a 4xx answer; no traceback leaks to the client."""
    body = response.json()
    assert set(body) == {"error"} and isinstance(body["error"], str), body
    assert "Traceback" not in body["error"] and "\n" not in body["error"]
    return body["error"]


# --- models and servers ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def qa_data(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return qa_records(16, seed=51)  # 20-90 word contexts: one to three 64-token windows each


@pytest.fixture(scope="module")
def qa_model(
    tiny_model: str, qa_data: list[dict[str, Any]], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    folder = tmp_path_factory.mktemp("serve-qa")
    train_qa(tiny_model, write_squad(folder / "train.json", qa_data), folder / "run", "--max-steps", "6")
    return folder / "run" / "model"


@pytest.fixture(scope="module")
def expected(qa_model: Path, qa_data: list[dict[str, Any]], tmp_path_factory: pytest.TempPathFactory) -> dict:
    """`encoderkit predict`'s rows for qa_data, by id: what the server must answer."""
    rows, _ = predict(qa_model, qa_data, tmp_path_factory.mktemp("serve-qa-predict"))
    return {row["id"]: row for row in rows}


@pytest.fixture(scope="module")
def qa_url(qa_model: Path) -> Iterator[str]:
    settings = dataclasses.replace(LIMITED, token=TOKEN)
    with running(create_app(Predictor.load(str(qa_model)), settings, str(qa_model))) as url:
        yield url


@pytest.fixture(scope="module")
def cls_model(tiny_model: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("serve-cls")
    train = write_jsonl(folder / "train.jsonl", sentiment_rows(32, seed=52))
    args = ["train", "--model", tiny_model, "--train", str(train), "--output", str(folder / "run")]
    assert main([*args, "--max-steps", "4", "--batch-size", "8", "--lr", "3e-3"]) == 0
    return folder / "run" / "model"


@pytest.fixture(scope="module")
def cls_url(cls_model: Path) -> Iterator[str]:
    with running(create_app(Predictor.load(str(cls_model)), LIMITED)) as url:
        yield url


@pytest.fixture(scope="module")
def mlm_model(tiny_model: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A random BertForMaskedLM (head weights saved) with the tiny WordPiece tokenizer."""
    from transformers import AutoConfig, AutoTokenizer, BertForMaskedLM

    folder = tmp_path_factory.mktemp("tiny-mlm")
    BertForMaskedLM(AutoConfig.from_pretrained(tiny_model)).save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def mlm_url(mlm_model: str) -> Iterator[str]:
    with running(create_app(Predictor.load(mlm_model), LIMITED)) as url:
        yield url


def questions(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"id": r["id"], "question": r["question"], "context": r["context"]} for r in records]


def assert_same_answer(got: dict[str, Any], want: dict[str, Any]) -> None:
    """The same answer and n-best spans; scores equal up to float noise from different batch padding."""
    assert (got["id"], got["answer"], got["start"], got["end"]) == (
        want["id"],
        want["answer"],
        want["start"],
        want["end"],
    )
    assert [(s["text"], s["start"], s["end"]) for s in got["nbest"]] == [
        (s["text"], s["start"], s["end"]) for s in want["nbest"]
    ]
    assert got["score"] == pytest.approx(want["score"], abs=2e-3)


# --- the API --------------------------------------------------------------------------------------------


def test_health_info_openapi_and_page(qa_url: str, qa_model: Path) -> None:
    assert httpx.get(f"{qa_url}/v1/health").json() == {"status": "ok"}
    info = httpx.get(f"{qa_url}/v1/info", headers=AUTH).json()
    meta = json.loads((qa_model / "encoderkit.json").read_text())
    assert (info["task"], info["model"], info["labels"], info["max_length"]) == (
        "qa",
        str(qa_model),
        None,
        64,
    )
    assert info["version"] and info["qa"]["doc_stride"] == meta["doc_stride"] == 24
    assert info["qa"]["null_threshold"] == meta["null_threshold"]
    assert info["limits"]["max_inputs"] == 8 and info["batching"]["max_batch"] == 32
    schema = httpx.get(f"{qa_url}/openapi.json").json()
    body = schema["paths"]["/v1/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["$ref"].endswith("/QARequest")
    assert {"question", "context"} <= set(schema["components"]["schemas"]["QAInput"]["required"])
    page = httpx.get(f"{qa_url}/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '"task": "qa"' in page.text and '"auth": true' in page.text
    # Offline: nothing is loaded from another host.
    assert "http://" not in page.text and "https://" not in page.text and "src=" not in page.text


def test_qa_answers_equal_encoderkit_predict(qa_url: str, qa_data: list, expected: dict) -> None:
    got = post(qa_url, {"inputs": questions(qa_data[:8])}, AUTH)
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["task"] == "qa" and len(body["predictions"]) == 8
    for row in body["predictions"]:
        assert_same_answer(row, expected[row["id"]])
    assert any(len(r["context"].split()) > 45 for r in qa_data[:8]), "some context spans several windows"
    no_id = post(
        qa_url, {"inputs": [{"question": qa_data[0]["question"], "context": qa_data[0]["context"]}]}, AUTH
    )
    assert "id" not in no_id.json()["predictions"][0]
    assert no_id.json()["predictions"][0]["answer"] == expected[qa_data[0]["id"]]["answer"]


def test_predict_rows_applies_the_saved_null_threshold(qa_model: Path, qa_data: list, tmp_path: Path) -> None:
    """SQuAD v2: the threshold in encoderkit.json decides "no answer" for predict and the server alike."""
    v2 = tmp_path / "v2-model"
    shutil.copytree(qa_model, v2)
    meta = json.loads((v2 / "encoderkit.json").read_text())
    (v2 / "encoderkit.json").write_text(json.dumps({**meta, "null_threshold": -1e12}))
    served = Predictor.load(str(v2)).predict_rows(questions(qa_data[:4]))
    rows, _ = predict(v2, qa_data[:4], tmp_path)
    assert served == rows
    assert all(r["answer"] == "" and (r["start"], r["end"]) == (-1, -1) and r["nbest"] for r in served)


def test_classification_labels_and_probabilities(cls_url: str, cls_model: Path, tmp_path: Path) -> None:
    rows = [{"id": f"t{i}", **{"text": r["text"]}} for i, r in enumerate(sentiment_rows(6, seed=53))]
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    assert (
        main(
            [
                "predict",
                "--model",
                str(cls_model),
                "--input",
                str(source),
                "--output",
                str(tmp_path / "out.jsonl"),
            ]
        )
        == 0
    )
    want = read_jsonl(tmp_path / "out.jsonl")
    got = post(cls_url, {"inputs": rows})
    assert got.status_code == 200, got.text
    for g, w in zip(got.json()["predictions"], want, strict=True):
        assert (g["id"], g["label"], g["label_name"]) == (w["id"], w["label"], w["label_name"])
        assert set(g["probabilities"]) == {"negative", "positive"}
        assert g["probabilities"] == pytest.approx(w["probabilities"], abs=1e-4)
        assert sum(g["probabilities"].values()) == pytest.approx(1, abs=1e-4)
    info = httpx.get(f"{cls_url}/v1/info").json()
    assert info["task"] == "classification" and info["labels"] == ["negative", "positive"]
    pair = post(cls_url, {"inputs": [{"text": "a film", "text_pair": "a book"}]})
    assert pair.status_code == 422 and "inputs[0].text_pair" in error_of(pair)


def test_fill_mask_api_and_command_agree(
    mlm_url: str, mlm_model: str, capsys: pytest.CaptureFixture[str]
) -> None:
    text = "the film was [MASK] and the meal was [MASK] ."
    got = post(mlm_url, {"inputs": [{"id": 7, "text": text, "top_k": 3}]})
    assert got.status_code == 200, got.text
    prediction = got.json()["predictions"][0]
    assert prediction["id"] == 7 and len(prediction["masks"]) == 2
    for m, candidates in enumerate(prediction["masks"]):
        assert len(candidates) == 3
        scores = [c["score"] for c in candidates]
        assert scores == sorted(scores, reverse=True) and all(0 < s <= 1 for s in scores)
        for c in candidates:  # only mask m is filled
            assert c["sequence"].count("[MASK]") == 1 and c["token"] in c["sequence"]
            assert c["sequence"].startswith("the film was [MASK]") == (m == 1)
    assert httpx.get(f"{mlm_url}/v1/info").json()["mask_token"] == "[MASK]"
    capsys.readouterr()
    assert main(["fill-mask", "--model", mlm_model, "--top-k", "3", "--json", text]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == {"text": text, "masks": prediction["masks"]}
    no_mask = post(mlm_url, {"inputs": [{"text": "the film was good"}]})
    assert no_mask.status_code == 422 and error_of(no_mask).startswith("inputs[0].text: no mask token")
    too_long = post(mlm_url, {"inputs": [{"text": "[MASK] " + "good " * 200}]})
    assert too_long.status_code == 422 and "longer than the model's 128" in error_of(too_long)


def test_fill_mask_refuses_a_model_without_a_masked_lm_head(
    tiny_model: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bare encoder (like the bundled MiniLM) would fill masks from a random head: refuse it."""
    capsys.readouterr()
    assert main(["fill-mask", "--model", tiny_model, "a [MASK] film"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "no masked-LM head weights" in errors[0], errors


# --- bad requests ---------------------------------------------------------------------------------------

GOOD = {"question": "what was it?", "context": "the film one two three was good"}


def raw(url: str, content: bytes | Iterator[bytes], headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/predict",
        content=content,
        headers={**AUTH, "Content-Type": "application/json", **(headers or {})},
        timeout=30,
    )


BAD_BODIES = {
    # name: (body, status, fragment of the error)
    "malformed-json": (b'{"inputs": [{"question": "q", "context": "c"}', 400, "malformed JSON"),
    "not-json-at-all": (b"question=what", 400, "malformed JSON"),
    "list-not-object": (b"[]", 422, "body"),
    "missing-field": (
        json.dumps({"inputs": [{"question": "what?"}]}).encode(),
        422,
        "inputs[0].context: Field required",
    ),
    "wrong-type": (
        json.dumps({"inputs": [{"question": 5, "context": "c"}]}).encode(),
        422,
        "inputs[0].question",
    ),
    "blank-question": (
        json.dumps({"inputs": [{"question": "  ", "context": "c"}]}).encode(),
        422,
        "inputs[0].question: empty",
    ),
    "no-inputs": (json.dumps({"inputs": []}).encode(), 422, "inputs"),
    # Valid JSON escapes, but not text: a lone surrogate crashes the Rust tokenizer if it gets there.
    "lone-surrogate": (
        b'{"inputs": [{"question": "what \\ud800?", "context": "c"}]}',
        422,
        "inputs[0].question",
    ),
    "model-path-in-request": (
        json.dumps({"inputs": [GOOD], "model": "../../../etc"}).encode(),
        422,
        "model: Extra inputs",
    ),
    "path-in-input": (
        json.dumps({"inputs": [{**GOOD, "model_dir": "/etc/passwd"}]}).encode(),
        422,
        "inputs[0].model_dir",
    ),
    "too-many-inputs": (
        json.dumps({"inputs": [GOOD] * 9}).encode(),
        413,
        "inputs: 9 inputs, more than the limit of 8",
    ),
    "too-long-context": (
        json.dumps({"inputs": [{**GOOD, "context": "word " * 1000}]}).encode(),
        413,
        "inputs[0].context: 5000 characters",
    ),
    "oversized-body": (
        json.dumps({"inputs": [{**GOOD, "context": "x" * 70_000}]}).encode(),
        413,
        "larger than the server's limit of 65536 bytes",
    ),
}


@pytest.mark.parametrize("case", list(BAD_BODIES))
def test_bad_request_bodies_get_a_4xx_with_a_clear_error(qa_url: str, case: str) -> None:
    body, status, fragment = BAD_BODIES[case]
    response = raw(qa_url, body)
    assert response.status_code == status, response.text
    assert fragment in error_of(response)


def test_a_json_body_is_read_as_json_whatever_content_type_the_client_left_it(
    qa_url: str, qa_data: list[dict[str, Any]]
) -> None:
    """Plain `curl -d` says form-urlencoded, some clients say nothing or text/plain: the body is
    still JSON. A body declared as something else is refused (415); a non-JSON body stays 400."""
    body = json.dumps({"inputs": questions(qa_data[:1])}).encode()
    want = raw(qa_url, body).json()
    for kind in ("", "application/x-www-form-urlencoded", "text/plain; charset=utf-8"):
        got = httpx.post(
            f"{qa_url}/v1/predict", content=body, headers={**AUTH, "Content-Type": kind}, timeout=30
        )
        assert got.status_code == 200 and got.json() == want, (kind, got.text)
    unset = httpx.post(f"{qa_url}/v1/predict", content=body, headers=AUTH, timeout=30)  # no Content-Type
    assert unset.status_code == 200 and unset.json() == want, unset.text
    refused = raw(qa_url, body, {"Content-Type": "multipart/form-data; boundary=x"})
    assert refused.status_code == 415 and "the API takes JSON" in error_of(refused)
    form = raw(qa_url, b"question=what", {"Content-Type": "application/x-www-form-urlencoded"})
    assert form.status_code == 400 and "malformed JSON" in error_of(form)


def test_oversized_streamed_body_without_content_length_is_refused(qa_url: str) -> None:
    chunks = (b"x" * 16_384 for _ in range(8))  # 128 KiB, chunked: the limit is counted as it arrives
    response = raw(qa_url, chunks)
    assert response.status_code == 413 and "65536 bytes" in error_of(response)


def test_paths_and_methods_outside_the_api(qa_url: str) -> None:
    for path in (
        "/../../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/static/..%2f..%2fpyproject.toml",
        "/docs",
    ):
        response = httpx.get(f"{qa_url}{path}")
        assert response.status_code == 404, path
        assert "root:" not in response.text and "[project]" not in response.text
        error_of(response)
    wrong_method = httpx.get(f"{qa_url}/v1/predict", headers=AUTH)
    assert wrong_method.status_code == 405 and error_of(wrong_method)


def test_bearer_token_is_required_when_set(qa_url: str) -> None:
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": TOKEN},
        {"Authorization": f"Basic {TOKEN}"},
    ):
        for response in (
            post(qa_url, {"inputs": [GOOD]}, headers),
            httpx.get(f"{qa_url}/v1/info", headers=headers),
        ):
            assert response.status_code == 401, (headers, response.text)
            assert response.headers["www-authenticate"] == "Bearer" and "bearer token" in error_of(response)
    assert httpx.get(f"{qa_url}/v1/health").status_code == 200  # liveness stays open
    assert post(qa_url, {"inputs": [GOOD]}, AUTH).status_code == 200


def test_a_slow_model_times_out_with_504_and_the_server_recovers() -> None:
    class Slow:
        task, meta, label_names, pairs = "classification", {"max_length": 8}, ["a", "b"], False

        def validate_rows(self, rows: list[dict]) -> None:
            pass

        def predict_rows(self, rows: list[dict]) -> list[dict]:
            if any(r["text"] == "slow" for r in rows):
                time.sleep(1.0)
            if any(r["text"] == "crash" for r in rows):
                raise RuntimeError("a bug")
            return [{"label": 0, "label_name": "a", "probabilities": {"a": 1.0, "b": 0.0}} for _ in rows]

    settings = ServeSettings(timeout_s=0.3, batch_wait_ms=0)
    with running(create_app(Slow(), settings)) as url:
        slow = post(url, {"inputs": [{"text": "slow"}]})
        assert slow.status_code == 504 and "timeout of 0.3 s" in error_of(slow)
        time.sleep(1.0)  # the model thread still finishes the slow call; a running call cannot be stopped
        crash = post(url, {"inputs": [{"text": "crash"}]})
        assert crash.status_code == 500 and "internal error (RuntimeError)" in error_of(crash)
        fine = post(url, {"inputs": [{"text": "fine"}]})
        assert fine.status_code == 200 and fine.json()["predictions"][0]["label_name"] == "a"


def test_concurrent_mixed_requests_are_batched_and_answered_right(
    qa_url: str, qa_data: list, expected: dict
) -> None:
    """32 clients at once, a quarter of them sending garbage: every valid one gets its own right answer."""
    before = httpx.get(f"{qa_url}/v1/info", headers=AUTH).json()["batching"]
    barrier = threading.Barrier(32)
    bad = [b for b, _, _ in BAD_BODIES.values()]

    def client(i: int) -> tuple[int, httpx.Response]:
        barrier.wait()
        if i % 4 == 3:
            return i, raw(qa_url, bad[(i // 4) % len(bad)])
        return i, post(qa_url, {"inputs": [questions(qa_data)[i % len(qa_data)]]}, AUTH)

    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(client, range(32)))
    for i, response in results:
        if i % 4 == 3:
            assert 400 <= response.status_code < 500, response.text
        else:
            assert response.status_code == 200, response.text
            got = response.json()["predictions"][0]
            assert_same_answer(got, expected[qa_data[i % len(qa_data)]["id"]])
    after = httpx.get(f"{qa_url}/v1/info", headers=AUTH).json()["batching"]
    assert after["requests"] - before["requests"] == 24, "only valid requests reach the model"
    assert after["batches"] - before["batches"] < 24, "concurrent requests shared model calls"
    assert after["most_requests_in_a_batch"] > 1


def test_after_all_that_a_valid_request_still_gets_the_right_answer(
    qa_url: str, qa_data: list, expected: dict
) -> None:
    random.seed(0)
    record = random.choice(qa_data)
    response = post(qa_url, {"inputs": questions([record])}, AUTH)
    assert response.status_code == 200
    assert_same_answer(response.json()["predictions"][0], expected[record["id"]])


# --- the command ----------------------------------------------------------------------------------------


def test_serve_bad_usage_exits_2_with_one_error_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("ENCODERKIT_TOKEN", raising=False)
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = str(busy.getsockname()[1])
    cases = [
        ("no-model", ["--host", "0.0.0.0"], "--host 0.0.0.0: not a loopback address"),
        ("no-model", ["--port", "70000"], "--port: must be in 0..65535"),
        ("no-model", ["--max-batch", "0"], "--max-batch: must be >= 1"),
        ("no-model", ["--port", port], f"--port {port}: cannot listen there"),
        (str(tmp_path), ["--port", "0"], f"{tmp_path}: not an encoderkit model folder"),
    ]
    with busy:
        for model, argv, fragment in cases:
            capsys.readouterr()
            assert main(["serve", "--model", model, *argv]) == 2
            err = capsys.readouterr().err
            assert "Traceback" not in err
            lines = [line for line in err.splitlines() if line.startswith("error:")]
            assert len(lines) == 1 and fragment in lines[0], err


def start_serve(
    model: Path, *args: str, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[str], str]:
    """`python -m encoderkit serve --port 0`; returns the process and the URL it printed."""
    cmd = [sys.executable, "-m", "encoderkit", "serve", "--model", str(model), "--port", "0", *args]
    proc = subprocess.Popen(
        cmd, env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}, stderr=subprocess.PIPE, text=True
    )
    assert proc.stderr is not None
    printed = []
    for line in proc.stderr:  # the command prints its URL once the model is loaded and the port bound
        if line.startswith("serving "):
            return proc, line.split(" on ", 1)[1].split()[0].rstrip("/")
        printed.append(line)
        if line.startswith("error:"):
            break
    proc.kill()
    pytest.fail(f"server did not start: {''.join(printed)}")


def test_browser_page_highlights_the_answer(chromium: Any, qa_model: Path, qa_data: list) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    record = qa_data[1]
    proc, url = start_serve(qa_model, env={"ENCODERKIT_TOKEN": ""})
    try:
        api = post(url, {"inputs": questions([record])}).json()["predictions"][0]
        assert api["answer"], "a v1 model always answers"
        chromium.get(url + "/")
        chromium.find_element(By.ID, "question").send_keys(record["question"])
        chromium.find_element(By.ID, "context").send_keys(record["context"])
        chromium.find_element(By.ID, "submit").click()
        mark = WebDriverWait(chromium, 20).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, "#highlighted mark")
        )[0]
        assert mark.text == api["answer"]
        assert chromium.find_element(By.ID, "highlighted").text == record["context"]
        nbest = chromium.find_elements(By.CSS_SELECTOR, "#nbest tr")
        assert len(nbest) == len(api["nbest"]) + 1  # + the header row
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / "serve-page-qa.png"
        assert chromium.save_screenshot(str(shot)) and shot.stat().st_size > 1000
    finally:
        proc.terminate()
        proc.wait(10)
