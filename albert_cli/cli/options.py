"""Options shared by several commands (same names and help everywhere)."""

import typer

FormatOpt = typer.Option(None, "--format", help="Input format: csv, tsv, jsonl or txt [default: from the extension].")
TextColumnOpt = typer.Option("text", "--text-column", help="Column (or JSON field) holding the text.")
TextPairColumnOpt = typer.Option(None, "--text-pair-column", help="Column with a second text, for pair tasks.")
LabelColumnOpt = typer.Option("label", "--label-column", help="Column (or JSON field) holding the label.")
SkipBadRowsOpt = typer.Option(
    False, "--skip-bad-rows", help="Skip rows with empty text or missing labels (counted in a warning) instead of failing."
)
