"""BERT's masking, the MLM sequences and the eval sums: pure functions, no model."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from encoderkit.tasks.masking import IGNORE, Masking, blocks, lines, mask_features
from encoderkit.tasks.mlm import masked_sums, scores

VOCAB = 1000
MASK, CLS, SEP, PAD = 3, 1, 2, 0
SPECIAL = np.zeros(VOCAB, dtype=bool)
SPECIAL[[PAD, CLS, SEP, MASK]] = True


def masking(p: float = 0.15, continues: np.ndarray | None = None) -> Masking:
    return Masking(p, MASK, VOCAB, SPECIAL, continues)


def test_fifteen_percent_chosen_then_80_10_10() -> None:
    ids = np.random.default_rng(1).integers(10, VOCAB, 200_000).tolist()
    inputs, labels = masking().apply(ids, np.random.default_rng(2))
    x, y, original = np.array(inputs), np.array(labels), np.array(ids)
    chosen = y != IGNORE
    assert chosen.mean() == pytest.approx(0.15, abs=0.005)
    assert (y[chosen] == original[chosen]).all() and (x[~chosen] == original[~chosen]).all()
    masked = (x[chosen] == MASK).mean()
    kept = (x[chosen] == original[chosen]).mean()  # 10% kept, and a random draw of the same token
    assert masked == pytest.approx(0.8, abs=0.01)
    assert kept == pytest.approx(0.1, abs=0.01)
    assert 1 - masked - kept == pytest.approx(0.1, abs=0.01)  # a random other token


def test_special_tokens_and_padding_are_never_chosen() -> None:
    ids = [CLS, *range(10, 40), SEP, PAD, PAD]
    for seed in range(200):
        inputs, labels = masking(0.9).apply(ids, np.random.default_rng(seed))
        for position in (0, 31, 32, 33):
            assert labels[position] == IGNORE and inputs[position] == ids[position]


def test_whole_word_masking_takes_every_piece_of_a_word_or_none() -> None:
    continues = np.zeros(VOCAB, dtype=bool)
    continues[500:] = True  # ids >= 500 continue the word before them ("##" pieces)
    words = [[10, 600, 601], [11], [12, 700], [13, 800, 801, 802]] * 50
    ids = [CLS, *[i for w in words for i in w], SEP]
    chosen_words = 0
    for seed in range(20):
        _, labels = masking(0.3, continues).apply(ids, np.random.default_rng(seed))
        start = 1
        for word in words:
            picked = [labels[start + k] != IGNORE for k in range(len(word))]
            assert all(picked) or not any(picked), (seed, word, picked)
            chosen_words += all(picked)
            start += len(word)
    assert chosen_words / (20 * len(words)) == pytest.approx(0.3, abs=0.03)  # words, not tokens


def test_a_continuation_after_a_special_token_starts_a_word() -> None:
    continues = np.zeros(VOCAB, dtype=bool)
    continues[500:] = True
    ids = [CLS, 600, 601, SEP]  # a text starting mid-word (a block cut inside a word)
    picked = {tuple(masking(0.5, continues).apply(ids, np.random.default_rng(s))[1]) for s in range(50)}
    assert (IGNORE, 600, 601, IGNORE) in picked and (IGNORE, IGNORE, IGNORE, IGNORE) in picked


def test_masks_depend_on_seed_epoch_and_feature_not_on_the_batch() -> None:
    features = [list(range(10, 60)) for _ in range(6)]
    alone = mask_features(masking(), features, [4], (7, 0, 1))
    in_batch = mask_features(masking(), features, [2, 4, 0], (7, 0, 1))
    assert alone[0][0] == in_batch[0][1] and alone[1][0] == in_batch[1][1]
    assert mask_features(masking(), features, [4], (7, 0, 1)) == alone  # deterministic
    next_epoch = mask_features(masking(), features, [4], (7, 0, 2))
    assert next_epoch[1] != alone[1]  # new masks every epoch
    assert in_batch[1][0] != in_batch[1][2]  # identical texts, different features: different masks


def test_blocks_join_documents_with_the_separator_and_cut_full_pieces() -> None:
    def wrap(piece: list[int]) -> list[int]:
        return [CLS, *piece, SEP]

    got = blocks([[10, 11, 12], [13, 14], [15]], 3, wrap, SEP)
    assert got == [[CLS, 10, 11, 12, SEP], [CLS, SEP, 13, 14, SEP], [CLS, SEP, 15, SEP]]
    assert sum(len(b) - 2 for b in got) == 3 + 2 + 1 + 2  # every token kept, plus the separators


def test_lines_keep_one_text_each_and_count_the_cut_ones() -> None:
    got, cut = lines([[10, 11, 12, 13], [], [14]], 2, lambda piece: [CLS, *piece, SEP])
    assert got == [[CLS, 10, 11, SEP], [CLS, 14, SEP]] and cut == 1


def test_masked_sums_and_scores_count_only_the_masked_tokens() -> None:
    labels = [[IGNORE, 5, IGNORE], [IGNORE, IGNORE, 7, 8]]
    logits = torch.zeros(2, 4, 10)
    logits[0, 1, 5] = 10.0  # right
    logits[1, 2, 1] = 10.0  # wrong (7 expected)
    logits[1, 3, 8] = 10.0  # right
    sums = masked_sums(labels, pad_left=False)([0, 1], {"logits": logits})  # as a ModelOutput reads
    assert sums["masked"].tolist() == [1.0, 2.0] and sums["correct"].tolist() == [1.0, 1.0]
    got = scores(sums)
    expected = float(torch.nn.functional.cross_entropy(logits[[0, 1, 1], [1, 2, 3]], torch.tensor([5, 7, 8])))
    assert got["loss"] == pytest.approx(expected, rel=1e-5)
    assert got["perplexity"] == pytest.approx(math.exp(expected), rel=1e-5)
    assert got["accuracy"] == pytest.approx(2 / 3) and got["masked_tokens"] == 3


@pytest.mark.parametrize("family", ["bert", "roberta", "distilbert"])
def test_the_head_on_masked_positions_only_gives_the_full_loss_and_gradients(family: str) -> None:
    from transformers import AutoConfig, AutoModelForMaskedLM

    from encoderkit.tasks import get_task

    sizes = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 37}
    if family == "distilbert":
        sizes = {"dim": 32, "n_layers": 1, "n_heads": 2, "hidden_dim": 37}
    config = AutoConfig.for_model(family, vocab_size=VOCAB, max_position_embeddings=64, **sizes)
    torch.manual_seed(0)
    model = AutoModelForMaskedLM.from_config(config).eval()  # no dropout: two forwards must agree
    ids = torch.randint(10, VOCAB, (3, 12))
    mask = torch.ones_like(ids)
    mask[2, 8:] = 0  # a padded row
    labels = torch.full_like(ids, IGNORE)
    labels[0, [1, 5]], labels[1, 3], labels[2, [0, 7]] = ids[0, [1, 5]], ids[1, 3], ids[2, [0, 7]]
    inputs = {"input_ids": ids, "attention_mask": mask}
    task = get_task("mlm")

    def loss_and_grads(loss: torch.Tensor) -> tuple[float, list[torch.Tensor]]:
        model.zero_grad()
        loss.backward()
        return float(loss.detach()), [p.grad.clone() for p in model.parameters() if p.grad is not None]

    full_logits = {"logits": model(**inputs).logits}
    full = loss_and_grads(task.loss(full_logits, {"labels": labels}, mask == 0))
    masked_only = loss_and_grads(task.forward_loss(model, inputs, {"labels": labels}))
    assert masked_only[0] == pytest.approx(full[0], rel=1e-5)
    assert len(masked_only[1]) == len(full[1])
    for a, b in zip(masked_only[1], full[1], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_fill_mask_examples_show_the_first_masked_token_in_its_context() -> None:
    import torch

    from encoderkit.tasks.mlm_examples import guesses, pick, table

    vocabulary = ["[PAD]", "[MASK]", "the", "film", "was", "good", "bad"]
    inputs = [[2, 3, 4, 1], [2, 3, 4, 5], [1, 3, 1, 6]]
    labels = [[-100, -100, -100, 5], [-100] * 4, [2, -100, 4, -100]]  # the second: nothing masked
    shown = pick(inputs, labels, vocabulary, "[MASK]", -100)
    assert [(e.sequence, e.position, e.context, e.true_token) for e in shown] == [
        (0, 3, "the film was [MASK]", "good"),
        (2, 0, "[MASK] film [MASK] bad", "the"),
    ]
    top_ids = torch.tensor([[5.0, 6.0], [0.0, 0.0], [2.0, 3.0]])  # float: as evaluation gathers them
    top_probs = torch.tensor([[0.7, 0.2], [0.0, 0.0], [0.4, 0.3]])
    rows = guesses(shown, top_ids, top_probs, vocabulary)
    assert rows[0]["guesses"] == [("good", pytest.approx(0.7)), ("bad", pytest.approx(0.2))]
    html = table(rows)
    assert (
        html.count("<tr>") == 3
        and "<strong>good</strong> 0.70" in html
        and "<strong>the</strong> 0.40" in html
    )
