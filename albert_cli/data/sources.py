"""Where input comes from: ``-`` (standard input) or a file, opened in one place.

Every command that reads text (``finetune``, ``predict``, ``evaluate``, ``embed``,
``tokenize``, ``pretrain``) goes through :func:`open_input`, so the checks and the
error messages for a missing, unreadable or directory path are the same everywhere.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from pathlib import Path
from typing import BinaryIO, Iterator

from albert_cli.errors import DataError

STDIN = "-"
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def is_stdin(path: str | os.PathLike) -> bool:
    return str(path) == STDIN


def display_name(path: str | os.PathLike) -> str:
    """The name used in messages: ``<stdin>`` for ``-``, else the path as given."""
    return "<stdin>" if is_stdin(path) else str(path)


def check_input_file(path: str | os.PathLike) -> Path:
    """An existing, readable, non-directory file, or a one-line `DataError`."""
    p = Path(str(path))
    if not p.exists():
        raise DataError(f"{p}: no such file")
    if p.is_dir():
        raise DataError(f"{p}: is a directory, expected a file")
    if not os.access(p, os.R_OK):
        raise DataError(f"{p}: permission denied")
    return p


@contextlib.contextmanager
def open_input(path: str | os.PathLike, allow_empty: bool = True) -> Iterator[BinaryIO]:
    """A binary stream of `path` (standard input for ``-``), closed afterwards (stdin is left open).

    Args:
        path: a file path or ``-``.
        allow_empty: when False, an empty file is a `DataError` ("file is empty").
    """
    if is_stdin(path):
        yield sys.stdin.buffer
        return
    p = check_input_file(path)
    if not allow_empty and p.stat().st_size == 0:
        raise DataError(f"{display_name(path)}: file is empty")
    try:
        raw = open(p, "rb")
    except OSError as exc:
        raise DataError(f"{p}: cannot read ({exc.strerror})") from None
    try:
        yield raw
    finally:
        raw.close()


def sniff_encoding(raw) -> str:
    """"utf-16" if the binary stream `raw` (or the file at a path) starts with a UTF-16 BOM, else "utf-8-sig"."""
    if isinstance(raw, (str, os.PathLike)):
        with open(raw, "rb") as f:
            head = f.read(2)
    else:
        head = raw.peek(2)[:2] if hasattr(raw, "peek") else b""
    return "utf-16" if head in UTF16_BOMS else "utf-8-sig"


def utf8_lines(raw, name: str) -> Iterator[bytes]:
    """The lines of binary stream `raw` as bytes, read one at a time (so `tail -f` works).

    A UTF-16 stream (BOM first) is transcoded to UTF-8; anything else is passed
    through untouched (the caller decodes each line and reports bad ones).
    """
    if sniff_encoding(raw) != "utf-16":
        yield from iter(raw.readline, b"")
        return
    text = io.TextIOWrapper(raw, encoding="utf-16", errors="strict", newline="")
    lineno = 0
    try:
        for lineno, line in enumerate(text, start=1):
            yield line.encode("utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{name}: near line {lineno + 1}: invalid UTF-16") from None
    finally:
        text.detach()  # do not close `raw` (it may be stdin)
