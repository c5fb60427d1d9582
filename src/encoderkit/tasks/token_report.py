"""The token-classification report sections: per-type scores, entity confusion, example sentences.

`entity_confusion` is the pure part: every gold entity is matched to the predicted entity with
exactly its span (strict, as seqeval scores them); a gold entity with no such prediction is
`missed`, a prediction with no such gold entity `spurious`. The diagonal is what the metric
counts as right; a wrong type shows up off the diagonal.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Sequence

from encoderkit.tasks.tag_schemes import entities

MISSED, SPURIOUS = "missed", "spurious"
EXAMPLES = 3  # right and wrong sentences each


def entity_confusion(
    gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]
) -> Counter[tuple[str, str]]:
    """(gold type or `spurious`, predicted type or `missed`) -> entities, over IOB2 sentences."""
    counts: Counter[tuple[str, str]] = Counter()
    for gold_tags, predicted_tags in zip(gold, predicted, strict=True):
        truth = {(first, end): kind for kind, first, end in entities(gold_tags)}
        guess = {(first, end): kind for kind, first, end in entities(predicted_tags)}
        for span, kind in truth.items():
            counts[kind, guess.get(span, MISSED)] += 1
        for span, kind in guess.items():
            if span not in truth:
                counts[SPURIOUS, kind] += 1
    return counts


def confusion_table(counts: Counter[tuple[str, str]]) -> str:
    kinds = sorted({k for pair in counts for k in pair} - {MISSED, SPURIOUS})
    rows, columns = [*kinds, SPURIOUS], [*kinds, MISSED]
    head = "<tr><th>gold \\ predicted</th>" + "".join(f"<th>{html.escape(c)}</th>" for c in columns) + "</tr>"
    body = "".join(
        f"<tr><th>{html.escape(r)}</th>"
        + "".join(
            f"<td>{counts.get((r, c), 0) if (r, c) != (SPURIOUS, MISSED) else ''}</td>" for c in columns
        )
        + "</tr>"
        for r in rows
    )
    return f"<table id='entity-confusion'>{head}{body}</table>"


def types_table(metrics: dict[str, float]) -> str:
    types = sorted({k.split("_", 1)[1] for k in metrics if k.startswith("f1_")})
    head = "<tr><th>type</th><th>precision</th><th>recall</th><th>f1</th></tr>"
    rows = "".join(
        f"<tr><td>{html.escape(t)}</td>"
        + "".join(
            f"<td>{metrics.get(f'{m}_{t}', float('nan')):.4f}</td>" for m in ("precision", "recall", "f1")
        )
        + "</tr>"
        for t in types
    )
    return f"<table id='entity-types'>{head}{rows}</table>" if types else ""


def marked(tokens: Sequence[str], tags: Sequence[str]) -> str:
    """The sentence as HTML, each entity as `[TYPE words]`."""
    out, spans = [], {first: (kind, end) for kind, first, end in entities(tags)}
    i = 0
    while i < len(tokens):
        if i in spans:
            kind, end = spans[i]
            out.append(f"<b>[{html.escape(kind)} {html.escape(' '.join(tokens[i:end]))}]</b>")
            i = end
        else:
            out.append(html.escape(tokens[i]))
            i += 1
    return " ".join(out)


def examples_list(
    sentences: Sequence[Sequence[str]], gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]
) -> str:
    """The first few eval sentences the model got entirely right, and wrong (gold beside them)."""
    right: list[str] = []
    wrong: list[str] = []
    for tokens, truth, guess in zip(sentences, gold, predicted, strict=True):
        if not entities(truth) and not entities(guess):
            continue  # nothing to show
        same = entities(truth) == entities(guess)
        if same and len(right) < EXAMPLES:
            right.append(f"<li>{marked(tokens, guess)}</li>")
        elif not same and len(wrong) < EXAMPLES:
            wrong.append(f"<li>predicted: {marked(tokens, guess)}<br>gold: {marked(tokens, truth)}</li>")
    return (
        f"<h4>Right</h4><ul id='examples-right'>{''.join(right) or '<li>none</li>'}</ul>"
        f"<h4>Wrong</h4><ul id='examples-wrong'>{''.join(wrong) or '<li>none</li>'}</ul>"
    )
