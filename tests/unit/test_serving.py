"""The server's pure parts: the micro-batcher, the bind check, the token check, field paths, row checks."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from encoderkit.errors import UserError
from encoderkit.serving.app import field_path
from encoderkit.serving.batcher import MicroBatcher, QueueFull
from encoderkit.serving.limits import token_ok
from encoderkit.serving.settings import ServeSettings, check_bind, is_loopback
from encoderkit.tasks.qa_serving import qa_examples
from encoderkit.tasks.rows import check_rows, with_ids
from encoderkit.tasks.sequence import text_examples


class Recorder:
    """A model function that doubles numbers, records its batches, and fails on negative input."""

    def __init__(self, delay: float = 0.0) -> None:
        self.batches: list[list[int]] = []
        self.delay = delay
        self.threads: set[str] = set()

    def __call__(self, items: list[int]) -> list[int]:
        self.batches.append(list(items))
        self.threads.add(threading.current_thread().name)
        time.sleep(self.delay)
        if any(i < 0 for i in items):
            raise ValueError(f"negative input in {items}")
        return [2 * i for i in items]


def run_jobs(batcher: MicroBatcher, jobs: list[list[int]]) -> list[Any]:
    """Submit every job at once; each result is a list of outputs or the exception raised."""

    async def main() -> list[Any]:
        await batcher.start()
        try:
            return await asyncio.gather(*(batcher.submit(job) for job in jobs), return_exceptions=True)
        finally:
            await batcher.stop()

    return asyncio.run(main())


def test_concurrent_jobs_share_batches_and_get_their_own_outputs() -> None:
    model = Recorder()
    batcher = MicroBatcher(model, max_batch=8, wait_s=0.05)
    results = run_jobs(batcher, [[i, 100 + i] for i in range(10)])
    assert results == [[2 * i, 200 + 2 * i] for i in range(10)]
    assert [len(b) for b in model.batches] == [8, 8, 4], "jobs of 2 fill batches of 8; a job is never split"
    assert batcher.stats.batches == 3 and batcher.stats.requests == 10 and batcher.stats.inputs == 20
    assert batcher.stats.largest_batch == 8 and batcher.stats.most_requests_in_a_batch == 4
    assert model.threads and all(name.startswith("encoderkit-model") for name in model.threads)


def test_a_job_larger_than_max_batch_runs_alone() -> None:
    model = Recorder()
    results = run_jobs(MicroBatcher(model, max_batch=2, wait_s=0.05), [[1], list(range(5)), [7]])
    assert results == [[2], [0, 2, 4, 6, 8], [14]]
    assert sorted(len(b) for b in model.batches) == [1, 1, 5]


def test_a_failing_job_fails_alone_and_the_others_are_answered() -> None:
    model = Recorder()
    results = run_jobs(MicroBatcher(model, max_batch=16, wait_s=0.05), [[1], [-1], [3]])
    assert results[0] == [2] and results[2] == [6]
    assert isinstance(results[1], ValueError)
    assert model.batches[0] == [1, -1, 3], "tried together first"
    assert sorted(model.batches[1:]) == [[-1], [1], [3]], "then each job alone"


def test_without_a_wait_a_lone_job_runs_at_once() -> None:
    model = Recorder()
    batcher = MicroBatcher(model, max_batch=32, wait_s=0.0)
    start = time.perf_counter()
    assert run_jobs(batcher, [[5]]) == [[10]]
    assert time.perf_counter() - start < 1.0


def test_jobs_queue_while_the_model_is_busy_and_then_run_together() -> None:
    """No wait needed under load: requests arriving during a model call form the next batch."""
    model = Recorder(delay=0.2)
    batcher = MicroBatcher(model, max_batch=32, wait_s=0.0)

    async def main() -> list[Any]:
        await batcher.start()
        first = asyncio.create_task(batcher.submit([0]))
        await asyncio.sleep(0.05)  # the first call is running now
        rest = [asyncio.create_task(batcher.submit([i])) for i in range(1, 6)]
        out = [await first] + [await t for t in rest]
        await batcher.stop()
        return out

    assert asyncio.run(main()) == [[0], [2], [4], [6], [8], [10]]
    assert model.batches == [[0], [1, 2, 3, 4, 5]]


def test_a_job_cancelled_before_its_batch_is_not_run() -> None:
    model = Recorder(delay=0.2)
    batcher = MicroBatcher(model, max_batch=1, wait_s=0.0)

    async def main() -> None:
        await batcher.start()
        busy = asyncio.create_task(batcher.submit([1]))
        await asyncio.sleep(0.05)
        with pytest.raises(TimeoutError):  # the client gives up while [2] waits
            await asyncio.wait_for(batcher.submit([2]), 0.01)
        assert await busy == [2]
        assert await batcher.submit([3]) == [6]
        await batcher.stop()

    asyncio.run(main())
    assert model.batches == [[1], [3]] and batcher.stats.dropped == 1


def test_a_full_queue_is_refused() -> None:
    model = Recorder(delay=0.2)
    results = run_jobs(MicroBatcher(model, max_batch=1, wait_s=0.0, max_queue=2), [[i] for i in range(6)])
    refused = [r for r in results if isinstance(r, QueueFull)]
    assert refused and all(isinstance(r, list) for r in results if r not in refused)


# --- settings, auth, messages ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.8.9.1", True), ("localhost", True), ("::1", True), ("[::1]", True),
     ("0.0.0.0", False), ("::", False), ("192.168.1.5", False), ("example.com", False)],
)  # fmt: skip
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_a_public_bind_needs_a_token_or_an_explicit_flag() -> None:
    check_bind("127.0.0.1", None, False)
    check_bind("0.0.0.0", "secret", False)
    check_bind("0.0.0.0", None, True)
    with pytest.raises(UserError, match=r"--host 0\.0\.0\.0: not a loopback address.*ENCODERKIT_TOKEN"):
        check_bind("0.0.0.0", None, False)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("max_batch", 0, "--max-batch: must be >= 1"), ("timeout_s", 0.0, "--timeout-s: must be > 0"),
     ("port", -1, "--port"), ("batch_wait_ms", -1.0, "--batch-wait-ms"), ("token", " ", "empty token")],
)  # fmt: skip
def test_settings_are_checked(field: str, value: Any, message: str) -> None:
    with pytest.raises(UserError, match=message):
        ServeSettings(**{field: value})


def test_token_check() -> None:
    assert token_ok("Bearer s3cret", "s3cret") and token_ok("bearer s3cret", "s3cret")
    for given in (None, "", "s3cret", "Bearer", "Bearer s3cre", "Basic s3cret", "Bearer s3cret2"):
        assert not token_ok(given, "s3cret"), given


def test_field_path_reads_as_the_client_wrote_it() -> None:
    assert field_path(("body", "inputs", 0, "context")) == "inputs[0].context"
    assert field_path(("body",)) == "body"
    assert field_path(("body", "model")) == "model"


def test_rows_are_checked_field_by_field() -> None:
    with pytest.raises(UserError, match=r"inputs\[1\]\.context: missing"):
        qa_examples([{"question": "q", "context": "c"}, {"question": "q"}])
    with pytest.raises(UserError, match=r"inputs\[0\]\.question: expected a string, got int"):
        qa_examples([{"question": 3, "context": "c"}])
    with pytest.raises(UserError, match=r"inputs\[0\]\.path: unknown field for a qa model"):
        check_rows([{"question": "q", "context": "c", "path": "/etc"}], "qa", ("question", "context"))
    with pytest.raises(UserError, match=r"inputs: expected a non-empty list"):
        check_rows([], "qa", ("question", "context"))
    with pytest.raises(UserError, match=r"inputs\[0\]\.text_pair: missing"):
        text_examples([{"text": "a"}], pairs=True)
    assert [e.text_pair for e in text_examples([{"text": "a", "text_pair": "b"}], pairs=True)] == ["b"]


def test_ids_are_copied_only_when_given() -> None:
    rows = [{"id": 0, "text": "a"}, {"text": "b"}, {"id": "x", "text": "c"}]
    outputs = [{"id": "internal", "label": 1}, {"id": "1", "label": 0}, {"label": 1}]
    assert with_ids(rows, outputs) == [{"id": 0, "label": 1}, {"label": 0}, {"id": "x", "label": 1}]
