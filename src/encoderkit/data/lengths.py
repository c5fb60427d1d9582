"""Token-length statistics and the `--max-length auto` rule."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LengthStats:
    count: int
    mean: float
    p50: int
    p90: int
    p95: int
    p99: int
    max: int
    suggested: int  # smallest multiple of 8 covering p99, capped at the model's limit
    limit: int  # the model's own maximum
    truncated_share: float  # share of examples longer than `suggested`

    def table(self) -> str:
        """The plain-text table `encoderkit lengths` prints."""
        rows = [
            ("examples", f"{self.count}"),
            ("mean", f"{self.mean:.1f}"),
            ("p50", f"{self.p50}"),
            ("p90", f"{self.p90}"),
            ("p95", f"{self.p95}"),
            ("p99", f"{self.p99}"),
            ("max", f"{self.max}"),
            ("model limit", f"{self.limit}"),
            ("suggested max_length", f"{self.suggested}"),
            ("truncated at suggested", f"{100 * self.truncated_share:.2f}%"),
        ]
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def suggest_max_length(p99: int, limit: int) -> int:
    """Smallest multiple of 8 that covers p99 (8 keeps tensor cores aligned), at most `limit`."""
    return max(8, min(limit, 8 * math.ceil(p99 / 8)))


def length_stats(lengths: list[int], limit: int) -> LengthStats:
    """Summarise untruncated token lengths (special tokens included)."""
    if not lengths:
        raise ValueError("no lengths to summarise")
    arr = np.asarray(lengths)
    # "higher" so a percentile is a length that really occurs and covers that share.
    p50, p90, p95, p99 = (int(np.percentile(arr, q, method="higher")) for q in (50, 90, 95, 99))
    suggested = suggest_max_length(p99, limit)
    return LengthStats(
        count=len(arr),
        mean=float(arr.mean()),
        p50=p50,
        p90=p90,
        p95=p95,
        p99=p99,
        max=int(arr.max()),
        suggested=suggested,
        limit=limit,
        truncated_share=float((arr > suggested).mean()),
    )
