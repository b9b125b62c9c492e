"""Evaluation metrics, computed with scikit-learn and scipy (not hand-written formulas).

Shared by `albert evaluate` (``albert_cli.inference.evaluate``) and fine-tuning's dev evaluation.
"""

from __future__ import annotations

import numpy as np


SINGLE_LABEL_SCORES = ("accuracy", "macro_f1", "micro_f1", "weighted_f1")
MULTI_LABEL_SCORES = ("subset_accuracy", "micro_f1", "macro_f1")


def classification_score(name: str, y_true, y_pred, num_labels: int) -> float:
    """One of `SINGLE_LABEL_SCORES`, as in `classification_metrics` (the cheap path for picks made on dev)."""
    from sklearn.metrics import accuracy_score, f1_score

    if name == "accuracy":
        return float(accuracy_score(y_true, y_pred))
    average = name.removesuffix("_f1")
    return float(f1_score(y_true, y_pred, labels=list(range(num_labels)), average=average, zero_division=0))


def multilabel_score(name: str, y_true, y_pred) -> float:
    """One of `MULTI_LABEL_SCORES` over 0/1 indicator matrices, as in `multilabel_metrics`."""
    from sklearn.metrics import accuracy_score, f1_score

    y_true = np.asarray(y_true).astype(int)
    y_pred = np.asarray(y_pred).astype(int)
    if name == "subset_accuracy":
        return float(accuracy_score(y_true, y_pred))
    return float(f1_score(y_true, y_pred, average=name.removesuffix("_f1"), zero_division=0))


def classification_metrics(y_true, y_pred, num_labels: int) -> dict:
    """Single-label metrics. ``y_true`` may hold -1 for labels the model never saw (always wrong)."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    labels = list(range(num_labels))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    return {
        **{name: classification_score(name, y_true, y_pred, num_labels) for name in SINGLE_LABEL_SCORES},
        "precision": p.tolist(),
        "recall": r.tolist(),
        "f1": f.tolist(),
        "support": s.tolist(),
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def multilabel_metrics(y_true, y_pred) -> dict:
    """Multi-label metrics over 0/1 indicator matrices."""
    from sklearn.metrics import precision_recall_fscore_support

    y_true = np.asarray(y_true).astype(int)
    y_pred = np.asarray(y_pred).astype(int)
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, zero_division=0)
    return {
        **{name: multilabel_score(name, y_true, y_pred) for name in MULTI_LABEL_SCORES},
        "precision": p.tolist(),
        "recall": r.tolist(),
        "f1": f.tolist(),
        "support": s.tolist(),
    }


def regression_metrics(y_true, y_pred) -> dict:
    """MSE, MAE, Pearson and Spearman correlation (NaN when either side is constant)."""
    from scipy.stats import pearsonr, spearmanr
    from sklearn.metrics import mean_absolute_error, mean_squared_error

    y_true = np.asarray(y_true, np.float64)
    y_pred = np.asarray(y_pred, np.float64)
    constant = np.std(y_true) == 0 or np.std(y_pred) == 0
    return {
        "mse": float(mean_squared_error(y_true, y_pred)),
        "mae": float(mean_absolute_error(y_true, y_pred)),
        "pearson": float("nan") if constant else float(pearsonr(y_true, y_pred)[0]),
        "spearman": float("nan") if constant else float(spearmanr(y_true, y_pred)[0]),
    }
