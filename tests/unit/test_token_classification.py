"""Token classification: tag schemes, CoNLL reading, sub-token windows and best-window decoding."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
import torch

from encoderkit.data.conll import read_sentences
from encoderkit.errors import UserError
from encoderkit.features.collate import IGNORE
from encoderkit.modeling import load_tokenizer
from encoderkit.tasks.tag_schemes import BIOES, IOB1, IOB2, PLAIN, detect_scheme, entities, to_iob2
from encoderkit.tasks.token_classification import inputs, score
from encoderkit.tasks.token_features import build_windows, word_predictions, words_without_tokens
from encoderkit.tasks.token_report import confusion_table, entity_confusion

# --- tag schemes -------------------------------------------------------------------------------


def test_schemes_are_detected() -> None:
    assert detect_scheme([["I-PER", "I-PER", "O", "I-LOC"]]) == IOB1  # CoNLL-2003 originals
    assert detect_scheme([["B-PER", "I-PER", "O", "B-LOC"]]) == IOB2
    assert detect_scheme([["B-PER", "E-PER", "O", "S-LOC"]]) == BIOES
    assert detect_scheme([["NNP", "VBZ", "O"]]) == PLAIN


def test_iob1_and_bioes_convert_to_iob2_without_loss() -> None:
    # IOB1: B- only between two adjacent entities of one type.
    assert to_iob2(["I-PER", "I-PER", "B-PER", "O", "I-LOC"], IOB1) == (
        ["B-PER", "I-PER", "B-PER", "O", "B-LOC"],
        0,
    )
    assert to_iob2(["B-PER", "E-PER", "S-PER", "O", "S-LOC"], BIOES) == (
        ["B-PER", "I-PER", "B-PER", "O", "B-LOC"],
        0,
    )


def test_ill_formed_iob2_is_repaired_and_counted() -> None:
    assert to_iob2(["O", "I-PER", "I-PER", "B-LOC", "I-ORG"], IOB2) == (
        ["O", "B-PER", "I-PER", "B-LOC", "B-ORG"],
        2,
    )


def test_entities_are_spans_of_words() -> None:
    assert entities(["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-LOC"]) == [
        ("PER", 0, 2),
        ("LOC", 3, 4),
        ("LOC", 4, 6),
    ]


# --- reading -----------------------------------------------------------------------------------------

CONLL = """-DOCSTART- -X- O O

EU NNP I-NP I-ORG
rejects VBZ I-VP O
German JJ I-NP I-MISC

Peter NNP I-NP I-PER
 \t
"""


def test_conll_columns_blank_lines_and_docstart(tmp_path: Path) -> None:
    path = tmp_path / "eng.train.gz"
    path.write_bytes(gzip.compress(CONLL.encode()))
    sentences = read_sentences(str(path), None, None, need_tags=True)
    assert [s.tokens for s in sentences] == [["EU", "rejects", "German"], ["Peter"]]
    assert [s.tags for s in sentences] == [["I-ORG", "O", "I-MISC"], ["I-PER"]]
    assert sentences[0].where.endswith(":3") and sentences[1].where.endswith(":7")
    chunks = read_sentences(str(path), "0", "2", need_tags=True)
    assert chunks[0].tags == ["I-NP", "I-VP", "I-NP"]


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        (
            "cols.conll",
            "EU NNP I-ORG\nrejects O\n",
            r"cols.conll:2: 2 columns, the file's first token line has 3",
        ),
        ("len.jsonl", '{"tokens": ["a", "b"], "tags": ["O"]}\n', r"len.jsonl:1: 2 tokens but 1 tags"),
        ("empty.jsonl", '{"tokens": [], "tags": []}\n', r"empty.jsonl:1: empty sentence"),
        (
            "types.jsonl",
            '{"tokens": ["a", 3], "tags": ["O", "O"]}\n',
            r"types.jsonl:1: field 'tokens' holds 3",
        ),
        ("none.conll", "\n\n", r"none.conll: no sentences"),
    ],
)
def test_bad_token_files_name_file_and_line(tmp_path: Path, name: str, text: str, message: str) -> None:
    (tmp_path / name).write_text(text)
    with pytest.raises(UserError, match=message):
        read_sentences(str(tmp_path / name), None, None, need_tags=True)


# --- windows and decoding ----------------------------------------------------------------------------


def test_first_sub_token_carries_the_label(tiny_model: str) -> None:
    tokenizer = load_tokenizer(tiny_model)
    words = [["the", "unbelievably", "good", "film"]]
    features = build_windows(tokenizer, words, [[0, 1, 2, 3]], max_length=32, stride=8)
    ids, labels = features.word_ids[0], (features.labels or [[]])[0]
    assert len(ids) > 6, "the long word splits into several sub-tokens"
    firsts = [p for p, w in enumerate(ids) if w is not None and (p == 0 or ids[p - 1] != w)]
    assert [labels[p] for p in firsts] == [0, 1, 2, 3]
    assert all(labels[p] == IGNORE for p in range(len(ids)) if p not in firsts)
    every = build_windows(tokenizer, words, [[0, 1, 2, 3]], max_length=32, stride=8, label_all=True)
    assert [lab for lab, w in zip(every.labels[0], ids, strict=True) if w is not None] == [  # type: ignore[index]
        w for w in ids if w is not None
    ]


def test_long_sentences_are_windowed_and_every_word_predicted_once(tiny_model: str) -> None:
    tokenizer = load_tokenizer(tiny_model)
    sentence = [f"w{i % 7}" for i in range(60)]
    features = build_windows(tokenizer, [sentence], None, max_length=16, stride=4)
    assert len(features.input_ids) > 3 and set(features.sentence) == {0}
    assert words_without_tokens(features, [60]) == 0
    # A logit per position that names the word it belongs to and how central it is in its window:
    # decoding must pick, for each word, the window where it is most central.
    width = max(len(ids) for ids in features.input_ids)
    logits = torch.full((len(features.input_ids), width, 60), -10.0)
    for w, ids in enumerate(features.word_ids):
        for p, word in enumerate(ids):
            if word is not None:
                logits[w, p, word] = 5.0
    predicted = word_predictions(features, logits, [60])
    assert [label for label, _ in predicted[0]] == list(range(60)), "one prediction per word, its own"


@pytest.mark.parametrize(
    ("aggregation", "label", "score"), [("first", 1, 0.6), ("max", 2, 0.9), ("average", 2, 0.5)]
)
def test_a_word_of_several_sub_tokens_is_aggregated(
    tiny_model: str, aggregation: str, label: int, score: float
) -> None:
    """The HF pipeline's word-level choices: first sub-token, most confident one, mean probabilities."""
    tokenizer = load_tokenizer(tiny_model)
    features = build_windows(tokenizer, [["unbelievably"]], None, max_length=32, stride=8)
    positions = [p for p, w in enumerate(features.word_ids[0]) if w == 0]
    assert len(positions) >= 2
    probs = torch.full((1, len(features.word_ids[0]), 3), 1 / 3)
    probs[0, positions] = torch.tensor([0.1, 0.8, 0.1])  # middle sub-tokens: class 1 at 0.8
    probs[0, positions[0]] = torch.tensor([0.1, 0.6, 0.3])
    probs[0, positions[-1]] = torch.tensor([0.05, 0.05, 0.9])
    if aggregation == "average":  # two sub-tokens only, so the mean is easy to state
        positions = positions[:1] + positions[-1:]
        features.word_ids[0] = [w if p in positions else None for p, w in enumerate(features.word_ids[0])]
        probs[0, positions[0]] = torch.tensor([0.0, 0.4, 0.6])
        probs[0, positions[1]] = torch.tensor([0.2, 0.4, 0.4])
    ((got,),) = word_predictions(features, probs.log(), [1], aggregations=[aggregation])
    assert got[0] == label and got[1] == pytest.approx(score, abs=1e-6)


def test_words_without_sub_tokens_are_counted(tiny_model: str) -> None:
    tokenizer = load_tokenizer(tiny_model)
    features = build_windows(tokenizer, [["good", "\u200b", "film"]], None, max_length=16, stride=4)
    assert words_without_tokens(features, [3]) == 1
    logits = torch.zeros((1, len(features.input_ids[0]), 2))
    assert word_predictions(features, logits, [3])[0][1] == (-1, 0.0)  # predicted O by the caller


def test_raw_text_is_split_into_words_with_offsets() -> None:
    text = "Ada Lovelace met Charles Babbage in London, 1833."
    (words,) = inputs([{"text": text}])
    assert words.tokens[:3] == ["Ada", "Lovelace", "met"] and "," in words.tokens
    assert words.offsets is not None
    assert all(text[a:b] == token for token, (a, b) in zip(words.tokens, words.offsets, strict=True))
    with pytest.raises(UserError, match=r"inputs\[0\]: give exactly one"):
        inputs([{"text": "a", "tokens": ["a"]}])


def test_entity_metrics_are_strict_and_per_type() -> None:
    gold = [["B-PER", "I-PER", "O", "B-LOC"]]
    predicted = [["B-PER", "O", "O", "B-LOC"]]  # the person is cut short: not a match
    metrics = score(gold, predicted, entity_tags=True)
    assert metrics["precision"] == 0.5 and metrics["recall"] == 0.5 and metrics["f1"] == 0.5
    assert metrics["f1_LOC"] == 1.0 and metrics["f1_PER"] == 0.0
    assert metrics["accuracy"] == 0.75
    plain = score([["NN", "VB"]], [["NN", "NN"]], entity_tags=False)
    assert plain["accuracy"] == 0.5 and set(plain) == {"accuracy", "f1"}


def test_entity_confusion_counts_types_missed_and_spurious() -> None:
    gold = [["B-PER", "I-PER", "O", "B-LOC", "O"], ["B-ORG", "O"]]
    predicted = [["B-PER", "I-PER", "O", "B-ORG", "B-LOC"], ["B-ORG", "O"]]
    counts = entity_confusion(gold, predicted)
    assert counts == {("PER", "PER"): 1, ("LOC", "ORG"): 1, ("ORG", "ORG"): 1, ("spurious", "LOC"): 1}
    cut_short = entity_confusion([["B-PER", "I-PER"]], [["B-PER", "O"]])
    assert cut_short == {("PER", "missed"): 1, ("spurious", "PER"): 1}  # a wrong span is both
    table = confusion_table(counts)
    assert table.count("<tr>") == 5 and "<th>missed</th>" in table  # header, LOC, ORG, PER, spurious


def test_a_sentencepiece_style_tokenizer_aligns_every_word() -> None:
    """Unigram + Metaspace (XLM-R, mT5 style): each word starts with `▁`, every word gets its label
    on its first piece, and decoding gives one prediction per word."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    corpus = ["ada lives in paris", "bob visited rome yesterday", "carla loves kyoto"] * 20
    tok.train_from_iterator(
        corpus, trainers.UnigramTrainer(vocab_size=60, special_tokens=["<pad>", "<unk>"], unk_token="<unk>")
    )
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>")
    words = [["ada", "visited", "kyoto", "yesterday"]]
    features = build_windows(fast, words, [[1, 0, 2, 0]], max_length=32, stride=8)
    ids, labels = features.word_ids[0], (features.labels or [[]])[0]
    pieces = fast.convert_ids_to_tokens(features.input_ids[0])
    firsts = [p for p, w in enumerate(ids) if w is not None and (p == 0 or ids[p - 1] != w)]
    assert len(firsts) == 4 and all(pieces[p].startswith("▁") for p in firsts)
    assert [labels[p] for p in firsts] == [1, 0, 2, 0]
    logits = torch.zeros((1, len(ids), 3))
    assert len(word_predictions(features, logits, [4])[0]) == 4
