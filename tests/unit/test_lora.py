"""LoRA through PEFT: which weights train, how many, and that merging changes nothing."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForQuestionAnswering, AutoModelForSequenceClassification, BertConfig

from encoderkit.errors import UserError
from encoderkit.modeling import (
    LoraSettings,
    add_lora,
    build_model,
    load_config,
    lora_warning,
    parameter_counts,
)

ADAPTED = (
    "attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
    "intermediate.dense", "output.dense",
)  # fmt: skip


def _trainable(model: torch.nn.Module) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


def test_lora_trains_adapters_and_the_head_only(tiny_model: str) -> None:
    config = load_config(tiny_model, num_labels=3)
    model = build_model(AutoModelForSequenceClassification, tiny_model, config, "lora")
    names = _trainable(model)
    assert names and all("lora_" in n or ".classifier." in n for n in names), names
    # Every linear layer of every encoder block is adapted: q, k, v, attention output, intermediate, output.
    for layer in range(config.num_hidden_layers):
        for leaf in ADAPTED:
            assert any(f"layer.{layer}.{leaf}.lora_A" in n for n in names), (layer, leaf)
    assert not any("pooler" in n or "embeddings" in n for n in names)


def test_lora_trains_under_5_percent_of_a_bert_base_shaped_model() -> None:
    torch.manual_seed(0)
    base = AutoModelForSequenceClassification.from_config(BertConfig(num_labels=2))
    _, base_total = parameter_counts(base)
    head = sum(p.numel() for p in base.classifier.parameters())
    trainable, total = parameter_counts(add_lora(base, LoraSettings()))
    # Frozen: everything but the head; the frozen PEFT copy of the head is not counted.
    assert total - trainable == base_total - head
    assert 0 < trainable / total < 0.05


def test_lora_for_qa_saves_the_span_head(tiny_model: str) -> None:
    model = build_model(AutoModelForQuestionAnswering, tiny_model, load_config(tiny_model), "lora")
    assert any(".qa_outputs." in n for n in _trainable(model))


def test_chosen_targets_and_unknown_targets(tiny_model: str) -> None:
    config = load_config(tiny_model, num_labels=2)
    only_qv = LoraSettings(targets=("query", "value"))
    model = build_model(AutoModelForSequenceClassification, tiny_model, config, "lora", only_qv)
    adapted = {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in _trainable(model) if "lora_" in n}
    assert adapted == {"query", "value"}
    with pytest.raises(UserError, match=r"lora_targets.*'qkv'"):
        build_model(
            AutoModelForSequenceClassification, tiny_model, config, "lora", LoraSettings(targets=("qkv",))
        )


def test_merged_model_gives_the_logits_of_the_adapter(tiny_model: str) -> None:
    torch.manual_seed(0)
    config = load_config(tiny_model, num_labels=2)
    model = build_model(AutoModelForSequenceClassification, tiny_model, config, "lora").eval()
    with torch.no_grad():  # LoRA B starts at zero; move it so the adapter changes the output
        for name, param in model.named_parameters():
            if "lora_B" in name or ".classifier." in name:
                param.normal_(0, 0.5)
    ids = torch.randint(5, 100, (3, 12))
    with torch.no_grad():
        adapted = model(input_ids=ids).logits
        base_only = model.get_base_model()
        with model.disable_adapter():
            without = model(input_ids=ids).logits
        merged = model.merge_and_unload()(input_ids=ids).logits
    assert base_only is not None
    assert not torch.allclose(adapted, without, atol=1e-4)  # the adapter matters...
    torch.testing.assert_close(merged, adapted, atol=1e-5, rtol=1e-5)  # ...and merging keeps it exactly


def test_lora_warning_flags_the_setting_that_does_not_learn() -> None:
    assert lora_warning(r=8, alpha=1, lr=2e-5) is not None  # the seed notebook's run
    assert lora_warning(r=16, alpha=32, lr=1e-3) is None  # the defaults
    assert lora_warning(r=8, alpha=1, lr=1e-2) is None  # tiny scale, but a large enough step
