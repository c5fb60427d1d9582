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


def word_predictions(
    features: TokenFeatures, logits: torch.Tensor, lengths: Sequence[int], pad_left: bool = False
) -> list[list[tuple[int, float]]]:
    """Per sentence, per word: (class id, probability), from its best window.

    `logits` [W, L, C] are the windows' outputs padded to L (on the left with `pad_left`). A
    word's best window is the one where its first sub-token is farthest from both window edges;
    a word in no window gets (-1, 0.0): the caller predicts `O` for it.
    """
    probs = torch.softmax(logits.float(), dim=-1)
    best: list[list[tuple[float, int, float]]] = [[(-1.0, -1, 0.0)] * n for n in lengths]
    for w, (ids, s) in enumerate(zip(features.word_ids, features.sentence, strict=True)):
        shift = logits.shape[1] - len(ids) if pad_left else 0
        content = [p for p, word in enumerate(ids) if word is not None]
        if not content:
            continue
        low, high = content[0], content[-1]
        previous = None
        for p, word in enumerate(ids):
            if word is None or word == previous:
                previous = word
                continue
            previous = word
            context = float(min(p - low, high - p))
            if context > best[s][word][0]:
                score, label = probs[w, p + shift].max(-1)
                best[s][word] = (context, int(label), float(score))
    return [[(label, score) for _, label, score in row] for row in best]
