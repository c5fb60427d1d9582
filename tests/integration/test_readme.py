"""The README's Python API example runs as written: train, predict and the HTTP API in-process.

Only its first assignment (the bundled model and demo data) is swapped for the tests' tiny model
and toy reviews, so the run takes seconds; every other line runs unchanged, in a fresh process.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import sentiment_rows, write_jsonl

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_python_api_example_runs(tiny_model: str, tmp_path: Path) -> None:
    section = README.read_text(encoding="utf-8").split("### Python API", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None, "the section holds a python block"
    original = code.group(1)
    assert 'MODEL, DATA = "minilm", "src/encoderkit/demo"' in original
    data = tmp_path / "data"
    data.mkdir()
    write_jsonl(data / "train.jsonl", sentiment_rows(64, seed=1))
    write_jsonl(data / "eval.jsonl", sentiment_rows(16, seed=2))
    script = re.sub(
        r"^MODEL, DATA = .*$", f"MODEL, DATA = {tiny_model!r}, {str(data)!r}", original, flags=re.M
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    printed = done.stdout.strip().splitlines()
    assert 0 <= float(printed[-3]) <= 1  # the accuracy
    assert "'label':" in printed[-2] and '"predictions"' not in printed[-2]
    assert printed[-1].startswith("{'task': 'classification', 'predictions': [{")
    assert (tmp_path / "runs" / "api" / "model" / "encoderkit.json").is_file()
