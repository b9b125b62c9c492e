"""Errors that the CLI turns into a one-line message and an exit code."""

from __future__ import annotations

import contextlib
import os
import signal
import threading

EXIT_OK = 0
EXIT_DATA = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143



def debug_enabled() -> bool:
    """Whether $ALBERT_DEBUG asks for full tracebacks and the libraries' own logs."""
    return os.environ.get("ALBERT_DEBUG", "").strip() not in ("", "0", "false", "no")

class AlbertError(Exception):
    """A problem with the user's data, model or environment (exit code 1).

    The message must be one line that names the file and, where it applies,
    the row or line and what is wrong.
    """

    exit_code = EXIT_DATA

    def __init__(self, message: str):
        super().__init__(message)
        self.message = " ".join(str(message).split())  # always one line


class DataError(AlbertError):
    """Bad input data (file missing, unreadable, malformed, ...)."""


class ModelError(AlbertError):
    """A model directory or checkpoint that cannot be used."""


class UsageError(AlbertError):
    """Conflicting or out-of-range options (exit code 2)."""

    exit_code = EXIT_USAGE


class Interrupted(Exception):
    """SIGINT/SIGTERM arrived. Not a KeyboardInterrupt, so that click does not
    swallow it as 'Aborted!' with exit code 1; long jobs catch it to save a
    checkpoint, then let it propagate (exit 130 or 143)."""

    def __init__(self, signum: int):
        self.signum = signum
        self.exit_code = EXIT_TERMINATED if signum == signal.SIGTERM else EXIT_INTERRUPTED
        name = "terminated" if signum == signal.SIGTERM else "interrupted"
        super().__init__(name)


def install_signal_handlers() -> None:
    """Turn SIGINT and SIGTERM into `Interrupted` from now on."""

    def _raise(signum, frame):
        raise Interrupted(signum)

    signal.signal(signal.SIGINT, _raise)
    signal.signal(signal.SIGTERM, _raise)


@contextlib.contextmanager
def deferred_interrupts():
    """Hold SIGINT/SIGTERM while a training step runs; raise `Interrupted` after it.

    An exception raised from a signal handler inside a TensorFlow call can be
    turned into another error (e.g. a TypeError while binding tf.function
    arguments), and could land between "weights updated" and "step counted".
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s in saved:
        signal.signal(s, lambda signum, frame: pending.append(signum))
    try:
        yield
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)
        if pending:
            raise Interrupted(pending[0])
