"""The in-memory form of one extractive QA example, shared by loaders, features and metrics."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class QAExample:
    """One question over one context.

    `answer_texts[i]` starts at character `answer_starts[i]` of `context`. Both lists are empty
    for an unanswerable (SQuAD v2) question or for predict-only input. `line` is the 1-based
    line of the source file where the question appears (JSONL), or None when unknown.
    """

    id: str
    question: str
    context: str
    answer_texts: list[str] = field(default_factory=list)
    answer_starts: list[int] = field(default_factory=list)
    title: str = ""
    line: int | None = None

    @property
    def is_impossible(self) -> bool:
        return not self.answer_texts
