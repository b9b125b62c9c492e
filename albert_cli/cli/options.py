"""Options shared by several commands (same names and help everywhere), and the usage line they share.

One meaning per option name across commands: ``--input-format`` is what the input is (csv, tsv, jsonl, txt),
``--format`` what a command writes (predict's output, export's artifact).
"""

from __future__ import annotations

import typer
from typer.core import TyperArgument, TyperCommand

InputFormatOpt = typer.Option(
    None, "--input-format", help="Input format: csv, tsv, jsonl or txt [default: from the extension; stdin is txt]."
)
# The input format's old spelling: it still works (with a warning) so that scripts keep running.
OldInputFormatOpt = typer.Option(None, "--format", hidden=True, help="Deprecated: use --input-format.")
TextColumnOpt = typer.Option("text", "--text-column", help="Column (or JSON field) holding the text.")
TextPairColumnOpt = typer.Option(
    None, "--text-pair-column", help="Column with a second text, for pair tasks (plain text: TEXT<TAB>PAIR lines)."
)
LabelColumnOpt = typer.Option("label", "--label-column", help="Column (or JSON field) holding the label.")
SkipBadRowsOpt = typer.Option(
    False, "--skip-bad-rows", help="Skip rows with empty text or missing labels (counted in a warning) instead of failing."
)
InferencePrecisionOpt = typer.Option(
    None, "--precision", help="fp32, bf16 (bfloat16 matmuls, faster on CPUs with AVX512_BF16/AMX) or auto [default: $ALBERT_PRECISION, else fp32]."
)


def input_format(new: str | None, old: str | None) -> str | None:
    """The input format from ``--input-format`` or its deprecated spelling ``--format`` (a warning on stderr)."""
    if old is None:
        return new
    from albert_cli.errors import UsageError

    if new is not None and new != old:
        raise UsageError(f"--format {old} and --input-format {new} disagree; give only --input-format")
    from albert_cli.console import warn

    warn(f"--format {old} names the input format here, which is deprecated: use --input-format {old}")
    return old


class AlbertCommand(TyperCommand):
    """A command whose usage line names its arguments in capitals (``albert finetune [OPTIONS] TRAIN``), as
    click does: Typer writes a required argument as ``{train}``, which reads as a set of choices."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for param in self.params:
            if isinstance(param, TyperArgument) and param.metavar is None:
                param.metavar = param.name.upper()  # also the name in the "Arguments:" section

    def collect_usage_pieces(self, ctx) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if not isinstance(param, TyperArgument):
                pieces.extend(param.get_usage_pieces(ctx))
                continue
            name = param.metavar or param.name.upper()
            name = name if param.required else f"[{name}]"
            pieces.append(name + ("..." if param.nargs != 1 else ""))
        return pieces


def set_inference_precision(precision: str | None) -> None:
    """`--precision` of predict/evaluate: validated here (one-line error), applied by the predictor before its
    first batch through $ALBERT_PRECISION."""
    if precision is None:
        return
    import os

    from albert_cli._tf import PRECISION_ENV, inference_precision

    inference_precision(precision)
    os.environ[PRECISION_ENV] = precision
