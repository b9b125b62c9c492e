"""Line-by-line input for ``predict`` and ``embed``: one record per input line, streamed in chunks."""

from __future__ import annotations

import os
import queue
import threading
from typing import Iterator

from albert_cli.data.sources import display_name, is_stdin, open_input, utf8_lines

STREAM_WAIT = 0.05
"""Seconds without new input after which a partial chunk of a stream is released."""


def iter_lines(path) -> Iterator[tuple[int, str | None, str | None]]:
    """(line number, text or None, error or None) for each line of `path` (``-``: stdin), streaming."""
    with open_input(path) as raw:
        yield from stream_lines(raw, display_name(path))


def stream_lines(raw, name: str) -> Iterator[tuple[int, str | None, str | None]]:
    """`iter_lines` of an open binary stream (``albert predict --runner`` opens its inputs with Beam's file
    systems); `name` is for messages."""
    for lineno, line in enumerate(utf8_lines(raw, name), start=1):
        if lineno == 1 and line.startswith(b"\xef\xbb\xbf"):
            line = line[3:]
        try:
            text = line.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            yield lineno, None, "not valid UTF-8"
            continue
        if "\x00" in text:
            yield lineno, None, "contains NUL bytes"
        elif not text.strip():
            yield lineno, None, "empty line"
        else:
            yield lineno, text, None


def stream_wait(path) -> float | None:
    """:data:`STREAM_WAIT` for stdin or a pipe (so ``tail -f log | albert predict m -`` answers promptly),
    None for a regular file."""
    return STREAM_WAIT if is_stdin(path) or not os.path.isfile(str(path)) else None


def _chunks(items: Iterator, size: int) -> Iterator[list]:
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _pumped(items: Iterator, size: int) -> queue.Queue:
    """A queue filled from `items` by a background thread, ending with `_DONE` (or the exception raised)."""
    q: queue.Queue = queue.Queue(maxsize=size * 4)

    def pump():
        try:
            for item in items:
                q.put(item)
        except BaseException as exc:  # surfaced in the consumer
            q.put(exc)
        q.put(_DONE)

    threading.Thread(target=pump, daemon=True).start()
    return q


_DONE = object()


def chunked(items: Iterator, size: int, wait: float | None) -> Iterator[list]:
    """Group an iterator into lists of up to `size`.

    With `wait` (seconds), a partial chunk is released when no new item arrives
    within `wait`, so `tail -f log | albert predict m -` answers promptly.
    """
    if wait is None:
        yield from _chunks(items, size)
        return
    q = _pumped(items, size)
    finished = False
    while not finished:
        item = q.get()
        if item is _DONE:
            return
        if isinstance(item, BaseException):
            raise item
        chunk = [item]
        while len(chunk) < size:
            try:
                item = q.get(timeout=wait)
            except queue.Empty:
                break
            if item is _DONE:
                finished = True
                break
            if isinstance(item, BaseException):
                raise item
            chunk.append(item)
        yield chunk
