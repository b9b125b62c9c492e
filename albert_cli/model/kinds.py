"""The names a model is made of, in one place: tasks, head poolings and dev metrics.

Keras-free, so option checks and model-directory readers can use them without loading a backend.
"""

from __future__ import annotations

TASKS = ("single_label", "multi_label", "regression")
"""What a classifier head predicts: one label, any subset of labels, or one number."""

POOLINGS = ("pooler", "mean")
"""The classifier's input: the published tanh pooler on [CLS], or the mean of the token vectors."""

EMBED_POOLINGS = ("pooler", "cls", "mean")
"""What `albert embed` can return: the pooler output, the raw [CLS] vector, or the mean of the token vectors."""

DEV_METRICS = {
    "single_label": ("accuracy", "macro_f1", "micro_f1", "weighted_f1"),
    "multi_label": ("micro_f1", "macro_f1", "subset_accuracy"),
    "regression": ("mse", "mae", "pearson", "spearman"),
}
"""Dev metrics that can pick the best fine-tuning step (``--metric``), per task: figures the dev evaluation
computes (`albert_cli.metrics`)."""

LOWER_IS_BETTER = ("mse", "mae")


def default_metric(task: str) -> str:
    """The dev metric that picks the best model when ``--metric`` is not given."""
    return {"regression": "mse", "multi_label": "micro_f1"}.get(task, "accuracy")
