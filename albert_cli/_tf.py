"""The one place that imports TensorFlow for the CLI, with quiet, fast defaults.

Environment variables must be set before TensorFlow is first imported. The
full `tensorflow` wheel (which tensorflow-text requires) is the CUDA build: on
a machine without a GPU its C++ start-up logs oneDNN/CUDA notices and a
cuInit error straight to file descriptor 2, before `TF_CPP_MIN_LOG_LEVEL`
applies. So the import and the device probe run with fd 2 pointed at
/dev/null (unless ALBERT_DEBUG is set); Python exceptions still propagate.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import threading


def setup_env() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # no INFO/WARNING spam on stderr
    # oneDNN: measured +26-48% on this class of CPU, but off by default on AMD.
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")


@contextlib.contextmanager
def _quiet_stderr_fd():
    from albert_cli.console import debug_enabled

    if debug_enabled():
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


_TF_LOG_LINE = re.compile(rb"^(WARNING: All log messages before absl|[IWEF]\d{4} [\d:.]+ +\d+ \S+:\d+\])")


def filter_native_stderr() -> None:
    """Keep TensorFlow's C++ log lines (written to fd 2 at run time) off the user's terminal.

    Python keeps writing to the real stderr through a duplicate descriptor;
    native code writes to a pipe whose lines are forwarded unless they look
    like absl/TF log lines. Skipped with ALBERT_DEBUG.
    """
    from albert_cli.console import debug_enabled

    if debug_enabled() or getattr(filter_native_stderr, "done", False):
        return
    try:
        sys.stderr.flush()
        real = os.dup(2)
        read_end, write_end = os.pipe()
    except (OSError, ValueError):
        return
    if sys.stderr is sys.__stderr__:  # Python's own writes bypass the filter (not when captured)
        sys.stderr = io.TextIOWrapper(os.fdopen(real, "wb", buffering=0, closefd=False), encoding="utf-8",
                                      errors="backslashreplace", line_buffering=True, write_through=True)
    os.dup2(write_end, 2)
    os.close(write_end)

    def pump():
        with os.fdopen(read_end, "rb") as pipe:
            for line in pipe:
                if not _TF_LOG_LINE.match(line):
                    try:
                        os.write(real, line)
                    except OSError:
                        return

    threading.Thread(target=pump, daemon=True, name="albert-stderr-filter").start()
    filter_native_stderr.done = True


def import_tf():
    setup_env()
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    with _quiet_stderr_fd():
        import tensorflow as tf

        tf.config.list_physical_devices()  # device probe (cuInit) while quiet
        try:
            import absl.logging

            absl.logging.set_verbosity(absl.logging.ERROR)
        except Exception:  # pragma: no cover
            pass
    return tf
