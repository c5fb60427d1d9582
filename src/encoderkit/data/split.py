"""`--eval-split`: a seeded hold-out of the training file, for a run that has no eval file.

scikit-learn draws the split: stratified by label for classification (each class keeps its share
in both parts), by groups for QA (every question on one paragraph lands on the same side, so the
eval set never scores a paragraph the model was trained on), plain otherwise.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence
from typing import TypeVar

from sklearn.model_selection import GroupShuffleSplit, train_test_split

from encoderkit.errors import UserError

T = TypeVar("T")


def holdout(
    items: Sequence[T],
    share: float,
    seed: int,
    strata: Sequence[Hashable] | None = None,
    groups: Sequence[Hashable] | None = None,
) -> tuple[list[T], list[T]]:
    """(train, eval): about `share` of `items` held out, the same split for the same seed.

    Classes with a single example cannot be stratified; they stay in training.

    Raises:
        UserError: the hold-out would be empty, or leave training empty.
    """
    train_idx, eval_idx = holdout_indices(len(items), share, seed, strata, groups)
    return [items[i] for i in train_idx], [items[i] for i in eval_idx]


def holdout_indices(
    count: int,
    share: float,
    seed: int,
    strata: Sequence[Hashable] | None = None,
    groups: Sequence[Hashable] | None = None,
) -> tuple[list[int], list[int]]:
    """The indices of `holdout`'s two parts, each in file order."""
    indices = list(range(count))
    if groups is not None:
        # One draw of groups; its share of examples is close to `share` when groups are small.
        splitter = GroupShuffleSplit(n_splits=1, test_size=share, random_state=seed)
        train_idx, eval_idx = next(splitter.split(indices, groups=list(groups)))
        return _checked(sorted(train_idx.tolist()), sorted(eval_idx.tolist()), count, share)
    if round(share * count) < 1:
        raise UserError(
            f"field 'eval_split': {share:g} of {count} examples holds out none; raise it or give --eval"
        )
    if strata is None:
        train_idx, eval_idx = train_test_split(indices, test_size=share, random_state=seed)
        return _checked(sorted(train_idx), sorted(eval_idx), count, share)
    counts = Counter(strata)
    single = [i for i in indices if counts[strata[i]] < 2]
    rest = [i for i in indices if counts[strata[i]] >= 2]
    classes = len({strata[i] for i in rest})
    held = round(share * count)
    if held < classes:  # sklearn: a stratified test part needs one example of each class
        raise UserError(
            f"field 'eval_split': {share:g} of {count} examples is {held}, fewer than the {classes} "
            "labels a stratified hold-out needs; raise it or give --eval"
        )
    train_idx, eval_idx = train_test_split(
        rest, test_size=held, random_state=seed, stratify=[strata[i] for i in rest]
    )
    return _checked(sorted(train_idx + single), sorted(eval_idx), count, share)


def _checked(train: list[int], held: list[int], count: int, share: float) -> tuple[list[int], list[int]]:
    if not held or not train:
        raise UserError(
            f"field 'eval_split': {share:g} of {count} examples leaves "
            f"{'no eval' if not held else 'no training'} example; change it or give --eval"
        )
    return train, held


def split_note(share: float, seed: int, held: int, how: str) -> str:
    """The data check's line for a hold-out: how much, how drawn, from what seed."""
    return f"{held} ({100 * share:g}% of --train held out, {how}, seed {seed})"
