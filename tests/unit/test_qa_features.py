"""QA windows and labels: `label_window` on hand-built offset maps, `build_features` on tokenizers
trained here (WordPiece, left-padding, Korean, byte-level BPE) and a property test."""

from __future__ import annotations

import functools
import random
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from encoderkit.data.qa_types import QAExample
from encoderkit.errors import UserError
from encoderkit.tasks.qa_features import (
    answer_span,
    build_features,
    covered_span,
    feature_stats,
    label_window,
    truncate_question,
)

FILLER = [
    "river",
    "stone",
    "cloud",
    "forest",
    "lantern",
    "harbor",
    "meadow",
    "copper",
    "violet",
    "engine",
    "signal",
    "garden",
    "mirror",
    "thunder",
    "willow",
    "canyon",
    "ember",
    "falcon",
    "glacier",
    "island",
    "jungle",
    "kettle",
    "lemon",
    "marble",
]
EXTRA = ["zebra", "quokka", "what", "which", "where", "is", "the", "code", "name", "of", "words", "answer"]

KOREAN_SENTENCES = [
    "대한민국의 수도는 서울 이다.",
    "서울은 한강을 끼고 있는 도시 이다.",
    "부산은 대한민국 제2의 도시 이다.",
    "세종대왕 은 훈민정음 을 창제 하였다.",
    "경복궁 은 조선 의 법궁 이다.",
    "제주도 는 화산섬 으로 유명 하다.",
]


def _wordpiece(
    texts: list[str],
    padding_side: str = "right",
    type_ids: bool = True,
    lowercase: bool = True,
    pair: str = "[CLS] $A [SEP] $B:1 [SEP]:1",
):
    """A BERT-like WordPiece tokenizer trained on `texts`: [CLS] A [SEP] B [SEP] with type ids."""
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=lowercase, strip_accents=False)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=2000, special_tokens=specials))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair=pair,
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    names = ["input_ids", "token_type_ids", "attention_mask"] if type_ids else ["input_ids", "attention_mask"]
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        mask_token="[MASK]",
        padding_side=padding_side,
        model_input_names=names,
    )


@functools.cache
def english_tokenizer(padding_side: str = "right"):
    return _wordpiece([" ".join(FILLER + EXTRA)] * 5, padding_side=padding_side)


@functools.cache
def bpe_tokenizer():
    """RoBERTa-like byte-level BPE, <s> A </s></s> B </s>, with untrimmed (leading-space) offsets."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator([bpe_context()] * 5, trainer)
    bos, eos = tok.token_to_id("<s>"), tok.token_to_id("</s>")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", bos), ("</s>", eos)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        cls_token="<s>",
        sep_token="</s>",
        pad_token="<pad>",
        mask_token="<mask>",
    )


def bpe_context() -> str:
    return (
        "The quick brown fox jumps over the lazy dog. Paris is the capital of France, and Berlin "
        "is the capital of Germany. Rivers run to the sea;  the sea   does not fill. "
    ) * 3


def example_with(context: str, answer: str, occurrence: int = 0, qid: str = "q1", question: str = "what is"):
    """An example whose answer is the `occurrence`-th occurrence of `answer` in `context`."""
    start = -1
    for _ in range(occurrence + 1):
        start = context.index(answer, start + 1)
    return QAExample(id=qid, question=question, context=context, answer_texts=[answer], answer_starts=[start])


def labelled_texts(features, examples) -> list[str]:
    """The context text of every window whose label is not the CLS index."""
    out = []
    for f, ex_i in enumerate(features.example_index):
        start, end = features.start_positions[f], features.end_positions[f]
        if start != features.cls_index[f]:
            offsets = features.context_offsets[f]
            out.append(examples[ex_i].context[offsets[start][0] : offsets[end][1]])
    return out


def long_english_context(n_words: int = 100, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [rng.choice(FILLER) for _ in range(n_words)]


def contains(seq: list[int], sub: list[int]) -> bool:
    return any(seq[i : i + len(sub)] == sub for i in range(len(seq) - len(sub) + 1))


# ---------------------------------------------------------------- label_window on hand-built maps

# [CLS] q q [SEP] river(10,15) stone(16,21) cl(22,24) ##oud(24,27) [SEP]
WINDOW = [None, None, None, None, (10, 15), (16, 21), (22, 24), (24, 27), None]
CLS = 0


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ((10, 15), (4, 4)),  # first context token of the window
        ((24, 27), (7, 7)),  # last context token of the window
        ((16, 27), (5, 7)),  # multi-token answer
        ((22, 27), (6, 7)),  # one word, two subword tokens
        ((15, 21), (5, 5)),  # start_char in the whitespace before "stone": first token after it
        ((10, 16), (4, 4)),  # end_char - 1 in whitespace: the last token before it
        ((11, 13), (4, 4)),  # answer inside one token: the containing token
    ],
)
def test_label_window_spans(answer, expected):
    assert label_window(WINDOW, *answer, cls_index=CLS) == expected


@pytest.mark.parametrize(
    "answer",
    [
        (5, 15),  # starts before the window's first context token: crosses the left edge
        (22, 30),  # ends after the last context token: crosses the right edge / cut by truncation
        (0, 8),  # entirely before the window
        (40, 45),  # entirely after the window
        (12, 12),  # empty answer
        (15, 16),  # only the whitespace between two tokens
    ],
)
def test_label_window_answer_not_in_window_gives_cls(answer):
    assert label_window(WINDOW, *answer, cls_index=CLS) == (CLS, CLS)


def test_label_window_answer_cut_mid_word_by_truncation():
    # the window ends after "cl" of "cloud": truncation split the word, the answer "cloud" is cut
    window = [None, None, (10, 15), (16, 21), (22, 24), None]
    assert label_window(window, 22, 27, cls_index=CLS) == (CLS, CLS)
    assert label_window(window, 16, 21, cls_index=CLS) == (3, 3)


def test_label_window_without_context_tokens_gives_cls():
    assert label_window([None, None, None], 0, 3, cls_index=2) == (2, 2)


def test_label_window_cjk_per_character_offsets():
    context = "北京是中国的首都"
    window = [None, None, None] + [(i, i + 1) for i in range(len(context))] + [None]
    start = context.index("中国")
    s, e = label_window(window, start, start + 2, cls_index=CLS)
    assert (s, e) == (3 + start, 3 + start + 1)
    assert context[window[s][0] : window[e][1]] == "中国"


def test_label_window_tokens_sharing_one_char_span():
    # byte-level BPE can split one character into several tokens with the same span
    window = [None, (0, 3), (4, 5), (4, 5), (4, 5), (6, 9), None]
    assert label_window(window, 4, 5, cls_index=CLS) == (2, 4)


def test_label_window_ignores_empty_spans():
    window = [None, (0, 3), (3, 3), (4, 8), None]
    assert label_window(window, 3, 8, cls_index=CLS) == (3, 3)


def test_answer_span_uses_first_answer_and_trims_whitespace():
    example = QAExample("q", "?", "ab  cd ef", answer_texts=[" cd ", "ef"], answer_starts=[3, 7])
    assert answer_span(example) == (4, 6)
    assert answer_span(QAExample("q", "?", "ab")) is None


@pytest.mark.parametrize(
    ("span", "expected"),
    [
        ((0, 2), (1, 2)),  # a leading character no token covers (a zero-width space) is trimmed
        ((1, 9), (1, 8)),  # so is a trailing one
        ((2, 4), (2, 4)),  # an answer inside a token keeps its own bounds
        ((6, 7), None),  # only uncovered characters: no token can hold it
    ],
)
def test_covered_span_trims_characters_no_token_covers(span, expected):
    tokens = [(1, 6), (7, 8)]  # "\u200briver\u200bx\u200b": the normalizer drops the U+200B
    assert covered_span(span, tokens) == expected


def test_answer_starting_with_a_dropped_character_is_labelled():
    # Found by tests/unit/test_fuzz_loaders.py: "\u200b" has no token, so the answer seemed to start
    # before the only window's first token and was labelled "no answer".
    example = QAExample("q", "what is", "\u200briver stone", answer_texts=["\u200briver"], answer_starts=[0])
    features = build_features(english_tokenizer(), [example], max_length=24, doc_stride=4, max_query_length=4)
    assert labelled_texts(features, [example]) == ["river"]
    assert feature_stats([example], features).answers_lost_to_truncation == 0


# ---------------------------------------------------------------- build_features, WordPiece


def test_windows_overlap_by_stride_and_labels_decode_to_answer():
    tokenizer = english_tokenizer()
    words = long_english_context(100)
    words[27:29] = ["zebra", "quokka"]  # token 27 of the context: in window 1 only (room 25, step 17)
    context = " ".join(words)
    examples = [example_with(context, "zebra quokka")]
    features = build_features(tokenizer, examples, max_length=32, doc_stride=8, max_query_length=8)

    assert len(features) >= 5
    for w in range(len(features) - 1):
        left = [o for o in features.context_offsets[w] if o is not None]
        right = [o for o in features.context_offsets[w + 1] if o is not None]
        assert left[-8:] == right[:8]
        assert left[-9] not in right
    assert labelled_texts(features, examples) == ["zebra quokka"]
    answer_ids = tokenizer("zebra quokka", add_special_tokens=False)["input_ids"]
    holding = [f for f, ids in enumerate(features.input_ids) if contains(ids, answer_ids)]
    labelled = [f for f in range(len(features)) if features.start_positions[f] != features.cls_index[f]]
    assert len(holding) == 1
    assert labelled == holding


def test_answer_in_the_overlap_is_labelled_in_both_windows():
    tokenizer = english_tokenizer()
    words = long_english_context(60, seed=1)
    words[20] = "zebra"  # context tokens 17..24 are shared by windows 0 and 1
    examples = [example_with(" ".join(words), "zebra")]
    features = build_features(tokenizer, examples, max_length=32, doc_stride=8, max_query_length=8)
    labelled = [f for f in range(len(features)) if features.start_positions[f] != features.cls_index[f]]
    assert labelled == [0, 1]
    assert labelled_texts(features, examples) == ["zebra", "zebra"]


def test_first_answer_is_used_and_unanswerable_examples_get_cls():
    tokenizer = english_tokenizer()
    context = "river stone zebra cloud quokka forest"
    examples = [
        QAExample("a", "what", context, answer_texts=["quokka", "zebra"], answer_starts=[24, 12]),
        QAExample("b", "what", context),
    ]
    features = build_features(tokenizer, examples, max_length=32, doc_stride=8, max_query_length=8)
    assert features.example_index == [0, 1]
    assert labelled_texts(features, examples) == ["quokka"]
    assert features.start_positions[1] == features.end_positions[1] == features.cls_index[1] == 0


def test_without_labels_and_token_type_ids():
    context = "river stone zebra cloud"
    examples = [example_with(context, "zebra")]
    features = build_features(english_tokenizer(), examples, with_labels=False)
    assert features.start_positions is None and features.end_positions is None
    assert features.token_type_ids == [[0] * 4 + [1] * 5]  # [CLS] what is [SEP] | 4 words [SEP]
    no_type_ids = _wordpiece([" ".join(FILLER + EXTRA)], type_ids=False)
    assert build_features(no_type_ids, examples).token_type_ids is None


def test_offsets_only_for_context_tokens_and_cls_index():
    examples = [example_with("river stone zebra", "zebra", question="  which code")]
    features = build_features(english_tokenizer(), examples)
    assert features.context_offsets[0] == [None, None, None, None, (0, 5), (6, 11), (12, 17), None]
    assert features.cls_index == [0]
    assert features.input_ids[0][0] == english_tokenizer().cls_token_id


def test_cls_token_found_where_the_template_puts_it():
    # XLNet-style template: the CLS token comes last
    tokenizer = _wordpiece([" ".join(FILLER + EXTRA)], pair="$A [SEP] $B:1 [SEP]:1 [CLS]:2")
    examples = [example_with("river stone zebra", "zebra"), QAExample("n", "what is", "river stone")]
    features = build_features(tokenizer, examples, max_length=16, doc_stride=4, max_query_length=4)
    assert features.cls_index == [7, 6]
    assert [ids[-1] for ids in features.input_ids] == [tokenizer.cls_token_id] * 2
    assert features.start_positions == [5, 6]


def test_pad_to_max_length_pads_on_the_right():
    tokenizer = english_tokenizer()
    example = example_with("river stone zebra", "zebra")
    features = build_features(
        tokenizer, [example], max_length=16, doc_stride=4, max_query_length=4, pad_to_max_length=True
    )
    assert len(features.input_ids[0]) == 16
    assert features.input_ids[0][-1] == tokenizer.pad_token_id
    assert features.attention_mask[0] == [1] * 8 + [0] * 8
    assert features.context_offsets[0][8:] == [None] * 8
    assert labelled_texts(features, [example]) == ["zebra"]


def test_long_question_is_cut_to_max_query_length():
    tokenizer = english_tokenizer()
    question = " ".join(FILLER[:20])
    cut = truncate_question(tokenizer, "   " + question, 6)
    assert cut == " ".join(FILLER[:6])
    examples = [QAExample("q", question, "river stone zebra", ["zebra"], [12])]
    features = build_features(tokenizer, examples, max_length=24, doc_stride=4, max_query_length=6)
    question_ids = tokenizer(question, add_special_tokens=False)["input_ids"]
    assert features.input_ids[0][1:7] == question_ids[:6]
    assert features.input_ids[0][7] == tokenizer.sep_token_id
    assert labelled_texts(features, examples) == ["zebra"]


def test_truncate_question_cuts_inside_a_split_word():
    # "quokkazebra" is not in the vocabulary: several word pieces; the cut still fits
    tokenizer = english_tokenizer()
    question = "quokkazebra " * 5
    n_tokens = len(tokenizer(question, add_special_tokens=False)["input_ids"])
    for limit in range(1, n_tokens):
        cut = truncate_question(tokenizer, question, limit)
        assert 0 < len(tokenizer(cut, add_special_tokens=False)["input_ids"]) <= limit
        assert question.startswith(cut)


def test_bad_lengths_and_slow_tokenizer_raise_user_error():
    examples = [example_with("river stone zebra", "zebra")]
    with pytest.raises(UserError, match="doc_stride"):
        build_features(english_tokenizer(), examples, max_length=32, doc_stride=21, max_query_length=8)
    build_features(english_tokenizer(), examples, max_length=32, doc_stride=20, max_query_length=8)  # room 21
    with pytest.raises(UserError, match="fast tokenizer"):
        build_features(SimpleNamespace(is_fast=False), examples)


# ---------------------------------------------------------------- left padding: context first


def test_left_padding_tokenizer_puts_context_first_and_labels_correctly():
    tokenizer = english_tokenizer("left")
    words = long_english_context(60, seed=2)
    words[45:47] = ["zebra", "quokka"]
    examples = [example_with(" ".join(words), "zebra quokka")]
    features = build_features(
        tokenizer, examples, max_length=32, doc_stride=8, max_query_length=8, pad_to_max_length=True
    )

    assert len(features) >= 3
    for f in range(len(features)):
        offsets = features.context_offsets[f]
        first_context = next(k for k, o in enumerate(offsets) if o is not None)
        assert features.input_ids[f][features.cls_index[f]] == tokenizer.cls_token_id
        assert features.input_ids[f][first_context - 1] == tokenizer.cls_token_id  # [CLS] context ...
        assert len(features.input_ids[f]) == 32
    last = len(features) - 1
    assert features.input_ids[last][0] == tokenizer.pad_token_id  # the short last window, padded on the left
    assert features.cls_index[last] > 0
    assert labelled_texts(features, examples) == ["zebra quokka"]


# ---------------------------------------------------------------- Korean (Hangul)


def test_korean_context_labels_decode_to_answer():
    tokenizer = _wordpiece(KOREAN_SENTENCES * 5 + ["누가 무엇을 어디 언제"], lowercase=False)
    context = " ".join(KOREAN_SENTENCES * 3)
    examples = [
        example_with(context, "훈민정음", occurrence=2, qid="a", question="세종대왕 은 무엇을"),
        example_with(context, "화산섬", occurrence=0, qid="b", question="제주도 는 무엇"),
        example_with(context, "서울", occurrence=1, qid="c", question="수도 는 어디"),  # inside "서울은"
    ]
    features = build_features(tokenizer, examples, max_length=40, doc_stride=10, max_query_length=8)
    assert len(features) > len(examples)
    texts = {
        examples[features.example_index[f]].id: []
        for f in range(len(features))
        if features.start_positions[f] != features.cls_index[f]
    }
    for f, ex_i in enumerate(features.example_index):
        if features.start_positions[f] != features.cls_index[f]:
            offsets = features.context_offsets[f]
            span = (offsets[features.start_positions[f]][0], offsets[features.end_positions[f]][1])
            texts[examples[ex_i].id].append(span)
    assert set(texts) == {"a", "b", "c"}
    for ex in examples:
        start, end = answer_span(ex)
        for s, e in texts[ex.id]:
            if ex.id == "c":  # the answer is part of a word: the labelled tokens cover it
                assert s <= start and end <= e and " " not in context[s:e]
            else:
                assert context[s:e] == ex.answer_texts[0]


# ---------------------------------------------------------------- byte-level BPE (RoBERTa-like)


def test_bpe_leading_space_offsets_are_trimmed_and_labels_decode():
    tokenizer = bpe_tokenizer()
    context = bpe_context()
    raw = tokenizer(context, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    assert any(context[s].isspace() for s, e in raw if e > s)  # the tokenizer does give leading spaces

    examples = [
        example_with(context, "Berlin", occurrence=2),
        example_with(context, "the capital of France", occurrence=1, qid="q2"),
        example_with(context, "does not fill", occurrence=0, qid="q3"),
    ]
    features = build_features(tokenizer, examples, max_length=40, doc_stride=10, max_query_length=8)
    assert len(features) > len(examples)
    assert features.token_type_ids is None
    for f in range(len(features)):
        assert features.input_ids[f][features.cls_index[f]] == tokenizer.cls_token_id
        for span in features.context_offsets[f]:
            if span is not None:
                text = examples[features.example_index[f]].context[span[0] : span[1]]
                assert text and text == text.strip()
    texts = labelled_texts(features, examples)
    assert set(texts) == {"Berlin", "the capital of France", "does not fill"}


# ---------------------------------------------------------------- feature_stats


def test_feature_stats_counts_windows_and_lost_answers():
    tokenizer = english_tokenizer()
    words = long_english_context(60, seed=3)
    long_answer = " ".join(words[5:40])  # 35 tokens: longer than a window's 25 context tokens
    examples = [
        example_with(" ".join(words), long_answer, qid="long"),
        example_with("river stone zebra", "zebra", qid="short"),
        QAExample("none", "what is", "river stone"),
    ]
    features = build_features(tokenizer, examples, max_length=32, doc_stride=8, max_query_length=8)
    stats = feature_stats(examples, features)
    long_windows = features.example_index.count(0)
    assert long_windows >= 3
    assert stats.examples == 3
    assert stats.features == long_windows + 2
    assert stats.windows_per_example_max == long_windows
    assert stats.windows_per_example_mean == pytest.approx((long_windows + 2) / 3)
    assert stats.no_answer_windows_share == pytest.approx((long_windows + 1) / (long_windows + 2))
    assert stats.answers_lost_to_truncation == 1


# ---------------------------------------------------------------- property: labels decode to answers

SEPARATORS = [" ", "  ", ", ", " . ", "\n"]


@st.composite
def contexts_with_answers(draw):
    words = draw(st.lists(st.sampled_from(FILLER + EXTRA), min_size=1, max_size=60))
    seps = draw(st.lists(st.sampled_from(SEPARATORS), min_size=len(words), max_size=len(words)))
    first = draw(st.integers(0, len(words) - 1))
    last = draw(st.integers(first, min(len(words) - 1, first + 6)))
    pieces, starts, ends = [], [], []
    position = 0
    for word, sep in zip(words, seps, strict=True):
        starts.append(position)
        ends.append(position + len(word))
        pieces.append(word + sep)
        position += len(word) + len(sep)
    context = "".join(pieces)
    start, end = starts[first], ends[last]
    return QAExample("p", "which words", context, [context[start:end]], [start])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(contexts_with_answers())
def test_property_labels_decode_to_the_answer(example):
    tokenizer = english_tokenizer()
    doc_stride, max_length = 6, 24
    features = build_features(
        tokenizer, [example], max_length=max_length, doc_stride=doc_stride, max_query_length=4
    )
    answer = example.answer_texts[0]
    texts = labelled_texts(features, [example])
    assert all(text.strip() == answer.strip() for text in texts)

    answer_tokens = len(tokenizer(answer, add_special_tokens=False)["input_ids"])
    context_tokens = len(tokenizer(example.context, add_special_tokens=False)["input_ids"])
    room = max_length - 2 - 3  # "which words" and [CLS] [SEP] [SEP]
    if answer_tokens <= doc_stride + 1 or context_tokens <= room:  # then some window holds it whole
        assert texts
