"""Logs and progress go to stderr (rich); data goes to stdout."""

from __future__ import annotations

import contextlib
import os
import sys

from rich.console import Console

from albert_cli.errors import debug_enabled  # noqa: F401  (re-exported: the console's callers ask it)

err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def info(message: str) -> None:
    """A progress or status line on stderr (rich markup allowed)."""
    err_console.print(message)


def warn(message: str) -> None:
    """A "warning:" line on stderr."""
    err_console.print(f"[yellow]warning:[/yellow] {message}")


def progress(transient: bool = False):
    """A rich progress bar on stderr with throughput and ETA (hidden when stderr is not a terminal, unless
    $ALBERT_PROGRESS=1). Tasks take a `status` field.

    Example:
        >>> with progress() as bar:  # doctest: +SKIP
        ...     task = bar.add_task("reading", total=None, status="")
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=err_console,
        transient=transient,
        disable=not sys.stderr.isatty() and os.environ.get("ALBERT_PROGRESS") != "1",
    )


def _stdout_to_devnull() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


@contextlib.contextmanager
def closed_stdout_is_fine():
    """Around commands that stream to stdout: a reader that goes away (`| head`)
    ends the command quietly with exit 0 (click alone would exit 1 on EPIPE)."""
    try:
        yield
    except BrokenPipeError:
        _stdout_to_devnull()
        raise SystemExit(0) from None
