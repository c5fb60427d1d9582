"""Tokenized features: the type every task produces and every batch is cut from."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Encoded:
    """Tokenized features. `targets` maps a model keyword (`labels`, `start_positions`) to values."""

    input_ids: list[list[int]]
    token_type_ids: list[list[int]] | None = None
    targets: dict[str, list] = field(default_factory=dict)
    # Targets that are token positions (QA start/end): shifted when a batch pads on the left.
    position_keys: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def lengths(self) -> list[int]:
        return [len(ids) for ids in self.input_ids]
