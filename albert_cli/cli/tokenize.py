"""`albert tokenize train|encode` (placeholder until the text module lands)."""

from __future__ import annotations

import typer

app = typer.Typer(help="Train a SentencePiece vocabulary or encode text with one.", no_args_is_help=True)
