"""`albert evaluate`: metrics of a model directory on a labelled test file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from albert_cli.console import err_console, warn
from albert_cli.metrics import classification_metrics, multilabel_metrics, regression_metrics
from albert_cli.modeldir import atomic_write_text


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
    """Returns (report, per-row predictions)."""
    from albert_cli.data.labels import LABEL_KINDS, LabelVocab
    from albert_cli.data.readers import read_dataset
    from albert_cli.predict import OutputOptions, format_rows, make_predictor

    from albert_cli.errors import UsageError
    from albert_cli.modeldir import open_model_dir

    if batch_size < 1:
        raise UsageError(f"--batch-size must be positive, got {batch_size}")
    meta = open_model_dir(model_dir)[1]  # no TensorFlow yet: bad data fails fast
    cols = meta.columns or {}
    text_column = text_column or cols.get("text") or "text"
    label_column = label_column or cols.get("label") or "label"
    if text_pair_column is None and meta.pair:
        text_pair_column = cols.get("text_pair")
    kind = LABEL_KINDS[meta.task]
    ds = read_dataset(
        test_path,
        fmt=fmt,
        text_column=text_column,
        text_pair_column=text_pair_column,
        label_column=label_column,
        label_kind=kind,
        skip_bad_rows=skip_bad_rows,
    )
    predictor = make_predictor(model_dir, batch_size=batch_size)
    out = predictor.predict(ds.texts, ds.pairs)
    rows = format_rows(meta, out, OutputOptions(threshold=threshold))
    report: dict = {"model": str(model_dir), "test": ds.name, "task": meta.task, "num_examples": len(ds)}
    if meta.task == "regression":
        report.update(regression_metrics(ds.labels, out["value"]))
    else:
        vocab = LabelVocab(meta.labels, multi_label=meta.task == "multi_label")
        unseen = vocab.unknown(ds.labels)
        if unseen:
            report["unseen_labels"] = dict(sorted(unseen.items()))
            warn(
                f"{ds.name}: {sum(unseen.values())} example(s) have labels the model never saw: "
                + ", ".join(f"{k} ({v})" for k, v in sorted(unseen.items())[:10])
                + "; they count as errors"
            )
        report["labels"] = meta.labels
        if meta.task == "single_label":
            idx = vocab.index
            y_true = np.asarray([idx.get(str(y), -1) for y in ds.labels])
            y_pred = out["probabilities"].argmax(-1)
            m = classification_metrics(y_true, y_pred, len(meta.labels))
        else:
            y_true = vocab.encode(ds.labels)
            if threshold is not None:
                y_pred = (out["probabilities"] >= threshold).astype(int)
            else:
                y_pred = out["predicted"]
            m = multilabel_metrics(y_true, y_pred)
        per_class = {
            label: {"precision": m["precision"][j], "recall": m["recall"][j], "f1": m["f1"][j], "support": int(m["support"][j])}
            for j, label in enumerate(meta.labels)
        }
        report.update({k: v for k, v in m.items() if k not in ("precision", "recall", "f1", "support")})
        report["per_class"] = per_class
    predictions = []
    for i, rec in enumerate(rows):
        gold = ds.labels[i]
        predictions.append({"row": ds.rows[i], "gold": gold, **rec})
    return report, predictions


def print_report(report: dict, console=None) -> None:
    """Rich tables: summary, per-class P/R/F1, confusion matrix."""
    from rich.table import Table

    console = console or err_console
    console.print(f"{report['test']}: {report['num_examples']} examples", highlight=False)
    summary = Table(show_header=False)
    for key in ("accuracy", "subset_accuracy", "macro_f1", "micro_f1", "weighted_f1", "mse", "mae", "pearson", "spearman"):
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
    atomic_write_text(Path(path), json.dumps(obj, ensure_ascii=False, indent=1) + "\n")


def write_predictions(path, predictions: list[dict]) -> None:
    text = "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in predictions)
    atomic_write_text(Path(path), text)
