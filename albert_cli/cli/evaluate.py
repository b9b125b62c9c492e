"""`albert evaluate` (not built yet)."""

from __future__ import annotations

import typer


def evaluate(ctx: typer.Context) -> None:
    """Not built yet."""
    from albert_cli.errors import AlbertError

    raise AlbertError("'albert evaluate' is not built yet")
