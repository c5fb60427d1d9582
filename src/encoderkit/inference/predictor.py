"""Load a saved model folder and predict or evaluate; one Predictor for the CLI, the server and the API.

The Predictor knows no task: it loads the folder through the saved-model contract
(`model_folder`), runs the one forward pass (`features.forward`), and hands inputs and outputs to
the folder's task (`tasks.get_task`), which reads, encodes and decodes them exactly as evaluation
did during training.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from encoderkit.errors import UserError
from encoderkit.features.collate import device_collator
from encoderkit.features.encoded import Encoded
from encoderkit.features.forward import Reduce, forward_all
from encoderkit.model_folder.load import load_folder_tokenizer, load_model, read_folder
from encoderkit.model_folder.metadata import METADATA_FILE
from encoderkit.tasks import Outputs, Task, get_task


@dataclass
class Predictor:
    """A fine-tuned model with what it was trained with."""

    model: Any
    tokenizer: Any
    meta: dict[str, Any]
    device: torch.device
    batch_size: int = 64

    @property
    def task(self) -> str:
        return str(self.meta["task"])

    @property
    def task_impl(self) -> Task:
        """The task that reads, encodes and decodes for this model."""
        return get_task(self.task)

    @property
    def label_names(self) -> list[str] | None:
        return self.meta.get("label_names")

    @property
    def pairs(self) -> bool:
        """Whether the model was trained on (text, text_pair) inputs."""
        return bool((self.meta.get("columns") or {}).get("text_pair"))

    @classmethod
    def from_dir(cls, path: str | Path, device: str | None = None, batch_size: int = 64) -> Predictor:
        """Load `path` (a run's `model/` folder, or the run folder itself).

        Raises:
            UserError: the folder is missing, was not written by encoderkit, or a file of it is
                damaged (the message names the file).
        """
        folder, meta = read_folder(path)
        task = _task_of(meta, folder)
        target = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        model = load_model(folder, task.model_class, meta).to(target).eval()
        return cls(model, load_folder_tokenizer(folder), meta, target, batch_size)

    @classmethod
    def from_masked_lm(cls, name: str, device: str | None = None) -> Predictor:
        """A fill-mask predictor on a masked-LM checkpoint (`minilm`, a folder or a Hub id)."""
        from encoderkit.tasks.fill_mask import load_masked_lm

        target = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        model, tokenizer, meta = load_masked_lm(name, target)
        return cls(model, tokenizer, meta, target)

    @classmethod
    def load(cls, name: str, device: str | None = None, batch_size: int = 64) -> Predictor:
        """An encoderkit model folder (task from its encoderkit.json), else a masked-LM checkpoint.

        Raises:
            UserError: neither; the message says why for both.
        """
        path = Path(name)
        if (path / METADATA_FILE).exists() or (path / "model" / METADATA_FILE).exists():
            return cls.from_dir(path, device, batch_size)
        if not path.exists() and (path.is_absolute() or name.startswith(".") or name.count("/") > 1):
            raise UserError(f"{name}: does not exist (give a run's model/ folder, or a masked-LM model)")
        try:
            return cls.from_masked_lm(name, device)
        except UserError as exc:
            why = f"not an encoderkit model folder (no {METADATA_FILE}) and not a fill-mask model"
            raise UserError(f"{name}: {why}: {exc}") from None

    def outputs(self, encoded: Encoded, reduce: Reduce | None = None) -> Outputs:
        """The model's outputs for every feature, in order (the one forward pass); `reduce`: what
        to keep of each batch's outputs (default: the logits)."""
        collator = device_collator(
            self.tokenizer.pad_token_id, self.tokenizer.padding_side == "left", self.device.type == "cuda"
        )
        return forward_all(self.model, encoded, self.batch_size, self.device, collator, reduce=reduce)

    # In-memory inputs: the server and the Python API -------------------------------------

    def predict_rows(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Predict a list of input objects, one output object per input, as `predict` writes them.

        Rows hold the task's fields: `question` and `context` (qa), `text` [and `text_pair`]
        (classification, regression), `text` with the mask token [and `top_k`] (fill-mask); an
        `id` is copied to the output. Decoding uses the saved settings, as `predict_file` and
        evaluation do.

        Raises:
            UserError: a row is malformed; the message names the field as `inputs[i].name`.
        """
        return self.task_impl.predict_rows(rows, self)

    def validate_rows(self, rows: list[dict[str, Any]]) -> None:
        """Raise the UserError `predict_rows` would raise for these rows, without running the model.

        It must not touch the tokenizer, which the server's model thread may be using at the same
        time (so a fill-mask text longer than the model is left to `predict_rows`).
        """
        self.task_impl.check_rows(rows, self.meta)

    def predict_texts(self, texts: list[str], pairs: list[str] | None = None) -> list[dict[str, Any]]:
        """Predict raw strings (the Python API, text tasks): one dict per text."""
        rows = [{"text": t, **({"text_pair": pairs[i]} if pairs else {})} for i, t in enumerate(texts)]
        return self.predict_rows(rows)

    # Files -------------------------------------------------------------------------------

    def predict_file(self, source: str, flags: dict[str, str | None]) -> list[dict[str, Any]]:
        """Predict every input of a file; rows keep their `id` when there is one."""
        return self.task_impl.predict_file(source, flags, self)

    def evaluate_file(self, source: str, flags: dict[str, str | None]) -> dict[str, Any]:
        """Metrics on a labelled file, computed as training computed them on its eval set."""
        return self.task_impl.evaluate_file(source, flags, self)


def _task_of(meta: dict[str, Any], folder: Path) -> Task:
    try:
        return get_task(str(meta["task"]))
    except UserError:
        raise UserError(f"{folder / METADATA_FILE}: unknown task {meta['task']!r}") from None
