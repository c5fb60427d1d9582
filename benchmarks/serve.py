#!/usr/bin/env python
"""Serving benchmark: `encoderkit serve` against a plain baseline server (QA), same model, same machine.

The model is `--model` (default the bundled MiniLM) with a QA head, saved by encoderkit's own
training path after one step (`max_steps 1`): the timings do not depend on its answers.

Two servers run side by side in subprocesses, on the same HTTP stack (uvicorn + FastAPI), idle
while the other is measured. Measurements alternate between them (request by request for latency,
three rounds each for throughput), so both see the same state of a shared machine:

- baseline: POST /predict {question, context} -> tokenize (truncated to 384 tokens) + one model
  forward + argmax of the start and end logits -> answer text and offsets. A plain sync endpoint:
  concurrent requests run concurrent forwards in FastAPI's thread pool, no batching.
- encoderkit: POST /v1/predict {"inputs": [{question, context}]} -> `encoderkit serve` with its
  defaults: micro-batching, sliding windows, n-best decoding, the full JSON answer.

Measured: latency p50/p95 of one request at a time (a context of `--context-tokens`, default 300),
the same without HTTP (the baseline function and `Predictor.predict_rows` in this process), and
throughput (completed requests per second) with 1, 8 and 32 concurrent clients, each sending its
next request as soon as the last one is answered, for `--duration` seconds per level.

Stdout: one JSON line per comparison; everything else goes to stderr. Unless `--no-write`, each
line is also appended as a table row to benchmarks/RESULTS.md.

    python benchmarks/serve.py --duration 3 --latency-requests 10 --no-write   # smoke test
"""

from __future__ import annotations

import harness  # first: it sets HF_HUB_OFFLINE before anything imports huggingface_hub

# isort: split
import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import torch
from common import logger
from pydantic import BaseModel

from encoderkit.modeling import load_tokenizer

# The baseline server is this script in a subprocess; no tokenizer thread pools behind its threads.
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
log = logger("serve-bench")

HEADING = "## Serving (QA): encoderkit serve vs a plain baseline server"
COLUMNS = harness.Columns(
    "model | measure | clients | baseline | encoderkit | encoderkit / baseline | target | load", "llrrrrll"
)
NOTE = """Written by `benchmarks/serve.py`. One QA request = one question over a context of 300 tokens (one
384-token window). Baseline: a plain FastAPI endpoint on the same uvicorn stack doing tokenize + one
forward + argmax of start/end logits, requests in FastAPI's thread pool without batching.
encoderkit: `encoderkit serve` with its defaults (micro-batching, windows, n-best decoding, full
JSON answer). Latency: p50 / p95 ms of one request at a time, over HTTP and, for reference, in
process without HTTP. Throughput: answered requests per second with N clients sending back to back,
and the server's CPU time per answered request (all its threads; on a shared machine the scheduler
gives the baseline's many threads a larger share of the CPU, so CPU-ms per request is the fairer
efficiency figure there); encoderkit's mean model batch in brackets. Ratio: encoderkit / baseline
(latency: lower is better; throughput: higher is better). Load: the machine's 1-minute load average
before -> after the measurement; the benchmark itself adds 1-2, so a larger figure means other work
shared the CPU and the row is noise. Compare figures only within a row."""
WORDS = """the council met on tuesday to discuss a plan for the new library which would open after
two years of work by local builders and volunteers who raised money through concerts markets and a
long campaign that many residents supported while others worried about the cost of running it each
year and asked whether the old building could be saved""".split()  # noqa: SIM905
QUESTION = "When will the new library open?"
ANSWER = "in the spring"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = harness.Parser(__doc__)
    ap.add_model("`minilm` (bundled) or a model folder")
    ap.add_argument("--context-tokens", type=int, default=300)
    ap.add_argument("--clients", default="1,8,32", help="comma-separated concurrency levels")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds of load per concurrency level")
    ap.add_argument("--latency-requests", type=int, default=50, help="sequential requests for p50/p95")
    ap.add_output("the model folder")
    # Internal: the baseline server process (started by this script).
    ap.add_argument("--baseline-server", metavar="MODEL_DIR", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse(argv)
    args.clients = [int(c) for c in args.clients.split(",") if c.strip()]
    return args


# --- the model and the input ----------------------------------------------------------------------------


def make_model(model: str, work: Path, context: str) -> Path:
    """`model` with a QA head, saved by encoderkit after one training step (the answers do not matter).

    A model left in a kept `--work-dir` by an earlier run is reused.
    """
    if (work / "run" / "model" / "encoderkit.json").is_file():
        return work / "run" / "model"
    start = context.index(ANSWER)
    record = {
        "question": QUESTION,
        "context": context,
        "answers": {"text": [ANSWER], "answer_start": [start]},
    }
    data = work / "train.jsonl"
    data.write_text("".join(json.dumps({"id": f"q{i}", **record}) + "\n" for i in range(8)), encoding="utf-8")
    fields = {"task": "qa", "model": model, "train": str(data), "output": str(work / "run"), "max_steps": 1}
    harness.train_encoderkit({**fields, "batch_size": 8, "max_length": 384, "save_steps": 10**9})
    return work / "run" / "model"


def make_context(tokenizer: Any, n_tokens: int) -> str:
    """English-like text of exactly `n_tokens` tokens with ANSWER in a sentence near the middle."""
    rng = random.Random(0)
    sentences: list[str] = []
    while len(tokenizer(" ".join(sentences), add_special_tokens=False)["input_ids"]) < n_tokens + 40:
        sentences.append(" ".join(rng.sample(WORDS, 12)).capitalize() + ".")
    sentences.insert(len(sentences) // 2, f"The new library will open {ANSWER}.")
    text = " ".join(sentences)
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    return text[: offsets[n_tokens - 1][1]]


# --- the baseline: tokenize + forward + argmax ---------------------------------------------------------


class Baseline:
    """The plain way to answer one question: no windows, no n-best, no batching."""

    def __init__(self, model_dir: str) -> None:
        from transformers import AutoModelForQuestionAnswering, AutoTokenizer

        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModelForQuestionAnswering.from_pretrained(model_dir).to(self.device).eval()

    @torch.inference_mode()
    def __call__(self, question: str, context: str) -> dict[str, Any]:
        enc = self.tokenizer(
            question, context, truncation="only_second", max_length=384, return_offsets_mapping=True,
            return_tensors="pt",
        )  # fmt: skip
        offsets = enc.pop("offset_mapping")[0]
        out = self.model(**{k: v.to(self.device) for k, v in enc.items()})
        start, end = int(out.start_logits[0].argmax()), int(out.end_logits[0].argmax())
        first, last = int(offsets[start][0]), int(offsets[max(start, end)][1])
        return {"answer": context[first:last], "start": first, "end": last}


class Question(BaseModel):
    question: str
    context: str


def serve_baseline(model_dir: str, port: int) -> int:
    """The baseline's HTTP server (this script, run again as a subprocess)."""
    import uvicorn
    from fastapi import FastAPI

    from encoderkit.serving.server import bind

    baseline = Baseline(model_dir)
    app = FastAPI()

    @app.post("/predict")
    def predict(body: Question) -> dict[str, Any]:  # sync: FastAPI runs it in its thread pool
        return baseline(body.question, body.context)

    sock = bind("127.0.0.1", port)
    print(f"serving baseline on http://127.0.0.1:{sock.getsockname()[1]}/", file=sys.stderr, flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False)).run(sockets=[sock])
    return 0


# --- load generation ------------------------------------------------------------------------------------


def start(cmd: list[str]) -> tuple[subprocess.Popen[str], str]:
    """Start a server process; return it and the URL it printed."""
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    for line in proc.stderr:
        if line.startswith("serving "):
            threading.Thread(target=proc.stderr.read, daemon=True).start()  # keep the pipe drained
            return proc, line.split(" on ", 1)[1].split()[0].rstrip("/")
        print(line, end="", file=sys.stderr)
    raise SystemExit(f"error: server did not start: {' '.join(cmd)}")


class Target:
    """One server to load: where to send what, and how to read its batching counters."""

    def __init__(self, name: str, url: str, path: str, body: dict[str, Any], pid: int) -> None:
        self.name, self.url, self.path, self.body, self.pid = name, url, path, body, pid

    def send(self, client: httpx.Client) -> float:
        """One request; its latency in ms."""
        t0 = time.perf_counter()
        response = client.post(self.url + self.path, json=self.body)
        response.raise_for_status()
        return 1000 * (time.perf_counter() - t0)

    def batches(self) -> tuple[int, int]:
        """(inputs, batches) served so far: encoderkit's counters; (0, 0) for the baseline."""
        if self.name != "encoderkit":
            return 0, 0
        stats = httpx.get(self.url + "/v1/info").json()["batching"]
        return stats["inputs"], stats["batches"]

    def cpu_seconds(self) -> float:
        """CPU time the server process has used so far (user + system, all threads; Linux only).

        On a shared machine the scheduler gives a process with 32 busy threads a larger share than
        one with 2, so requests per CPU-second is the fairer efficiency figure there.
        """
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return float("nan")
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def latency(targets: list[Target], n: int) -> dict[str, list[float]]:
    """`n` sequential requests to each target, alternating, so both see the same machine state."""
    clients = {t.name: httpx.Client(timeout=120) for t in targets}
    out: dict[str, list[float]] = {t.name: [] for t in targets}
    for i in range(5 + n):
        for t in targets:
            ms = t.send(clients[t.name])
            if i >= 5:  # the first five are warm-up
                out[t.name].append(ms)
    for client in clients.values():
        client.close()
    return out


def load(target: Target, clients: int, duration: float) -> dict[str, Any]:
    """`clients` threads sending back to back for `duration` seconds: latencies, time, model batches."""
    barrier = threading.Barrier(clients + 1)
    times: list[list[float]] = [[] for _ in range(clients)]
    done: list[float] = []

    def client(i: int) -> None:
        with httpx.Client(timeout=120) as http:
            target.send(http)  # warm-up: open the connection
            barrier.wait()
            while True:  # at least one timed request each, however short the duration
                times[i].append(target.send(http))
                done.append(time.perf_counter())
                if done[-1] >= deadline:
                    break

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    time.sleep(0.2)  # let the warm-up requests finish before the counters are read
    inputs0, batches0 = target.batches()
    cpu0 = target.cpu_seconds()
    t0 = time.perf_counter()
    deadline = t0 + duration  # read by the clients once the barrier opens
    barrier.wait()
    for t in threads:
        t.join()
    cpu1 = target.cpu_seconds()
    inputs1, batches1 = target.batches()
    latencies = [x for per in times for x in per]
    return {
        "latencies": latencies,
        "cpu_s": cpu1 - cpu0,
        "seconds": max(done) - t0,
        "inputs": inputs1 - inputs0,
        "batches": batches1 - batches0,
    }


def throughput(targets: list[Target], clients: int, duration: float, rounds: int = 3) -> dict[str, Any]:
    """Answered requests per second per target: `rounds` alternating runs of duration / rounds each."""
    runs: dict[str, list[dict[str, Any]]] = {t.name: [] for t in targets}
    for _ in range(rounds):
        for t in targets:
            runs[t.name].append(load(t, clients, duration / rounds))
    out: dict[str, Any] = {}
    for name, parts in runs.items():
        latencies = [x for part in parts for x in part["latencies"]]
        batches = sum(part["batches"] for part in parts)
        out[f"{name}_rps"] = round(len(latencies) / sum(part["seconds"] for part in parts), 2)
        out[f"{name}_p50_ms"] = round(statistics.median(latencies), 1)
        out[f"{name}_requests"] = len(latencies)
        out[f"{name}_cpu_ms_per_request"] = round(
            1000 * sum(part["cpu_s"] for part in parts) / len(latencies), 1
        )
        out[f"{name}_mean_batch"] = (
            round(sum(part["inputs"] for part in parts) / batches, 2) if batches else None
        )
    return out


def percentiles(ms: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(ms, n=20)
    return round(statistics.median(ms), 2), round(cuts[18], 2)


def in_process(model_dir: Path, question: str, context: str, n: int) -> dict[str, Any]:
    """p50/p95 without HTTP: the baseline function against Predictor.predict_rows (windows, n-best)."""
    from encoderkit.inference.predictor import Predictor

    baseline, predictor = Baseline(str(model_dir)), Predictor.from_dir(model_dir)
    row = [{"question": question, "context": context}]
    calls = {
        "baseline": lambda: baseline(question, context),
        "encoderkit": lambda: predictor.predict_rows(row),
    }
    ms: dict[str, list[float]] = {name: [] for name in calls}
    for i in range(5 + n):  # alternating, the first five as warm-up
        for name, call in calls.items():
            t0 = time.perf_counter()
            call()
            if i >= 5:
                ms[name].append(1000 * (time.perf_counter() - t0))
    out: dict[str, Any] = {}
    for name, values in ms.items():
        out[f"{name}_p50_ms"], out[f"{name}_p95_ms"] = percentiles(values)
    return out


# --- results --------------------------------------------------------------------------------------------


def table_row(line: dict[str, Any]) -> list[object]:
    if line["measure"].startswith("latency"):
        baseline = f"{line['baseline_p50_ms']:.1f} / {line['baseline_p95_ms']:.1f} ms"
        ours = f"{line['encoderkit_p50_ms']:.1f} / {line['encoderkit_p95_ms']:.1f} ms"
        target = "p50 <= 1.2x" if line["measure"] == "latency" else "(reference)"
        ratio = f"{line['ratio']:.2f}x (p50)"
    else:
        baseline, ours = (
            f"{line[f'{side}_rps']:.1f} req/s{_cpu(line, side)}" for side in ("baseline", "encoderkit")
        )
        ours += f" (batch {line['encoderkit_mean_batch'] or 0:.1f})"
        target = ">= 3x" if line["clients"] == 32 else ""
        ratio = f"{line['ratio']:.2f}x"
    return [
        line["model"], line["measure"], line["clients"],
        baseline, ours, ratio, target, line.get("load", ""),
    ]  # fmt: skip


RESULTS = harness.Results.one("benchmarks/serve.py", harness.Table(HEADING, COLUMNS, table_row, NOTE))


def _cpu(line: dict[str, Any], side: str) -> str:
    """ ", N CPU-ms/req" when the line has it (lines from before it was measured do not)."""
    value = line.get(f"{side}_cpu_ms_per_request")
    return f", {value:.0f} CPU-ms/req" if value is not None else ""


def measure_servers(args: argparse.Namespace, model_dir: Path, context: str) -> list[dict[str, Any]]:
    """Latency over HTTP, throughput at each client count, then latency in process; one line each."""
    body = {"question": QUESTION, "context": context}
    base_proc, base_url = start([sys.executable, __file__, "--baseline-server", str(model_dir)])
    ours_proc, ours_url = start(
        [
            sys.executable,
            "-m",
            "encoderkit",
            "serve",
            "--model",
            str(model_dir),
            "--host",
            "127.0.0.1",
            "--port",
            "0",
        ]
    )
    try:
        targets = [
            Target("baseline", base_url, "/predict", body, base_proc.pid),
            Target("encoderkit", ours_url, "/v1/predict", {"inputs": [body]}, ours_proc.pid),
        ]
        base_answer = httpx.post(base_url + "/predict", json=body, timeout=60).json()["answer"]
        ours_answer = httpx.post(ours_url + "/v1/predict", json={"inputs": [body]}, timeout=60).json()
        log(f"answers: baseline {base_answer!r}, encoderkit {ours_answer['predictions'][0]['answer']!r}")
        lines = []
        load0 = os.getloadavg()[0]
        http = {name: percentiles(ms) for name, ms in latency(targets, args.latency_requests).items()}
        lines.append({"measure": "latency", "clients": 1, **_latency_fields(http), "load": _load(load0)})
        log(f"latency over HTTP: {lines[-1]}")
        for clients in args.clients:
            load0 = os.getloadavg()[0]
            got = throughput(targets, clients, args.duration)
            ratio = round(got["encoderkit_rps"] / got["baseline_rps"], 3)
            lines.append(
                {"measure": "throughput", "clients": clients, **got, "ratio": ratio, "load": _load(load0)}
            )
            log(f"throughput, {clients} clients: {lines[-1]}")
    finally:
        for proc in (base_proc, ours_proc):
            proc.terminate()
            proc.wait(30)
    load0 = os.getloadavg()[0]
    local = in_process(model_dir, QUESTION, context, args.latency_requests)
    local["load"] = _load(load0)
    lines.insert(1, {"measure": "latency in process", "clients": 1, **local,
                     "ratio": round(local["encoderkit_p50_ms"] / local["baseline_p50_ms"], 3)})  # fmt: skip
    return lines


def _load(before: float) -> str:
    """The 1-minute load average before -> after a measurement: the benchmark's own processes add
    about 1-2; more means other work shared the CPU and the row is noise."""
    return f"{before:.1f}->{os.getloadavg()[0]:.1f}"


def _latency_fields(http: dict[str, tuple[float, float]]) -> dict[str, float]:
    (b50, b95), (e50, e95) = http["baseline"], http["encoderkit"]
    return {"baseline_p50_ms": b50, "baseline_p95_ms": b95, "encoderkit_p50_ms": e50,
            "encoderkit_p95_ms": e95, "ratio": round(e50 / b50, 3)}  # fmt: skip


def measure(session: harness.Session) -> Iterator[harness.Line]:
    """A QA model saved by encoderkit, both servers started on it, then the measurements."""
    args = session.args
    context = make_context(load_tokenizer(args.model), args.context_tokens)
    log(f"device {session.context['device']}; QA model from {args.model} in {session.work}")
    model_dir = make_model(args.model, session.work, context)
    for line in measure_servers(args, model_dir, context):
        yield {**session.context, "context_tokens": args.context_tokens, **line}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.baseline_server:
        return serve_baseline(args.baseline_server, args.port)
    # Both servers load the model in fp32 (Predictor and the baseline run it without autocast).
    return harness.run(args, measure, RESULTS, log, "fp32")


if __name__ == "__main__":
    sys.exit(main())
