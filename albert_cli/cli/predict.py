"""`albert predict`: classify text from a file or stdin, one output record per input."""

from __future__ import annotations

from typing import Optional

import typer

from albert_cli.cli.options import InferencePrecisionOpt, SkipBadRowsOpt, set_inference_precision


def predict(
    model: str = typer.Argument(..., help="Model directory written by `albert finetune` (or a TFLite one from `albert export`)."),
    input: str = typer.Argument("-", help="Input file (txt: one text per line; or CSV/TSV/JSONL), '-' for stdin."),
    output_format: str = typer.Option("jsonl", "--format", "-f", help="Output: jsonl, tsv, csv or label (labels only)."),
    fmt: Optional[str] = typer.Option(
        None, "--input-format", help="Input format: txt, csv, tsv or jsonl [default: from the extension; stdin is txt]."
    ),
    text_column: Optional[str] = typer.Option(None, "--text-column", help="Column with the text [default: the model's]."),
    text_pair_column: Optional[str] = typer.Option(None, "--text-pair-column", help="Column with the second text (pair models)."),
    all_scores: bool = typer.Option(False, "--all-scores", help="Add every label's probability."),
    top_k: int = typer.Option(1, "--top-k", "-k", help="Add the K most probable labels."),
    threshold: Optional[float] = typer.Option(None, "--threshold", help="Multi-label: one threshold for every label [default: tuned on dev]."),
    batch_size: int = typer.Option(32, "--batch-size", help="Texts per batch."),
    precision: Optional[str] = InferencePrecisionOpt,
    skip_bad_rows: bool = SkipBadRowsOpt,
) -> None:
    """Predict labels. Plain-text input gives exactly one output line per input line, in order
    (an empty or undecodable line gives {"error": ..., "line": N}); output is flushed per batch."""
    from albert_cli.data.readers import detect_format, read_dataset
    from albert_cli.data.sources import check_input_file, is_stdin
    from albert_cli.console import closed_stdout_is_fine
    from albert_cli.errors import UsageError
    from albert_cli.inference.base import check_batch_size
    from albert_cli.inference.predict import make_predictor, predict_lines, predict_table
    from albert_cli.inference.writers import OutputOptions, Writer
    from albert_cli.artifacts.modeldir import open_model_dir

    if top_k < 1:
        raise UsageError(f"--top-k must be at least 1, got {top_k}")
    set_inference_precision(precision)
    if threshold is not None and not 0 < threshold < 1:
        raise UsageError(f"--threshold must be between 0 and 1, got {threshold}")
    check_batch_size(batch_size)
    # Everything that can be checked without TensorFlow is checked before the model loads.
    meta = open_model_dir(model)[1]
    if top_k > max(1, len(meta.labels)):
        top_k = max(1, len(meta.labels))
    writer = Writer(meta, OutputOptions(output_format, all_scores, top_k, threshold))
    kind = detect_format(input, fmt)
    ds = None
    if kind == "txt":
        if meta.pair:
            raise UsageError(f"{model}: a pair model needs CSV/TSV/JSONL input with --text-pair-column")
        if not is_stdin(input):
            check_input_file(input)
    else:
        cols = meta.columns or {}
        ds = read_dataset(
            input,
            fmt=kind,
            text_column=text_column or cols.get("text") or "text",
            text_pair_column=text_pair_column or (cols.get("text_pair") if meta.pair else None),
            label_column=None,
            skip_bad_rows=skip_bad_rows,
        )
    predictor = make_predictor(model, batch_size=batch_size)
    with closed_stdout_is_fine():
        if ds is None:
            predict_lines(predictor, input, writer)
        else:
            predict_table(predictor, ds, writer)
