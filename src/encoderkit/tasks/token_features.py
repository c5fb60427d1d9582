"""Words -> sub-token windows with word labels, and window logits -> one tag per word.

The pure hard parts of token classification. A sentence longer than the window is cut into
overlapping windows (`stride` tokens shared), so no word is lost to truncation; at decoding every
word takes its prediction from the window where it has the most context on both sides. A word's
label sits on its first sub-token (or on all of them with `label_all`); other positions get
IGNORE, which neither the loss nor the metrics read. A word that tokenizes to nothing (a
zero-width or control character) has no sub-token: it is counted and predicted `O`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from encoderkit.features.collate import IGNORE
from encoderkit.features.encoded import Encoded


@dataclass
class TokenFeatures:
    """Windows over sentences. `word_ids[w][p]`: the word of position p of window w (None: special)."""

    input_ids: list[list[int]]
    token_type_ids: list[list[int]] | None
    word_ids: list[list[int | None]]
    sentence: list[int]  # window -> its sentence
    labels: list[list[int]] | None

    def encoded(self) -> Encoded:
        targets = {"labels": self.labels} if self.labels is not None else {}
        return Encoded(self.input_ids, self.token_type_ids, targets)


def words_tokenizer(tokenizer: Any) -> Any:
    """The tokenizer for pre-split words. A byte-level BPE (RoBERTa, GPT-2 style) marks a word
    that follows a space with `Ġ`; fed words one by one without `add_prefix_space`, every word
    would be tokenized as if it began the text ("lives" -> "liv", "es" instead of "Ġlives"), a
    tokenization the model never saw in pretraining. So it is reloaded with the prefix space, as
    the HF `run_ner.py` does for these models, and saved that way with the model."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or "ByteLevel(add_prefix_space=False" not in str(backend.pre_tokenizer):
        return tokenizer
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tokenizer.name_or_path, add_prefix_space=True)


def build_windows(
    tokenizer: Any,
    sentences: Sequence[Sequence[str]],
    tag_ids: Sequence[Sequence[int]] | None,
    max_length: int,
    stride: int,
    label_all: bool = False,
) -> TokenFeatures:
    """Tokenize pre-split sentences into windows of at most `max_length` tokens."""
    enc = tokenizer(
        [list(s) for s in sentences],
        is_split_into_words=True,
        truncation=True,
        max_length=max_length,
        stride=min(stride, max_length // 2),
        return_overflowing_tokens=True,
        return_attention_mask=False,
    )
    mapping = list(enc["overflow_to_sample_mapping"])
    word_ids = [enc.word_ids(w) for w in range(len(enc["input_ids"]))]
    labels = None
    if tag_ids is not None:
        labels = [
            _window_labels(ids, tag_ids[s], label_all) for ids, s in zip(word_ids, mapping, strict=True)
        ]
    return TokenFeatures(enc["input_ids"], enc.get("token_type_ids"), word_ids, mapping, labels)


def _window_labels(word_ids: list[int | None], tags: Sequence[int], label_all: bool) -> list[int]:
    labels, previous = [], None
    for word in word_ids:
        first = word is not None and word != previous
        labels.append(tags[word] if word is not None and (first or label_all) else IGNORE)
        previous = word
    return labels


def words_without_tokens(features: TokenFeatures, lengths: Sequence[int]) -> int:
    """How many words of the sentences appear in no window (they tokenize to nothing)."""
    seen: dict[int, set[int]] = {}
    for ids, s in zip(features.word_ids, features.sentence, strict=True):
        seen.setdefault(s, set()).update(w for w in ids if w is not None)
    return sum(n - len(seen.get(s, ())) for s, n in enumerate(lengths))


AGGREGATIONS = ("first", "max", "average")


def word_predictions(
    features: TokenFeatures,
    logits: torch.Tensor,
    lengths: Sequence[int],
    pad_left: bool = False,
    aggregations: Sequence[str] | None = None,
) -> list[list[tuple[int, float]]]:
    """Per sentence, per word: (class id, probability), from its best window.

    `logits` [W, L, C] are the windows' outputs padded to L (on the left with `pad_left`). A
    word's best window is the one where its first sub-token is farthest from both window edges;
    a word in no window gets (-1, 0.0): the caller predicts `O` for it. Within that window the
    word's sub-tokens give one prediction by its sentence's aggregation (default `first` for
    all), the word-level choices of the HF
    pipeline: `first` (its first sub-token: the one labelled in training), `max` (the sub-token
    with the most confident prediction) or `average` (the mean of their probabilities).
    """
    probs = torch.softmax(logits.float(), dim=-1)
    best: list[list[tuple[float, int, list[int]]]] = [[(-1.0, -1, [])] * n for n in lengths]
    for w, (ids, s) in enumerate(zip(features.word_ids, features.sentence, strict=True)):
        shift = logits.shape[1] - len(ids) if pad_left else 0
        spans: dict[int, list[int]] = {}
        for p, word in enumerate(ids):
            if word is not None:
                spans.setdefault(word, []).append(p + shift)
        if not spans:
            continue
        low, high = min(p[0] for p in spans.values()), max(p[-1] for p in spans.values())
        for word, positions in spans.items():
            context = float(min(positions[0] - low, high - positions[0]))
            if context > best[s][word][0]:
                best[s][word] = (context, w, positions)
    chosen = aggregations or ["first"] * len(best)
    return [
        [_aggregate(probs, w, positions, how) for _, w, positions in row]
        for row, how in zip(best, chosen, strict=True)
    ]


def _aggregate(probs: torch.Tensor, window: int, positions: list[int], aggregation: str) -> tuple[int, float]:
    if window < 0:
        return -1, 0.0
    rows = probs[window, positions]  # [sub-tokens, C]
    if aggregation == "average":
        row = rows.mean(0)
    elif aggregation == "max":
        row = rows[int(rows.max(-1).values.argmax())]
    else:
        row = rows[0]
    score, label = row.max(-1)
    return int(label), float(score)
