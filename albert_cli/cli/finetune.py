"""`albert finetune` (not built yet)."""

from __future__ import annotations

import typer


def finetune(ctx: typer.Context) -> None:
    """Not built yet."""
    from albert_cli.errors import AlbertError

    raise AlbertError("'albert finetune' is not built yet")
