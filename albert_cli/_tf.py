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

from albert_cli.errors import UsageError, debug_enabled


def setup_env() -> None:
    """Quiet, fast TensorFlow defaults (and the TensorFlow Keras backend) unless the environment sets them."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # no INFO/WARNING spam on stderr
    # oneDNN is off by default on AMD CPUs, where it is faster too (see bench/README.md).
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")


@contextlib.contextmanager
def _quiet_stderr_fd():
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
    """TensorFlow, imported once with `setup_env`'s defaults and its start-up noise hidden from stderr."""
    setup_env()
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    # TensorFlow's import pulls in keras' scikit-learn wrappers, which import scikit-learn and
    # SciPy (a noticeable part of start-up). Nothing here uses those wrappers: hide scikit-learn
    # during the import (keras then defines the wrappers without it); later imports get it.
    hide_sklearn = "sklearn" not in sys.modules
    if hide_sklearn:
        sys.modules["sklearn"] = None  # type: ignore[assignment]
    try:
        with _quiet_stderr_fd():
            import tensorflow as tf
    finally:
        if hide_sklearn and sys.modules.get("sklearn", 0) is None:
            del sys.modules["sklearn"]
    with _quiet_stderr_fd():
        tf.config.list_physical_devices()  # device probe (cuInit) while quiet
        try:
            import absl.logging

            absl.logging.set_verbosity(absl.logging.ERROR)
        except Exception:  # pragma: no cover
            pass
    return tf


# ---------------------------------------------------------------- inference precision
PRECISION_ENV = "ALBERT_PRECISION"
PRECISIONS = ("fp32", "bf16", "auto")


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """True when the CPU multiplies bfloat16 in hardware (AVX512_BF16 or AMX-BF16), so oneDNN's
    bf16 matmuls run at about twice the fp32 rate (without it, bf16 is emulated and slower)."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
                cpuinfo = f.read()
        except OSError:
            return False
    return re.search(r"\b(avx512_bf16|amx_bf16)\b", cpuinfo) is not None


def inference_precision(value: str | None = None) -> str:
    """The precision served models run at: "fp32" or "bf16".

    From `value` (a `--precision` option, named so in errors) or else $ALBERT_PRECISION:
    "fp32" (default: exact), "bf16" (matmuls in bfloat16, opt-in) or "auto" (bf16 on a CPU
    with native bf16, fp32 elsewhere).
    """
    raw = os.environ.get(PRECISION_ENV, "") if value is None else value
    choice = {"": "fp32", "float32": "fp32", "bfloat16": "bf16"}.get(raw.strip().lower(), raw.strip().lower())
    if choice not in PRECISIONS:
        name = f"${PRECISION_ENV}" if value is None else "--precision"
        raise UsageError(f"{name} must be one of {', '.join(PRECISIONS)}, got '{raw}'")
    if choice == "auto":
        return "bf16" if cpu_has_native_bf16() else "fp32"
    return choice


def apply_inference_precision(precision: str) -> None:
    """Make graphs instantiated from now on run at `precision` ("fp32": no change).

    "bf16" turns on TensorFlow's oneDNN auto-mixed-precision graph rewrite: the MatMul /
    BatchMatMul ops run in bfloat16 (oneDNN accumulates in float32) and the ops its lists
    allow next to them (bias add, GELU, softmax) follow in bfloat16; ops on its deny list
    stay in float32, and the outputs are float32 as before. It is a process-wide grappler
    option that applies to functions when they are first run, so call it before the first
    call of the served signature. Nothing in the saved model changes.
    """
    if precision == "fp32":
        return
    if precision != "bf16":
        raise ValueError(f"unknown precision {precision!r}")
    tf = import_tf()
    tf.config.optimizer.set_experimental_options({"auto_mixed_precision_onednn_bfloat16": True})
