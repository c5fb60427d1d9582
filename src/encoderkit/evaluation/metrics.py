"""Classification and regression metrics, computed with scikit-learn and SciPy.

Values are on the 0-1 scale, as the HF Trainer and `evaluate` report them.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, matthews_corrcoef


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
