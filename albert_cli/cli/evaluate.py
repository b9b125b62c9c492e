"""`albert evaluate`: accuracy, F1, per-class scores and the confusion matrix on labelled data."""

from __future__ import annotations

import json
import sys
from typing import Optional

import typer

from albert_cli.cli.options import (
    InferencePrecisionOpt,
    InputFormatOpt,
    OldInputFormatOpt,
    SkipBadRowsOpt,
    input_format,
    set_inference_precision,
)


def evaluate(
    model: str = typer.Argument(..., help="Model directory written by `albert finetune` (or a TFLite one from `albert export`)."),
    test: str = typer.Argument(..., help="Labelled test data (CSV, TSV, JSONL or fastText-style text), '-' for stdin."),
    fmt: Optional[str] = InputFormatOpt,
    old_fmt: Optional[str] = OldInputFormatOpt,
    text_column: Optional[str] = typer.Option(None, "--text-column", help="Text column [default: the model's]."),
    text_pair_column: Optional[str] = typer.Option(None, "--text-pair-column", help="Second text column (pair models)."),
    label_column: Optional[str] = typer.Option(None, "--label-column", help="Label column [default: the model's]."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout instead of tables."),
    output: Optional[str] = typer.Option(None, "--output", help="Also write the JSON report to this file."),
    predictions: Optional[str] = typer.Option(None, "--predictions", help="Write per-row predictions (JSONL) to this file."),
    threshold: Optional[float] = typer.Option(None, "--threshold", help="Multi-label: one threshold for every label."),
    batch_size: int = typer.Option(32, "--batch-size", help="Texts per batch."),
    precision: Optional[str] = InferencePrecisionOpt,
    skip_bad_rows: bool = SkipBadRowsOpt,
) -> None:
    """Evaluate a model on labelled data: accuracy, macro/micro/weighted F1, per-class P/R/F1, confusion matrix
    (multi-label: subset accuracy, micro/macro F1; regression: MSE, MAE, Pearson, Spearman)."""
    import os

    from albert_cli.artifacts.modeldir import check_writable_dir
    from albert_cli.errors import UsageError
    from albert_cli.inference.evaluate import evaluate as run, print_report, write_json, write_predictions

    if threshold is not None and not 0 < threshold < 1:
        raise UsageError(f"--threshold must be between 0 and 1, got {threshold}")
    set_inference_precision(precision)
    for option, path in (("--output", output), ("--predictions", predictions)):
        if path:  # check before the work, not after it
            parent = os.path.dirname(os.path.abspath(path))
            if os.path.isdir(path) or not os.path.isdir(parent) or not os.access(parent, os.W_OK):
                raise UsageError(f"{option} {path}: cannot write there (not a file in a writable directory)")
            check_writable_dir(parent, f"{option} {path}")  # root passes os.access even in /proc

    report, rows = run(
        model, test, fmt=input_format(fmt, old_fmt), text_column=text_column, text_pair_column=text_pair_column,
        label_column=label_column, batch_size=batch_size, skip_bad_rows=skip_bad_rows, threshold=threshold,
    )
    if output:
        write_json(output, report)
    if predictions:
        write_predictions(predictions, rows)
    if as_json:
        sys.stdout.write(json.dumps(report, ensure_ascii=False) + "\n")
    else:
        from rich.console import Console

        print_report(report, Console(highlight=False))
