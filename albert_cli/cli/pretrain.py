"""`albert pretrain` (not built yet)."""

from __future__ import annotations

import typer


def pretrain(ctx: typer.Context) -> None:
    """Not built yet."""
    from albert_cli.errors import AlbertError

    raise AlbertError("'albert pretrain' is not built yet")
