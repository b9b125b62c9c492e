"""`albert export`: copy a model directory, or convert it to TFLite (LiteRT) with optional quantization."""

from __future__ import annotations

from typing import Optional

import typer


def export(
    model: str = typer.Argument(..., metavar="MODEL", help="Model directory written by `albert finetune`."),
    output: str = typer.Option(..., "--output", "-o", metavar="<path>", help="Directory to write."),
    fmt: str = typer.Option(
        "tflite", "--format", "-f",
        help="tflite: model.tflite + tokenizer/meta assets (predict and evaluate accept it); "
        "saved_model: a copy of the SavedModel without logs/ and checkpoints/.",
    ),
    quantize: str = typer.Option(
        "none", "--quantize", "-q",
        help="TFLite only. none (float32), dynamic (int8 weights), float16 (float16 weights) or "
        "int8 (weights and activations; needs --calibration).",
    ),
    calibration: Optional[str] = typer.Option(
        None, "--calibration", help="Texts to check the export on and to calibrate --quantize int8 with (CSV, TSV, "
        "JSONL or one text per line) [default: the texts `albert finetune` kept with the model].",
    ),
    calibration_size: int = typer.Option(200, "--calibration-size", help="Check (and calibrate) with at most this many texts."),
    min_agreement: float = typer.Option(
        0.99, "--min-agreement", help="Refuse a TFLite export that keeps a smaller share of the SavedModel's labels "
        "on the check texts (regression: values within 1% of their range).",
    ),
    text_column: Optional[str] = typer.Option(None, "--text-column", help="Calibration text column [default: the model's]."),
    text_pair_column: Optional[str] = typer.Option(None, "--text-pair-column", help="Calibration second-text column (pair models)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUTPUT if it exists."),
) -> None:
    """Export a model for deployment. --format tflite converts the ids-to-probabilities graph to TFLite
    builtins (texts are tokenized in Python) and checks it against the SavedModel on real texts; `albert predict`
    and `albert evaluate` accept the result."""
    import json
    import sys

    from albert_cli.artifacts.tflite import export_model

    summary = export_model(
        model, output, fmt=fmt, quantize=quantize, calibration=calibration, text_column=text_column,
        text_pair_column=text_pair_column, calibration_size=calibration_size, overwrite=overwrite,
        min_agreement=min_agreement,
    )
    sys.stdout.write(json.dumps(summary, ensure_ascii=False) + "\n")
