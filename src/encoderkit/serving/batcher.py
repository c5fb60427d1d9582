"""Micro-batching: requests from many clients share one model call, so throughput grows with load.

Each request is a job (a list of inputs and a future). One worker task takes the first waiting
job, waits up to `wait_s` for more and takes jobs while the batch holds at most `max_batch`
inputs (a job is never split), then runs the model function on all inputs in one worker thread
and hands each job its slice of the outputs. While the model runs, new requests queue up, so
under load batches fill without any wait; a lone request waits `wait_s` at most.

A batch that fails is rerun job by job, so one bad input fails only its own request. A job whose
client gave up (timeout, disconnect) before its batch started is dropped unrun.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("encoderkit.serving")

RunBatch = Callable[[list[Any]], list[Any]]


class QueueFull(Exception):
    """More requests are waiting than the server accepts (answer 503)."""


@dataclass
class BatchStats:
    """Counters for /v1/info, so load tests can see that batching happens."""

    requests: int = 0
    inputs: int = 0
    batches: int = 0
    largest_batch: int = 0  # inputs
    most_requests_in_a_batch: int = 0
    dropped: int = 0  # jobs whose client gave up before their batch ran


@dataclass
class _Job:
    items: list[Any]
    future: asyncio.Future[list[Any]]


@dataclass
class MicroBatcher:
    """Collects jobs into batches for `run` (a blocking function, called in one worker thread)."""

    run: RunBatch
    max_batch: int = 32
    wait_s: float = 0.002
    max_queue: int = 1024
    stats: BatchStats = field(default_factory=BatchStats)

    def __post_init__(self) -> None:
        self._queue: asyncio.Queue[_Job] | None = None
        self._carry: _Job | None = None  # a job that did not fit the last batch goes first next time
        self._worker: asyncio.Task[None] | None = None
        # One thread: the model is not shared between threads, and torch uses every core per call.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="encoderkit-model")

    async def start(self) -> None:
        self._queue = asyncio.Queue(self.max_queue)
        self._worker = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def submit(self, items: list[Any]) -> list[Any]:
        """The outputs for `items`, in order; raises what `run` raised on this job alone.

        Raises:
            QueueFull: too many requests are waiting.
        """
        if self._queue is None:
            raise RuntimeError("MicroBatcher.start() was not awaited")
        job = _Job(list(items), asyncio.get_running_loop().create_future())
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            raise QueueFull(f"{self.max_queue} requests are waiting; try again later") from None
        self.stats.requests += 1
        self.stats.inputs += len(job.items)
        return await job.future

    async def _loop(self) -> None:
        while True:
            jobs = await self._collect()
            try:
                await self._run(jobs)
            except Exception as exc:  # a bug here must not stop the worker: fail these, serve the next
                log.exception("batch failed")
                for job in jobs:
                    _fail(job, exc)

    async def _collect(self) -> list[_Job]:
        """The next batch: the first job, then whatever arrives within `wait_s` and still fits."""
        assert self._queue is not None
        first = self._carry or await self._queue.get()
        self._carry = None
        jobs, size = [first], len(first.items)
        deadline = asyncio.get_running_loop().time() + self.wait_s
        while size < self.max_batch:
            job = await self._next(deadline)
            if job is None:
                break
            if size + len(job.items) > self.max_batch:
                self._carry = job
                break
            jobs.append(job)
            size += len(job.items)
        live = [job for job in jobs if not job.future.done()]  # done here = cancelled by its client
        self.stats.dropped += len(jobs) - len(live)
        return live

    async def _next(self, deadline: float) -> _Job | None:
        """The next waiting job, waiting until `deadline` (loop time) at most; None if none came."""
        assert self._queue is not None
        remaining = deadline - asyncio.get_running_loop().time()
        try:
            if remaining <= 0:
                return self._queue.get_nowait()  # past the wait: take only what is already here
            return await asyncio.wait_for(self._queue.get(), remaining)
        except (asyncio.QueueEmpty, TimeoutError):
            return None

    async def _run(self, jobs: list[_Job]) -> None:
        if not jobs:
            return
        loop = asyncio.get_running_loop()
        items = [item for job in jobs for item in job.items]
        try:
            outputs = await loop.run_in_executor(self._executor, self.run, items)
        except Exception as exc:
            if len(jobs) == 1:
                _fail(jobs[0], exc)
            else:  # find the job that failed: each one alone, so the others still get answers
                for job in jobs:
                    await self._run_alone(job)
            return
        self._record(len(items), len(jobs))
        start = 0
        for job in jobs:
            _resolve(job, outputs[start : start + len(job.items)])
            start += len(job.items)

    async def _run_alone(self, job: _Job) -> None:
        loop = asyncio.get_running_loop()
        if job.future.done():
            return
        try:
            outputs = await loop.run_in_executor(self._executor, self.run, job.items)
        except Exception as exc:
            _fail(job, exc)
            return
        self._record(len(job.items), 1)
        _resolve(job, outputs)

    def _record(self, inputs: int, requests: int) -> None:
        self.stats.batches += 1
        self.stats.largest_batch = max(self.stats.largest_batch, inputs)
        self.stats.most_requests_in_a_batch = max(self.stats.most_requests_in_a_batch, requests)


def _resolve(job: _Job, outputs: list[Any]) -> None:
    if not job.future.done():
        job.future.set_result(outputs)


def _fail(job: _Job, exc: BaseException) -> None:
    if not job.future.done():
        job.future.set_exception(exc)
