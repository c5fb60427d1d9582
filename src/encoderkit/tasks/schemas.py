"""What every task's /v1/predict bodies share; each task module declares its own request and response.

Unknown fields are errors (a misspelled `contxt` must not be silently ignored), and no field names
a file or a model: the server only ever runs the model it was started with.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model

Id = str | int | None
ID_HELP = "copied to the output, to match answers with inputs"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def id_field() -> Id:
    return Field(None, description=ID_HELP)  # type: ignore[no-any-return]


def request_of(name: str, item: type[BaseModel]) -> type[Strict]:
    """The /v1/predict request body `{"inputs": [item, ...]}` (at least one), named `name` in the
    OpenAPI schema."""
    inputs: Any = (list[item], Field(min_length=1))  # type: ignore[valid-type]
    return create_model(name, __base__=Strict, inputs=inputs)
