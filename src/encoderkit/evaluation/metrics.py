"""Classification and regression metrics, computed with scikit-learn and SciPy.

Values are on the 0-1 scale, as the HF Trainer and `evaluate` report them.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    matthews_corrcoef,
    precision_recall_fscore_support,
    precision_score,
    recall_score,
)


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, num_labels: int) -> dict[str, float]:
    """accuracy, f1 (binary F1 of label id 1 for two labels, macro F1 otherwise), mcc."""
    labels = list(range(num_labels))
    if num_labels == 2:
        f1 = f1_score(y_true, y_pred, pos_label=1, average="binary", zero_division=0)
    else:
        f1 = f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "f1": float(f1),
        "mcc": float(matthews_corrcoef(y_true, y_pred)),
    }


def confusion(y_true: np.ndarray, y_pred: np.ndarray, num_labels: int) -> list[list[int]]:
    """Rows: true label id; columns: predicted label id."""
    return confusion_matrix(y_true, y_pred, labels=list(range(num_labels))).tolist()


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """pearson, spearman (0 when a side is constant, where correlation is undefined), mse."""
    mse = float(np.mean((y_true - y_pred) ** 2))
    if len(y_true) < 2 or np.ptp(y_true) == 0 or np.ptp(y_pred) == 0:
        return {"pearson": 0.0, "spearman": 0.0, "mse": mse}
    pearson = float(pearsonr(y_true, y_pred)[0])
    spearman = float(spearmanr(y_true, y_pred)[0])
    return {
        "pearson": pearson if math.isfinite(pearson) else 0.0,
        "spearman": spearman if math.isfinite(spearman) else 0.0,
        "mse": mse,
    }


def multi_label_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Multi-label scores from [N, K] 0/1 arrays: micro and macro F1 (over the labels), micro
    precision and recall, and subset accuracy (the share of examples with every label right)."""
    y_true, y_pred = y_true.astype(int), y_pred.astype(int)
    return {
        "micro_f1": float(f1_score(y_true, y_pred, average="micro", zero_division=0)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "subset_accuracy": float(accuracy_score(y_true, y_pred)),
        "precision": float(precision_score(y_true, y_pred, average="micro", zero_division=0)),
        "recall": float(recall_score(y_true, y_pred, average="micro", zero_division=0)),
    }


def per_label_scores(
    y_true: np.ndarray, y_pred: np.ndarray, names: list[str], thresholds: list[float]
) -> list[dict[str, object]]:
    """One row per label: its threshold, support (gold positives), precision, recall and F1."""
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true.astype(int), y_pred.astype(int), average=None, zero_division=0
    )
    return [
        {
            "label": name,
            "threshold": float(thresholds[j]),
            "support": int(support[j]),
            "precision": float(precision[j]),
            "recall": float(recall[j]),
            "f1": float(f1[j]),
        }
        for j, name in enumerate(names)
    ]
