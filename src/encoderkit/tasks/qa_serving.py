"""QA's in-memory inputs and outputs: request rows -> examples, predictions -> rows, the serve bodies."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from encoderkit.data.qa_types import QAExample
from encoderkit.tasks.qa_postprocess import QAPrediction
from encoderkit.tasks.rows import text_field
from encoderkit.tasks.schemas import Id, Strict, id_field, request_of


class QAInput(Strict):
    id: Id = id_field()
    question: str
    context: str = Field(description="any length: long contexts are read in overlapping windows")


QARequest = request_of("QARequest", QAInput)


class Span(BaseModel):
    text: str
    score: float = Field(description="start logit + end logit")
    start: int = Field(description="character offset into the context")
    end: int = Field(description="character offset into the context, exclusive")


class QAOutput(BaseModel):
    id: Id = None
    answer: str = Field(description='"" when the model says the context holds no answer (SQuAD v2)')
    score: float
    start: int = Field(description="-1 for no answer")
    end: int
    nbest: list[Span]


class QAResponse(BaseModel):
    task: str
    predictions: list[QAOutput]


def qa_examples(rows: list[dict[str, Any]]) -> list[QAExample]:
    """One QAExample per row; internal ids are positions, so clients may repeat or omit ids."""
    examples = []
    for i, row in enumerate(rows):
        where = f"inputs[{i}]"
        question = text_field(row, "question", where)
        context = text_field(row, "context", where)
        examples.append(QAExample(str(i), str(question), str(context)))
    return examples


def qa_row(prediction: QAPrediction) -> dict[str, Any]:
    """One JSONL line: id, answer, score, character offsets into the context, n-best list."""
    return {
        "id": prediction.id,
        "answer": prediction.answer,
        "score": round(prediction.score, 4),
        "start": prediction.start,
        "end": prediction.end,
        "nbest": [
            {"text": s.text, "score": round(s.score, 4), "start": s.start, "end": s.end}
            for s in prediction.nbest
        ],
    }
