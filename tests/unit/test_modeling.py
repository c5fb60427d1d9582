"""Model building per strategy, and model-name resolution."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from encoderkit.errors import UserError
from encoderkit.modeling import build_model, load_config, model_max_length, parameter_counts, resolve_model


def _build(tiny_model: str, strategy: str) -> torch.nn.Module:
    config = load_config(tiny_model, num_labels=3)
    return build_model(AutoModelForSequenceClassification, tiny_model, config, strategy)


def test_full_trains_everything(tiny_model: str) -> None:
    trainable, total = parameter_counts(_build(tiny_model, "full"))
    assert trainable == total > 0


def test_frozen_trains_only_the_head_and_pooler(tiny_model: str) -> None:
    model = _build(tiny_model, "frozen")
    trainable_names = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable_names == {
        "bert.pooler.dense.weight",
        "bert.pooler.dense.bias",
        "classifier.weight",
        "classifier.bias",
    }
    trainable, total = parameter_counts(model)
    hidden = model.config.hidden_size
    assert trainable == hidden * hidden + hidden + 3 * hidden + 3 < total


def test_scratch_does_not_load_the_pretrained_weights(tiny_model: str) -> None:
    torch.manual_seed(0)
    pretrained = _build(tiny_model, "full").bert.embeddings.word_embeddings.weight
    torch.manual_seed(0)
    scratch = _build(tiny_model, "scratch").bert.embeddings.word_embeddings.weight
    assert pretrained.shape == scratch.shape
    assert not torch.equal(pretrained, scratch)


def test_unknown_local_model_is_a_user_error(tmp_path) -> None:
    empty = tmp_path / "empty-model"
    empty.mkdir()
    with pytest.raises(UserError, match=r"no config\.json"):
        load_config(str(empty))


def test_model_max_length_is_the_smaller_limit(tiny_model: str) -> None:
    from transformers import AutoTokenizer

    assert model_max_length(load_config(tiny_model), AutoTokenizer.from_pretrained(tiny_model)) == 128
    assert resolve_model("some-org/some-model") == "some-org/some-model"
