"""Fill-mask examples for the MLM report: a few eval sequences, the true token under their first
mask, and the model's top guesses there, from the final evaluation's fixed masking.

Pure functions: the positions and contexts are chosen once from the eval masking (`pick`), each
evaluation keeps the top-k ids and probabilities at those positions (`mlm.masked_sums`), and the
report renders them (`table`).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

EXAMPLES = 5  # sequences shown
TOP_K = 5  # guesses shown per example
CONTEXT = 12  # tokens either side of the mask


@dataclass(frozen=True)
class Example:
    sequence: int  # index into the eval sequences
    position: int  # the masked position shown (the first one of the sequence)
    context: str  # the tokens around it, the shown one as `[MASK]`
    true_token: str


def pick(
    inputs: Sequence[Sequence[int]],
    labels: Sequence[Sequence[int]],
    id_to_token: Sequence[str],
    mask_token: str,
    ignore: int,
    count: int = EXAMPLES,
) -> list[Example]:
    """The first `count` eval sequences that have a masked token, each at its first one."""
    examples = []
    for i, row in enumerate(labels):
        position = next((p for p, label in enumerate(row) if label != ignore), None)
        if position is None:
            continue
        ids = inputs[i]
        left = [id_to_token[t] for t in ids[max(0, position - CONTEXT) : position]]
        right = [id_to_token[t] for t in ids[position + 1 : position + 1 + CONTEXT]]
        context = " ".join([*left, mask_token, *right])
        examples.append(Example(i, position, context, id_to_token[row[position]]))
        if len(examples) == count:
            break
    return examples


def guesses(
    examples: list[Example], top_ids: Any, top_probs: Any, id_to_token: Sequence[str]
) -> list[dict[str, Any]]:
    """Each example with the model's top guesses: `top_ids` / `top_probs` are [sequences, k]."""
    rows = []
    for e in examples:
        ids, probs = [int(t) for t in top_ids[e.sequence].tolist()], top_probs[e.sequence].tolist()
        rows.append(
            {
                "context": e.context,
                "true": e.true_token,
                "guesses": [(id_to_token[t], float(p)) for t, p in zip(ids, probs, strict=True)],
            }
        )
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    """The report's table: context, true token, the guesses (the true one in bold)."""
    head = "<tr><th>eval text (sub-word tokens)</th><th>true</th><th>top guesses</th></tr>"
    body = []
    for row in rows:
        shown = ", ".join(
            (f"<strong>{html.escape(token)}</strong>" if token == row["true"] else html.escape(token))
            + f" {p:.2f}"
            for token, p in row["guesses"]
        )
        body.append(
            f"<tr><td>{html.escape(row['context'])}</td><td>{html.escape(row['true'])}</td><td>{shown}</td></tr>"
        )
    return f"<table id='fill-mask-examples'>{head}{''.join(body)}</table>"
