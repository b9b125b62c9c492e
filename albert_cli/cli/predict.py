"""`albert predict`: classify text from a file or stdin, one output record per input."""

from __future__ import annotations

from typing import List, Optional

import typer

from albert_cli.cli.options import InferencePrecisionOpt, InputFormatOpt, SkipBadRowsOpt, set_inference_precision


def predict(
    model: str = typer.Argument(..., help="Model directory written by `albert finetune` (or a TFLite one from `albert export`)."),
    input: Optional[List[str]] = typer.Argument(
        None, help="Input file (txt: one text per line, TEXT<TAB>PAIR for a pair model; or CSV/TSV/JSONL), "
        "'-' for stdin [default: -]. With --runner: one or more files or globs, local or on any file system Beam reads."
    ),
    output_format: str = typer.Option("jsonl", "--format", "-f", help="Output: jsonl, tsv, csv or label (labels only)."),
    fmt: Optional[str] = InputFormatOpt,
    text_column: Optional[str] = typer.Option(
        None, "--text-column", help="CSV/TSV/JSONL: column with the text [default: the model's]."
    ),
    text_pair_column: Optional[str] = typer.Option(
        None, "--text-pair-column", help="CSV/TSV/JSONL: column with the second text (pair models; plain text "
        "gives TEXT<TAB>PAIR lines) [default: the model's]."
    ),
    all_scores: bool = typer.Option(False, "--all-scores", help="Add every label's probability (classifiers)."),
    top_k: int = typer.Option(1, "--top-k", "-k", help="Add the K most probable labels (classifiers; jsonl, tsv, csv)."),
    threshold: Optional[float] = typer.Option(None, "--threshold", help="Multi-label: one threshold for every label [default: tuned on dev]."),
    batch_size: int = typer.Option(32, "--batch-size", help="Texts per batch."),
    precision: Optional[str] = InferencePrecisionOpt,
    skip_bad_rows: bool = SkipBadRowsOpt,
    runner: Optional[str] = typer.Option(
        None, "--runner", help="Run as an Apache Beam pipeline on this runner (DirectRunner, DataflowRunner, "
        "FlinkRunner, SparkRunner, ...); needs the beam extra and -o."
    ),
    output_prefix: Optional[str] = typer.Option(
        None, "--output", "-o", help="With --runner: write sharded JSONL, OUTPUT-00000-of-000NN.jsonl."
    ),
    pipeline_option: Optional[List[str]] = typer.Option(
        None, "--pipeline-option", help="With --runner: one of Beam's pipeline options, KEY=VALUE (repeat it), e.g. "
        "direct_num_workers=2, project=P, region=R, temp_location=gs://B/tmp."
    ),
    id_column: Optional[str] = typer.Option(
        None, "--id-column", help="With --runner, CSV/TSV/JSONL: a column copied into each record as \"id\"."
    ),
) -> None:
    """Predict labels. Plain-text input gives exactly one output line per input line, in order
    (an empty or undecodable line gives {"error": ..., "line": N}); a pair model reads TEXT<TAB>PAIR lines.
    Output is flushed per batch. With --runner, the same records (plus their source and line, or row and id) go
    to sharded JSONL files through an Apache Beam pipeline."""
    from albert_cli.artifacts.modeldir import open_model_dir
    from albert_cli.console import closed_stdout_is_fine
    from albert_cli.errors import UsageError
    from albert_cli.inference.base import check_batch_size
    from albert_cli.inference.predict import make_predictor, predict_lines, predict_table
    from albert_cli.inference.writers import OutputOptions, Writer

    inputs = input or ["-"]
    if runner is not None:
        return _predict_beam(model, inputs, runner, output_prefix, pipeline_option or [], id_column, output_format,
                             fmt, text_column, text_pair_column, all_scores, top_k, threshold, batch_size, precision,
                             skip_bad_rows)
    for option, value in (("-o", output_prefix), ("--pipeline-option", pipeline_option), ("--id-column", id_column)):
        if value:
            raise UsageError(f"{option} applies to a Beam pipeline: add --runner DirectRunner (or another runner)")
    if len(inputs) > 1:
        raise UsageError(f"{len(inputs)} INPUTs: albert predict reads one file or stdin; for several files or a "
                         f"glob, run a Beam pipeline with --runner DirectRunner -o PREFIX")
    input = inputs[0]
    if top_k < 1:
        raise UsageError(f"--top-k must be at least 1, got {top_k}")
    set_inference_precision(precision)
    if threshold is not None and not 0 < threshold < 1:
        raise UsageError(f"--threshold must be between 0 and 1, got {threshold}")
    check_batch_size(batch_size)
    # Everything that can be checked without TensorFlow is checked before the model loads.
    meta = open_model_dir(model)[1]
    writer = Writer(meta, OutputOptions(output_format, all_scores, top_k, threshold))
    ds = _read_table(meta, input, fmt, text_column, text_pair_column, skip_bad_rows)
    predictor = make_predictor(model, batch_size=batch_size)
    with closed_stdout_is_fine():
        if ds is None:
            predict_lines(predictor, input, writer)
        else:
            predict_table(predictor, ds, writer)


BEAM_HINT = "pip install 'albert-cli[beam]'"


def _require_beam() -> None:
    """Apache Beam imported (its import-time notices kept off stderr), or a one-line UsageError naming the extra."""
    import logging

    from albert_cli.errors import UsageError, debug_enabled

    if not debug_enabled():
        logging.getLogger().setLevel(logging.CRITICAL)  # Beam logs notices (and a failed step's traceback) there
    try:
        import apache_beam  # noqa: F401
    except ImportError:
        raise UsageError(f"--runner needs Apache Beam: install it with {BEAM_HINT}") from None


def _predict_beam(model, inputs, runner, output_prefix, pipeline_options, id_column, output_format, fmt, text_column,
                  text_pair_column, all_scores, top_k, threshold, batch_size, precision, skip_bad_rows) -> None:
    """`albert predict --runner`: the checks, then `albert_cli.inference.beam.run_job`; one JSON summary line."""
    import json

    from albert_cli.errors import UsageError
    from albert_cli.inference.base import check_batch_size
    from albert_cli.inference.writers import OutputOptions

    if not output_prefix:
        raise UsageError("--runner writes sharded JSONL files: give their prefix with -o, e.g. -o out/predictions")
    if output_format != "jsonl":
        raise UsageError(f"--format {output_format}: a Beam pipeline writes jsonl records (with their source)")
    if "-" in inputs:
        raise UsageError("--runner reads files (or globs), not stdin: give INPUT paths")
    if top_k < 1:
        raise UsageError(f"--top-k must be at least 1, got {top_k}")
    if threshold is not None and not 0 < threshold < 1:
        raise UsageError(f"--threshold must be between 0 and 1, got {threshold}")
    set_inference_precision(precision)
    _require_beam()
    from albert_cli.inference.beam import BeamJob, run_job

    job = BeamJob(model=model, inputs=tuple(inputs), output_prefix=output_prefix, runner=runner,
                  pipeline_options=tuple(pipeline_options), input_format=fmt, text_column=text_column,
                  text_pair_column=text_pair_column, id_column=id_column, skip_bad_rows=skip_bad_rows,
                  output=OutputOptions("jsonl", all_scores, top_k, threshold), batch_size=check_batch_size(batch_size),
                  precision=precision)
    summary = run_job(job)
    print(json.dumps(summary), flush=True)
    if summary["failed_files"]:
        from albert_cli.errors import DataError

        raise DataError(f"{summary['failed_files']} input file(s) could not be read: their records "
                        f"{{\"error\": ..., \"source\": FILE}} are in the shards")


def _read_table(meta, input: str, fmt, text_column, text_pair_column, skip_bad_rows):
    """CSV/TSV/JSONL input read whole (None for plain text, which is streamed line by line)."""
    from albert_cli.data.readers import detect_format, read_dataset
    from albert_cli.data.sources import check_input_file, is_stdin
    from albert_cli.errors import UsageError

    kind = detect_format(input, fmt)
    if text_pair_column is not None and not meta.pair:
        raise UsageError("--text-pair-column: this model classifies single texts, it has no second input")
    if kind == "txt":
        for option, value in (("--text-column", text_column), ("--text-pair-column", text_pair_column)):
            if value is not None:  # plain text has no columns: the option would be ignored
                pair = "; a pair model reads TEXT<TAB>PAIR lines" if meta.pair else ""
                raise UsageError(f"{option} applies to CSV/TSV/JSONL input, not plain text{pair}")
        if skip_bad_rows:  # a bad line keeps its place as an error record: one output line per input line
            raise UsageError("--skip-bad-rows applies to CSV/TSV/JSONL input; a bad plain-text line gives an error record")
        if not is_stdin(input):
            check_input_file(input)
        return None
    cols = meta.columns or {}
    return read_dataset(
        input,
        fmt=kind,
        text_column=text_column or cols.get("text") or "text",
        text_pair_column=text_pair_column or (cols.get("text_pair") if meta.pair else None),
        label_column=None,
        skip_bad_rows=skip_bad_rows,
    )
