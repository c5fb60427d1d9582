"""encoderkit: fine-tune pretrained transformer encoders on NLU tasks with one command.

Python API::

    from encoderkit import TrainConfig, train, Predictor
    result = train(TrainConfig(train="train.jsonl", eval="dev.jsonl", output="runs/x"))
    Predictor.from_dir("runs/x/model").predict_texts(["a fine film"])
"""

from __future__ import annotations

from typing import Any

from encoderkit.version import __version__

__all__ = ["Predictor", "TrainConfig", "UserError", "__version__", "train"]


def __getattr__(name: str) -> Any:
    # Lazy: `encoderkit --help` should not pay for importing torch and transformers.
    if name == "train":
        from encoderkit.training.run import train

        return train
    if name == "Predictor":
        from encoderkit.inference.predictor import Predictor

        return Predictor
    if name == "TrainConfig":
        from encoderkit.config import TrainConfig

        return TrainConfig
    if name == "UserError":
        from encoderkit.errors import UserError

        return UserError
    raise AttributeError(name)
