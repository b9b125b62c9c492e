"""`albert predict` (not built yet)."""

from __future__ import annotations

import typer


def predict(ctx: typer.Context) -> None:
    """Not built yet."""
    from albert_cli.errors import AlbertError

    raise AlbertError("'albert predict' is not built yet")
