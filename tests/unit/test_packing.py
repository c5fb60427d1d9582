"""The packed (unpadded) path gives the padded model's logits, loss and gradients (CPU, tiny models)."""

from __future__ import annotations

import itertools
import random

import pytest
import torch
from transformers import (
    AutoModelForMaskedLM,
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    BertConfig,
    DistilBertConfig,
    RobertaConfig,
)

from encoderkit import packing
from encoderkit.errors import UserError
from encoderkit.features.collate import collate, collate_packed
from encoderkit.features.encoded import Encoded
from encoderkit.modeling import LoraSettings, add_lora
from encoderkit.tasks import get_task
from encoderkit.training.objective import TrainingModel

SHAPE = {"vocab_size": 120, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4}
SHAPE |= {"intermediate_size": 64, "max_position_embeddings": 64}
CONFIGS = {
    "bert": lambda **kw: BertConfig(**SHAPE, **kw),
    "roberta": lambda **kw: RobertaConfig(**SHAPE, pad_token_id=1, type_vocab_size=1, **kw),
}


def _features(n: int, qa: bool, pair: bool, seed: int = 0) -> Encoded:
    """`n` features of 3 to 40 tokens; QA targets inside each feature, labels otherwise."""
    rng = random.Random(seed)
    lengths = [rng.randint(3, 40) for _ in range(n)]
    ids = [[rng.randint(5, 119) for _ in range(length)] for length in lengths]
    types = [[0] * (length // 2) + [1] * (length - length // 2) for length in lengths] if pair else None
    if qa:
        starts = [rng.randrange(length) for length in lengths]
        ends = [min(s + rng.randrange(4), length - 1) for s, length in zip(starts, lengths, strict=True)]
        targets: dict[str, list] = {"start_positions": starts, "end_positions": ends}
        return Encoded(ids, types, targets, position_keys=("start_positions", "end_positions"))
    return Encoded(ids, types, {"labels": [rng.randrange(3) for _ in range(n)]})


def _model(kind: str, qa: bool, **extra: int) -> torch.nn.Module:
    torch.manual_seed(0)
    auto = AutoModelForQuestionAnswering if qa else AutoModelForSequenceClassification
    model = auto.from_config(CONFIGS[kind](**extra))
    packing.enable(model)
    return model.eval()


@pytest.mark.parametrize("kind", ["bert", "roberta"])
@pytest.mark.parametrize("qa", [False, True], ids=["classification", "qa"])
def test_packed_logits_and_loss_equal_the_padded_ones(kind: str, qa: bool) -> None:
    model = _model(kind, qa, **({} if qa else {"num_labels": 3}))
    data = _features(7, qa, pair=kind == "bert")
    pad_id = model.config.pad_token_id
    indices = [3, 0, 6, 1, 5]
    padded = collate(data, indices, pad_id)
    packed = collate_packed(data, indices, pad_id, packing.position_offset(model), multiple_of=16)
    assert packed["input_ids"].shape[1] % 16 == 0  # a filler sequence rounds T up
    with torch.no_grad():
        inputs = {k: v for k, v in padded.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        want = model(**inputs)
        got = packing.packed_logits(model, packed)
    lengths = padded["attention_mask"].sum(1)
    for key, value in got.items():
        reference = getattr(want, key)
        if value.dim() == 2 and key != "logits":  # per token: compare each sequence's own positions
            for row, n in enumerate(lengths.tolist()):
                torch.testing.assert_close(value[row, :n], reference[row, :n], atol=1e-5, rtol=1e-4)
                assert torch.isinf(value[row, n:]).all()
        else:
            torch.testing.assert_close(value, reference, atol=1e-5, rtol=1e-4)
    loss = TrainingModel(model, get_task("qa" if qa else "classification"))
    torch.testing.assert_close(loss(packed), loss(padded), atol=1e-5, rtol=1e-4)


def _per_token_features(n: int, classes: int, seed: int = 0) -> Encoded:
    """`n` features of 3 to 40 tokens with a label on about half of their positions."""
    rng = random.Random(seed)
    lengths = [rng.randint(3, 40) for _ in range(n)]
    ids = [[rng.randint(5, 119) for _ in range(length)] for length in lengths]
    labels = [[rng.randrange(classes) if rng.random() < 0.5 else -100 for _ in row] for row in ids]
    labels[0][0] = 1  # at least one labelled position
    return Encoded(ids, None, {"labels": labels})


@pytest.mark.parametrize("kind", ["bert", "roberta"])
@pytest.mark.parametrize("task", ["token-classification", "mlm"])
def test_packed_per_token_heads_equal_the_padded_ones(kind: str, task: str) -> None:
    """Token classification and masked LM: each sequence's logits, the loss and the gradients."""
    torch.manual_seed(0)
    if task == "mlm":
        model, classes = AutoModelForMaskedLM.from_config(CONFIGS[kind]()), SHAPE["vocab_size"]
    else:
        model, classes = AutoModelForTokenClassification.from_config(CONFIGS[kind](num_labels=5)), 5
    packing.enable(model)
    model.eval()  # no dropout: both passes compute the same function
    assert packing.unsupported(model) is None
    data = _per_token_features(6, classes, seed=3)
    pad_id, indices = model.config.pad_token_id, [4, 0, 5, 2]
    padded = collate(data, indices, pad_id)
    packed = collate_packed(data, indices, pad_id, packing.position_offset(model), multiple_of=16)
    with torch.no_grad():
        want = model(input_ids=padded["input_ids"], attention_mask=padded["attention_mask"]).logits
        got = packing.packed_logits(model, packed)["logits"]
    assert got.shape == want.shape
    for row, n in enumerate(padded["attention_mask"].sum(1).tolist()):
        torch.testing.assert_close(got[row, :n], want[row, :n], atol=1e-5, rtol=1e-4)
    objective = TrainingModel(model, get_task(task))
    grads = []
    for batch in (padded, packed):
        model.zero_grad()
        loss = objective(batch)
        loss.backward()
        grads.append(
            (loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
        )
    torch.testing.assert_close(grads[1][0], grads[0][0], atol=1e-5, rtol=1e-4)
    assert grads[0][1].keys() == grads[1][1].keys()
    for name in grads[0][1]:
        torch.testing.assert_close(grads[1][1][name], grads[0][1][name], atol=1e-5, rtol=1e-4, msg=name)


def test_padded_qa_loss_does_not_depend_on_the_padding_width() -> None:
    """HF's own QA loss would: its softmax covers the pad positions."""
    model = TrainingModel(_model("bert", qa=True), get_task("qa"))
    data = _features(4, qa=True, pair=True)
    with torch.no_grad():
        narrow = model(collate(data, [0, 1, 2, 3], 0))
        wide = model(collate(data, [0, 1, 2, 3], 0, width=64))
    torch.testing.assert_close(narrow, wide)


def test_packed_gradients_equal_the_padded_ones_with_lora() -> None:
    torch.manual_seed(0)
    base = AutoModelForSequenceClassification.from_config(CONFIGS["bert"](num_labels=2))
    lora = add_lora(base, LoraSettings(dropout=0.0))
    packing.enable(lora)
    model = TrainingModel(
        lora, get_task("classification")
    ).eval()  # eval: no dropout, so both passes compute the same function
    data = _features(6, qa=False, pair=False, seed=5)
    data.targets["labels"] = [i % 2 for i in range(6)]
    grads = []
    for batch in (collate(data, range(6), 0), collate_packed(data, range(6), 0)):
        model.zero_grad()
        model(batch).backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and any("lora_A" in n for n in grads[0])
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], atol=1e-5, rtol=1e-4, msg=name)


def test_unpack_places_each_sequence_in_its_row() -> None:
    values = torch.arange(9.0)
    cu = torch.tensor([0, 2, 7, 9], dtype=torch.int32)
    out = packing.unpack(values, cu, n=2, width=5, fill=-1.0)  # the third segment is filler
    assert out.tolist() == [[0, 1, -1, -1, -1], [2, 3, 4, 5, 6]]


def test_choose_unpad() -> None:
    cpu = torch.device("cpu")
    model = _model("bert", qa=True)
    assert packing.choose_unpad("off", model, cpu, "no")[0] is False
    on, why = packing.choose_unpad("on", model, cpu, "no")
    assert on and "per-sequence" in why
    auto, why = packing.choose_unpad("auto", model, cpu, "no")
    assert not auto and why == "padded to each batch's longest example (packing is for CUDA GPUs)"
    torch.manual_seed(0)
    distil = AutoModelForSequenceClassification.from_config(
        DistilBertConfig(vocab_size=50, dim=32, n_layers=1, n_heads=2, hidden_dim=64)
    )
    assert "distilbert" in (packing.unsupported(distil) or "")
    assert packing.choose_unpad("auto", distil, cpu, "no")[0] is False
    with pytest.raises(UserError, match="field 'unpad'"):
        packing.choose_unpad("on", distil, cpu, "no")


@pytest.mark.parametrize("qa", [False, True], ids=["classification", "qa"])
def test_packed_evaluation_gives_the_padded_outputs(qa: bool) -> None:
    from encoderkit.features.collate import Collator
    from encoderkit.features.forward import forward_all

    model = _model("bert", qa, **({} if qa else {"num_labels": 3}))
    data = _features(9, qa, pair=True, seed=7)
    cpu = torch.device("cpu")
    padded = forward_all(model, data, 4, cpu, Collator(pad_id=0))
    packed = forward_all(model, data, 4, cpu, Collator(pad_id=0, multiple_of=8, packed=True))
    assert padded.keys() == packed.keys()
    for key in padded:
        if key == "logits":
            torch.testing.assert_close(packed[key], padded[key], atol=1e-5, rtol=1e-4)
            continue
        for row, n in enumerate(data.lengths):  # each feature's own positions; after them -inf
            torch.testing.assert_close(packed[key][row, :n], padded[key][row, :n], atol=1e-5, rtol=1e-4)
            assert torch.isinf(packed[key][row, n:]).all()


def test_the_varlen_kernel_gets_packed_heads_and_boundaries(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CUDA call's contract, checked on CPU with a stand-in kernel: q/k/v [T, heads, head_dim],
    int32 boundaries, the longest length; BERT's scale is the default, so none is passed."""
    calls = []

    def fake_varlen(q, k, v, cu_q, cu_k, max_q, max_k, **extra):
        calls.append((q.shape, cu_q.dtype, max_q, extra))
        assert cu_q is cu_k and max_q == max_k
        bounds = cu_q.tolist()
        return torch.cat([
            torch.nn.functional.scaled_dot_product_attention(
                q[s:e].transpose(0, 1), k[s:e].transpose(0, 1), v[s:e].transpose(0, 1)
            ).transpose(0, 1)
            for s, e in itertools.pairwise(bounds)
        ])  # fmt: skip

    monkeypatch.setattr(packing, "varlen_attn", fake_varlen)
    monkeypatch.setattr(packing, "_varlen_runs", lambda q: True)
    model = _model("bert", qa=True)
    data = _features(5, qa=True, pair=True, seed=9)
    batch = collate_packed(data, range(5), 0)
    with torch.no_grad():
        got = packing.packed_logits(model, batch)["start_logits"]
        inputs = {k: v for k, v in collate(data, range(5), 0).items() if "positions" not in k}
        want = model(**inputs).start_logits
    total, heads = sum(data.lengths), model.config.num_attention_heads
    assert calls[0] == (torch.Size([total, heads, 32 // heads]), torch.int32, max(data.lengths), {})
    for row, n in enumerate(data.lengths):
        torch.testing.assert_close(got[row, :n], want[row, :n], atol=1e-5, rtol=1e-4)


def test_packed_mlm_evaluation_gives_the_padded_sums() -> None:
    from encoderkit.features.collate import Collator
    from encoderkit.features.forward import forward_all
    from encoderkit.tasks.mlm import masked_sums

    torch.manual_seed(0)
    model = AutoModelForMaskedLM.from_config(CONFIGS["bert"]())
    packing.enable(model)
    data = _per_token_features(7, SHAPE["vocab_size"], seed=4)
    reduce = masked_sums(data.targets["labels"], pad_left=False)
    cpu = torch.device("cpu")
    padded = forward_all(model.eval(), data, 3, cpu, Collator(pad_id=0), reduce=reduce)
    packed = forward_all(model, data, 3, cpu, Collator(pad_id=0, multiple_of=8, packed=True), reduce=reduce)
    for key in ("loss_sum", "masked", "correct"):
        torch.testing.assert_close(packed[key], padded[key], atol=1e-4, rtol=1e-4)
    assert padded["masked"].sum() > 0
