"""Options shared by several commands (same names and help everywhere)."""

from __future__ import annotations

import typer

FormatOpt = typer.Option(None, "--format", help="Input format: csv, tsv, jsonl or txt [default: from the extension].")
TextColumnOpt = typer.Option("text", "--text-column", help="Column (or JSON field) holding the text.")
TextPairColumnOpt = typer.Option(None, "--text-pair-column", help="Column with a second text, for pair tasks.")
LabelColumnOpt = typer.Option("label", "--label-column", help="Column (or JSON field) holding the label.")
SkipBadRowsOpt = typer.Option(
    False, "--skip-bad-rows", help="Skip rows with empty text or missing labels (counted in a warning) instead of failing."
)
InferencePrecisionOpt = typer.Option(
    None, "--precision", help="fp32, bf16 (bfloat16 matmuls, faster on CPUs with AVX512_BF16/AMX) or auto [default: $ALBERT_PRECISION, else fp32]."
)


def set_inference_precision(precision: str | None) -> None:
    """`--precision` of predict/evaluate: validated here (one-line error), applied by the predictor before its
    first batch through $ALBERT_PRECISION."""
    if precision is None:
        return
    import os

    from albert_cli._tf import PRECISION_ENV, inference_precision

    inference_precision(precision)
    os.environ[PRECISION_ENV] = precision
