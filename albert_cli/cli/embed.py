"""`albert embed` (not built yet)."""

from __future__ import annotations

import typer


def embed(ctx: typer.Context) -> None:
    """Not built yet."""
    from albert_cli.errors import AlbertError

    raise AlbertError("'albert embed' is not built yet")
