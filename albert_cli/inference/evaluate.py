"""``albert evaluate``'s library side: metrics of a model directory on a labelled test file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from rich.table import Table

from albert_cli.artifacts.modeldir import ModelMeta, atomic_write_text, open_model_dir
from albert_cli.console import err_console, warn
from albert_cli.data.labels import LABEL_KINDS, LabelVocab
from albert_cli.data.readers import read_dataset
from albert_cli.errors import UsageError
from albert_cli.inference.base import check_batch_size
from albert_cli.inference.predict import make_predictor
from albert_cli.inference.writers import OutputOptions, format_rows
from albert_cli.metrics import classification_metrics, multilabel_metrics, regression_metrics

SUMMARY_KEYS = ("accuracy", "subset_accuracy", "macro_f1", "micro_f1", "weighted_f1", "mse", "mae", "pearson", "spearman")


def _read_test_set(meta: ModelMeta, test_path, fmt, text_column, text_pair_column, label_column, skip_bad_rows):
    """The labelled rows, with the model's own column names as defaults."""
    cols = meta.columns or {}
    if text_pair_column is not None and not meta.pair:
        raise UsageError("--text-pair-column: this model classifies single texts, it has no second input")
    if text_pair_column is None and meta.pair:
        text_pair_column = cols.get("text_pair")
    return read_dataset(
        test_path,
        fmt=fmt,
        text_column=text_column or cols.get("text") or "text",
        text_pair_column=text_pair_column,
        label_column=label_column or cols.get("label") or "label",
        label_kind=LABEL_KINDS[meta.task],
        skip_bad_rows=skip_bad_rows,
    )


def _warn_unseen(ds, vocab: LabelVocab) -> dict:
    unseen = vocab.unknown(ds.labels)
    if unseen:
        warn(
            f"{ds.name}: {sum(unseen.values())} example(s) have labels the model never saw: "
            + ", ".join(f"{k} ({v})" for k, v in sorted(unseen.items())[:10])
            + "; they count as errors"
        )
        return {"unseen_labels": dict(sorted(unseen.items()))}
    return {}


def _label_metrics(meta: ModelMeta, ds, out: dict, threshold: float | None) -> dict:
    """Classification metrics (single- or multi-label) with per-class P/R/F1."""
    vocab = LabelVocab(meta.labels, multi_label=meta.task == "multi_label")
    report = _warn_unseen(ds, vocab)
    report["labels"] = meta.labels
    if meta.task == "single_label":
        y_true = np.asarray([vocab.index.get(str(y), -1) for y in ds.labels])
        m = classification_metrics(y_true, out["probabilities"].argmax(-1), len(meta.labels))
    else:
        y_pred = (out["probabilities"] >= threshold).astype(int) if threshold is not None else out["predicted"]
        m = multilabel_metrics(vocab.encode(ds.labels), y_pred)
    per_class = {
        label: {"precision": m["precision"][j], "recall": m["recall"][j], "f1": m["f1"][j], "support": int(m["support"][j])}
        for j, label in enumerate(meta.labels)
    }
    report.update({k: v for k, v in m.items() if k not in ("precision", "recall", "f1", "support")})
    report["per_class"] = per_class
    return report


def evaluate(
    model_dir,
    test_path,
    fmt=None,
    text_column=None,
    text_pair_column=None,
    label_column=None,
    batch_size: int = 32,
    skip_bad_rows: bool = False,
    threshold: float | None = None,
) -> tuple[dict, list[dict]]:
    """Evaluate a model directory on labelled data; returns (report, per-row predictions).

    Args:
        model_dir: a SavedModel or TFLite model directory.
        test_path: CSV, TSV, JSONL or fastText-style text (``-``: stdin).
        fmt: the input format [default: from the extension].
        text_column, text_pair_column, label_column: column names [default: the model's].
        batch_size: texts per batch.
        skip_bad_rows: skip (and count) rows with empty text or missing labels instead of failing.
        threshold: multi-label: one threshold for every label instead of the tuned ones.

    Example:
        >>> report, rows = evaluate("news-model", "news_test.csv")  # doctest: +SKIP
        >>> report["accuracy"], rows[0]["gold"], rows[0]["label"]  # doctest: +SKIP
    """
    check_batch_size(batch_size)
    meta = open_model_dir(model_dir)[1]  # no TensorFlow yet: bad data fails fast
    if threshold is not None and meta.task != "multi_label":  # it would change nothing
        raise UsageError(f"--threshold applies to multi-label models; this one is {meta.task.replace('_', '-')}")
    ds = _read_test_set(meta, test_path, fmt, text_column, text_pair_column, label_column, skip_bad_rows)
    predictor = make_predictor(model_dir, batch_size=batch_size)
    out = predictor.predict(ds.texts, ds.pairs)
    rows = format_rows(meta, out, OutputOptions(threshold=threshold))
    report: dict = {"model": str(model_dir), "test": ds.name, "task": meta.task, "num_examples": len(ds)}
    if meta.task == "regression":
        report.update(regression_metrics(ds.labels, out["value"]))
    else:
        report.update(_label_metrics(meta, ds, out, threshold))
    predictions = [{"row": ds.rows[i], "gold": ds.labels[i], **rec} for i, rec in enumerate(rows)]
    return report, predictions


def print_report(report: dict, console=None) -> None:
    """Rich tables of an :func:`evaluate` report: summary, per-class P/R/F1, confusion matrix (stderr by default)."""
    console = console or err_console
    console.print(f"{report['test']}: {report['num_examples']} examples", highlight=False)
    summary = Table(show_header=False)
    for key in SUMMARY_KEYS:
        if key in report:
            summary.add_row(key, f"{report[key]:.4f}")
    console.print(summary)
    if "per_class" in report:
        t = Table(title="per class")
        for col in ("label", "precision", "recall", "f1", "support"):
            t.add_column(col, justify="right" if col != "label" else "left")
        for label, m in report["per_class"].items():
            t.add_row(label, f"{m['precision']:.4f}", f"{m['recall']:.4f}", f"{m['f1']:.4f}", str(m["support"]))
        console.print(t)
    if "confusion_matrix" in report:
        labels = report["labels"]
        t = Table(title="confusion matrix (rows: gold, columns: predicted)")
        t.add_column("gold \\ pred")
        for l in labels:
            t.add_column(l, justify="right")
        for l, row in zip(labels, report["confusion_matrix"]):
            t.add_row(l, *[str(v) for v in row])
        console.print(t)


def write_json(path, obj) -> None:
    """`obj` as indented JSON, written atomically."""
    atomic_write_text(Path(path), json.dumps(obj, ensure_ascii=False, indent=1) + "\n")


def write_predictions(path, predictions: list[dict]) -> None:
    """One JSON line per prediction, written atomically."""
    text = "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in predictions)
    atomic_write_text(Path(path), text)
