"""Request and response bodies of /v1/predict, per task: they validate requests and make the OpenAPI schema.

Unknown fields are errors (a misspelled `contxt` must not be silently ignored), and no field names
a file or a model: the server only ever runs the model it was started with.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from encoderkit.inference.fill_mask import DEFAULT_TOP_K, MAX_TOP_K

Id = str | int | None
ID_HELP = "copied to the output, to match answers with inputs"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class QAInput(_Strict):
    id: Id = Field(None, description=ID_HELP)
    question: str
    context: str = Field(description="any length: long contexts are read in overlapping windows")


class TextInput(_Strict):
    id: Id = Field(None, description=ID_HELP)
    text: str
    text_pair: str | None = Field(None, description="the second text, for models trained on pairs")


class MaskInput(_Strict):
    id: Id = Field(None, description=ID_HELP)
    text: str = Field(description="holds the tokenizer's mask token (see /v1/info) at least once")
    top_k: int = Field(DEFAULT_TOP_K, ge=1, le=MAX_TOP_K)


class QARequest(_Strict):
    inputs: list[QAInput] = Field(min_length=1)


class TextRequest(_Strict):
    inputs: list[TextInput] = Field(min_length=1)


class MaskRequest(_Strict):
    inputs: list[MaskInput] = Field(min_length=1)


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


class TextOutput(BaseModel):
    id: Id = None
    label: int | None = Field(None, description="classification: the predicted class id")
    label_name: str | None = None
    probabilities: dict[str, float] | None = None
    score: float | None = Field(None, description="regression: the predicted value")


class Candidate(BaseModel):
    token: str
    token_id: int
    score: float = Field(description="probability")
    sequence: str = Field(description="the text with this mask filled")


class MaskOutput(BaseModel):
    id: Id = None
    masks: list[list[Candidate]] = Field(description="per mask token in the text, the top-k candidates")


class QAResponse(BaseModel):
    task: str
    predictions: list[QAOutput]


class TextResponse(BaseModel):
    task: str
    predictions: list[TextOutput]


class MaskResponse(BaseModel):
    task: str
    predictions: list[MaskOutput]


# task -> (request body, response body)
BODIES: dict[str, tuple[type[BaseModel], type[BaseModel]]] = {
    "qa": (QARequest, QAResponse),
    "classification": (TextRequest, TextResponse),
    "regression": (TextRequest, TextResponse),
    "fill-mask": (MaskRequest, MaskResponse),
}
