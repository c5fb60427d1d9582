"""Masked-language-model inputs, pure: sequences of token ids, and BERT's masking of them.

Sequences: texts concatenated (the separator token between them) and cut into blocks of the full
length, so no compute goes to padding (HF `run_mlm.py`'s `group_texts`, without dropping the
tail), or one text per sequence (`--line-by-line`).

Masking (Devlin et al. 2019): each token is chosen with probability p (with whole-word masking:
each word, and then all its sub-tokens); of the chosen, 80% become the mask token, 10% a random
token, 10% stay. Special tokens and padding are never chosen. The caller seeds the generator per
feature (seed, epoch, feature index), so a feature's masks do not depend on the batch it lands in,
on the number of processes or on a resume.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from encoderkit.features.collate import IGNORE  # the label of an unmasked position: no loss

__all__ = ["EVAL_SEED", "IGNORE", "Masking", "blocks", "lines", "mask_features", "masking_for"]
EVAL_SEED = 0  # the eval masking: the same positions at every evaluation and in every run


@dataclass(frozen=True, eq=False)
class Masking:
    """How tokens are masked, for one tokenizer. `special` and `continues` are indexed by token id."""

    probability: float
    mask_id: int
    vocab_size: int
    special: np.ndarray = field(repr=False)  # [vocab] bool: never masked
    continues: np.ndarray | None = field(default=None, repr=False)  # [vocab] bool; None: no whole words

    def apply(self, ids: Sequence[int], rng: np.random.Generator) -> tuple[list[int], list[int]]:
        """(inputs with masks applied, labels: the original id where masked, else IGNORE)."""
        tokens = np.asarray(ids, dtype=np.int64)
        maskable = ~self.special[tokens]
        starts = maskable.copy()
        if self.continues is not None:  # a continuation after a maskable token joins its word
            previous = np.concatenate([[False], maskable[:-1]])
            starts &= ~(self.continues[tokens] & previous)
        words = int(starts.sum())
        if words == 0:
            return list(ids), [IGNORE] * len(tokens)
        word_of = np.cumsum(starts) - 1  # the word each token belongs to (specials: ignored below)
        chosen = maskable & (rng.random(words) < self.probability)[np.maximum(word_of, 0)]
        roll = rng.random(len(tokens))
        replaced = np.where(roll < 0.8, self.mask_id, tokens)
        replaced = np.where(
            (roll >= 0.8) & (roll < 0.9), rng.integers(0, self.vocab_size, len(tokens)), replaced
        )
        inputs = np.where(chosen, replaced, tokens)
        labels = np.where(chosen, tokens, IGNORE)
        return inputs.tolist(), labels.tolist()


def masking_for(tokenizer: Any, probability: float, whole_words: bool) -> Masking:
    """The Masking of `tokenizer`: its special tokens, and (whole words) which tokens continue a word."""
    size = len(tokenizer)
    special = np.zeros(size, dtype=bool)
    special[[i for i in tokenizer.all_special_ids if i < size]] = True
    continues = None
    if whole_words:
        continues = np.zeros(size, dtype=bool)
        continues[[i for i in continuation_ids(tokenizer) if i < size]] = True
    return Masking(probability, int(tokenizer.mask_token_id), size, special, continues)


def continuation_ids(tokenizer: Any) -> list[int]:
    """Ids of the tokens that continue the word before them.

    WordPiece marks continuations (`##ing`); byte-level BPE (`Ġ`) and SentencePiece (`▁`) mark
    word starts instead, so there every other non-special token is a continuation.
    """
    model = json.loads(tokenizer.backend_tokenizer.to_str()).get("model", {})
    vocab = tokenizer.get_vocab()
    if model.get("type") == "WordPiece":
        prefix = model.get("continuing_subword_prefix") or "##"
        return sorted(i for token, i in vocab.items() if token.startswith(prefix))
    marker = "Ġ" if any(token.startswith("Ġ") for token in vocab) else "▁"
    special = set(tokenizer.all_special_ids)
    return sorted(i for token, i in vocab.items() if not token.startswith(marker) and i not in special)


def blocks(
    docs: Sequence[list[int]], content: int, wrap: Callable[[list[int]], list[int]], sep: int
) -> list[list[int]]:
    """Documents joined by `sep` and cut into `content`-token pieces, each wrapped in the special
    tokens (`wrap`: [CLS] piece [SEP] for BERT); only the last piece may be shorter."""
    stream: list[int] = []
    for k, doc in enumerate(docs):
        stream.extend([sep, *doc] if k else doc)
    return [wrap(stream[i : i + content]) for i in range(0, len(stream), content)]


def lines(
    docs: Sequence[list[int]], content: int, wrap: Callable[[list[int]], list[int]]
) -> tuple[list[list[int]], int]:
    """One sequence per document, cut to `content` tokens; (sequences, how many were cut)."""
    return [wrap(doc[:content]) for doc in docs if doc], sum(len(doc) > content for doc in docs)


def mask_features(
    masking: Masking, input_ids: Sequence[list[int]], indices: Sequence[int], key: Sequence[int]
) -> tuple[list[list[int]], list[list[int]]]:
    """(inputs, labels) of the features `indices`, feature i masked by a generator seeded with
    (*key, i): the same masks whatever batch, process or resume it comes in."""
    pairs = [masking.apply(input_ids[i], np.random.default_rng([*key, i])) for i in indices]
    return [p[0] for p in pairs], [p[1] for p in pairs]
