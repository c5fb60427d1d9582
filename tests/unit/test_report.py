"""Tests for the run report (HTML + PNG plots) and the model card."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pytest
import yaml

from encoderkit.errors import UserError
from encoderkit.model_folder.card import ModelCardInputs, render_model_card
from encoderkit.reporting import plots
from encoderkit.reporting.report import ReportInputs, format_number, write_report
from encoderkit.tasks import get_task

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
EMBEDDED = re.compile(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def fake_log(n_train: int = 30, with_eval: bool = True) -> list[dict]:
    """Training entries with falling loss, and an evaluation every 10 steps."""
    log: list[dict] = []
    for step in range(1, n_train + 1):
        log.append({"step": step, "epoch": step / 10, "loss": 2.0 / step, "lr": 5e-5 * (1 - step / 40)})
        if with_eval and step % 10 == 0:
            log.append(
                {
                    "step": step,
                    "epoch": step / 10,
                    "eval_loss": 1.0 / step,
                    "eval_accuracy": 0.5 + step / 100,
                    "eval_f1": 0.4 + step / 100,
                }
            )
    return log


def make_inputs(**overrides: Any) -> ReportInputs:
    values: dict[str, Any] = dict(
        title="SST-2 <demo> run",
        config={
            "model": "minilm",
            "lr": 5e-05,
            "bf16": False,
            "eval": None,
            "note": "<script>alert(1)</script>",
        },
        metrics={"accuracy": 0.91234567, "f1": 0.875, "train_runtime_s": 12.5, "trainable_params": 22713218},
        log=fake_log(),
        label_names=["negative", "positive"],
        confusion=[[25, 5], [3, 27]],
        lengths=[12, 40, 33, 90, 150, 64, 64, 20] * 5,
        max_length=128,
        data_summary={"train examples": 240, "eval examples": 60, "labels": "negative, positive"},
        warnings=["3 training examples are longer than max_length & were truncated"],
    )
    values.update(overrides)
    return ReportInputs(**values)


def embedded_pngs(page: str) -> list[bytes]:
    return [base64.b64decode(data, validate=True) for data in EMBEDDED.findall(page)]


def test_report_has_metrics_plots_and_no_external_urls(tmp_path: Path) -> None:
    path = write_report(tmp_path, make_inputs())
    assert path == tmp_path / "report.html"
    page = path.read_text(encoding="utf-8")

    assert '<table id="metrics"' in page
    for name, shown in [
        ("accuracy", "0.9123"),
        ("f1", "0.8750"),
        ("train_runtime_s", "12.50"),
        ("trainable_params", "22,713,218"),
    ]:
        assert re.search(rf"<td>{name}</td><td[^>]*>{shown}</td>", page), name

    written = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert written == ["confusion.png", "eval.png", "lengths.png", "loss.png"]
    for name in written:
        assert (tmp_path / "plots" / name).read_bytes().startswith(PNG_SIGNATURE)
    images = embedded_pngs(page)
    assert len(images) == len(written) == page.count("data:image/png;base64,")
    assert all(image.startswith(PNG_SIGNATURE) for image in images)
    assert page.count('alt="') == len(written)

    assert "http://" not in page and "https://" not in page
    assert "<script" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<title>SST-2 &lt;demo&gt; run</title>" in page
    assert plt.get_fignums() == []  # every figure was closed


def test_report_shows_warnings_data_config_and_extra_sections(tmp_path: Path) -> None:
    inputs = make_inputs(
        extra_sections=[("QA <errors>", "<p id='extra'>kept as HTML</p>")], confusion=None, lengths=None
    )
    page = write_report(tmp_path, inputs).read_text(encoding="utf-8")
    assert 'class="warnings"' in page
    assert "longer than max_length &amp; were truncated" in page
    assert re.search(r"<td>train examples</td><td>240</td>", page)
    assert re.search(r"<td>lr</td><td>5e-05</td>", page)
    assert re.search(r"<td>bf16</td><td>false</td>", page)
    assert re.search(r"<td>eval</td><td>null</td>", page)
    assert "<h2>QA &lt;errors&gt;</h2>" in page and "<p id='extra'>kept as HTML</p>" in page
    # Sections appear in the documented order.
    order = [
        page.index(h)
        for h in ("<h2>Warnings", "<h2>Final metrics", "<h2>Data", "<h2>Plots", "<h2>Configuration", "<h2>QA")
    ]
    assert order == sorted(order)


def test_no_eval_entries_means_no_eval_plot_and_no_warnings_section(tmp_path: Path) -> None:
    inputs = make_inputs(log=fake_log(with_eval=False), warnings=[], confusion=None, lengths=None)
    page = write_report(tmp_path, inputs).read_text(encoding="utf-8")
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["loss.png"]
    assert len(embedded_pngs(page)) == 1
    assert "Evaluation metrics" not in page
    assert 'class="warnings"' not in page


def test_rewriting_a_report_drops_stale_plots_and_leaves_no_temp_files(tmp_path: Path) -> None:
    write_report(tmp_path, make_inputs())
    assert (tmp_path / "plots" / "eval.png").exists()
    write_report(tmp_path, make_inputs(log=fake_log(with_eval=False)))
    assert not (tmp_path / "plots" / "eval.png").exists()
    leftovers = [p.name for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []


def test_plots_return_none_without_data() -> None:
    assert plots.loss_curve([{"step": 1, "eval_accuracy": 0.5}]) is None
    assert plots.eval_curves([{"step": 1, "loss": 0.5}]) is None
    assert plots.length_histogram([], 128) is None
    assert plots.confusion_matrix_plot([], []) is None
    png = plots.length_histogram([3, 4, 5], None)
    assert png is not None and png.startswith(PNG_SIGNATURE)


def test_plots_reject_mismatched_confusion_matrix() -> None:
    with pytest.raises(ValueError, match="2x2"):
        plots.confusion_matrix_plot([[1, 2, 3], [4, 5, 6]], ["a", "b"])
    assert plt.get_fignums() == []


def test_eval_metric_names_skip_non_numbers() -> None:
    log: list[dict[str, Any]] = [
        {"step": 1, "eval_f1": 0.5, "eval_note": "x", "loss": 1.0},
        {"step": 2, "eval_em": 40.0},
    ]
    assert plots.eval_metric_names(log) == ["eval_f1", "eval_em"]


def test_smooth_keeps_constant_series_and_length() -> None:
    assert plots.smooth([2.0] * 5) == pytest.approx([2.0] * 5)
    assert len(plots.smooth([1.0, 5.0, 3.0])) == 3


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (0.91234567, "0.9123"),
        (88.0, "88.00"),
        (995.5, "995.50"),
        (1234.56, "1,234.56"),
        (3e-05, "3.000e-05"),
        (0.0, "0.0000"),
        (7, "7"),
        (float("nan"), "nan"),
    ],
)
def test_format_number(value: float, shown: str) -> None:
    assert format_number(value) == shown


def card_inputs(**overrides: Any) -> ModelCardInputs:
    values: dict[str, Any] = dict(
        base_model="sentence-transformers/all-MiniLM-L6-v2",
        task="classification",
        label_names=["negative", "positive"],
        metrics={"accuracy": 0.91234567, "f1": 0.875},
        hyperparameters={"learning_rate": 5e-05, "epochs": 3, "strategy": "full"},
        train_data="data/train.jsonl",
        eval_data="data/dev.jsonl",
        columns={"text": "sentence", "text_pair": None, "label": "label"},
        version="0.1.0",
    )
    values.update(overrides)
    task = get_task(values["task"])  # the card's phrases are the task's
    values["text"], values["labels"] = task.card, task.labels_text(values.pop("label_names"))
    return ModelCardInputs(**values)


def front_matter(card: str) -> dict:
    lines = card.splitlines()
    assert lines[0] == "---"
    end = lines.index("---", 1)
    return yaml.safe_load("\n".join(lines[1:end]))


def test_model_card_front_matter_and_content() -> None:
    card = render_model_card(card_inputs())
    meta = front_matter(card)
    assert meta == {
        "library_name": "transformers",
        "base_model": "sentence-transformers/all-MiniLM-L6-v2",
        "tags": ["encoderkit", "classification"],
        "pipeline_tag": "text-classification",
    }
    assert "| accuracy | 0.9123 |" in card and "| f1 | 0.8750 |" in card
    assert "| 1 | positive |" in card
    assert "| learning_rate | 5e-05 |" in card
    assert "AutoModelForSequenceClassification.from_pretrained" in card
    assert "encoderkit predict --model" in card
    assert "text: `sentence`" in card and "text_pair" not in card


def test_model_card_for_qa_with_awkward_base_model() -> None:
    card = render_model_card(
        card_inputs(
            task="qa",
            label_names=None,
            base_model="./models/bert: v2 #1",
            metrics={"exact_match": 81.2, "f1": 88.5},
        )
    )
    meta = front_matter(card)
    assert meta["base_model"] == "./models/bert: v2 #1"
    assert meta["pipeline_tag"] == "question-answering"
    assert meta["tags"] == ["encoderkit", "qa"]
    assert "AutoModelForQuestionAnswering.from_pretrained" in card
    assert "| exact_match | 81.20 |" in card
    assert "huggingface.co" not in card  # a local path is not turned into a Hub link


def test_model_card_rejects_unknown_task() -> None:
    with pytest.raises(UserError, match="not a task encoderkit knows"):
        render_model_card(card_inputs(task="poetry"))


def test_step_axes_tick_whole_steps_only() -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1, 2, 3], [0.7, 0.6, 0.5, 0.4])  # a short run: matplotlib alone ticks at 0.5 steps
    plots.step_axis(ax)
    fig.canvas.draw()
    ticks = [t for t in ax.get_xticks() if 0 <= t <= 3]
    plt.close(fig)
    assert ticks and all(float(t).is_integer() for t in ticks) and ax.get_xlabel() == "step"
