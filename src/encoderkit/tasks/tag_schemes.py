"""Tag schemes of token-classification data: detect one, convert to IOB2, repair what seqeval would.

IOB2 is the one scheme used inside encoderkit (and by seqeval's strict mode): every entity
starts with `B-X`, continues with `I-X`. IOB1 (the CoNLL-2003 originals) starts entities with
`I-X` and uses `B-X` only between two adjacent entities of one type; BIOES/IOBES adds `E-X`
(end) and `S-X` (single). Tags without a prefix (POS, chunks without IOB) are `plain`: no
entities, scored by accuracy.
"""

from __future__ import annotations

from collections.abc import Sequence

IOB1, IOB2, BIOES, PLAIN = "IOB1", "IOB2", "BIOES", "plain"


def split_tag(tag: str) -> tuple[str, str | None]:
    """`B-PER` -> ("B", "PER"); `O` -> ("O", None); a tag without a prefix -> ("", tag)."""
    if tag == "O":
        return "O", None
    prefix, dash, kind = tag.partition("-")
    if dash and prefix in ("B", "I", "E", "S") and kind:
        return prefix, kind
    return "", tag


def detect_scheme(sequences: Sequence[Sequence[str]]) -> str:
    """The scheme of a data set's tag sequences.

    BIOES when any tag is `E-`/`S-`; plain when any tag has no B/I prefix (and is not `O`); IOB1
    when an entity starts with `I-` after `O` or at the sentence start; else IOB2.
    """
    prefixes = {split_tag(t)[0] for tags in sequences for t in tags}
    if "" in prefixes:
        return PLAIN
    if prefixes & {"E", "S"}:
        return BIOES
    for tags in sequences:
        previous = "O"
        for tag in tags:
            if tag.startswith("I-") and (previous == "O" or split_tag(previous)[1] != split_tag(tag)[1]):
                return IOB1
            previous = tag
    return IOB2


def to_iob2(tags: Sequence[str], scheme: str) -> tuple[list[str], int]:
    """`tags` in IOB2, and how many tags were changed beyond the scheme's own conversion.

    IOB1 and BIOES convert without loss. An IOB2 sequence with an `I-X` that starts an entity
    (after `O` or another type) is ill-formed: it is repaired to `B-X`, as seqeval's lenient
    reading and the CoNLL script read it, and counted.
    """
    if scheme == PLAIN:
        return list(tags), 0
    out: list[str] = []
    repaired = 0
    previous_kind: str | None = None
    for tag in tags:
        prefix, kind = split_tag(tag)
        if prefix in ("S", "B"):
            new = f"B-{kind}"
        elif prefix in ("I", "E"):
            starts = previous_kind != kind
            new = f"B-{kind}" if starts else f"I-{kind}"
            repaired += int(starts and scheme == IOB2)
        else:
            new = "O"
        out.append(new)
        # After E-/S- an entity has ended: the next I- starts a new one.
        previous_kind = None if prefix in ("E", "S", "O") else kind
    return out, repaired


def entities(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """The entities of an IOB2 sequence: (type, first word, last word + 1)."""
    spans: list[tuple[str, int, int]] = []
    start, kind = -1, None
    for i, tag in enumerate([*tags, "O"]):
        prefix, this = split_tag(tag)
        if kind is not None and (prefix != "I" or this != kind):
            spans.append((kind, start, i))
            kind = None
        if prefix == "B" or (prefix == "I" and kind is None):
            start, kind = i, this
    return spans
