"""A pretraining corpus as text lines (blank line between documents), and a background prefetcher."""

from __future__ import annotations

import queue
import threading
from pathlib import Path
from typing import Iterator

from albert_cli.data.readers import detect_format, iter_records, iter_texts
from albert_cli.errors import DataError


def check_corpus_file(path: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise DataError(f"{path}: no such corpus file")
    if p.is_dir():
        raise DataError(f"{path}: is a directory, expected a corpus file")
    if p.stat().st_size == 0:
        raise DataError(f"{path}: file is empty")
    return p


def _text_lines(path: str) -> Iterator[str]:
    """Lines of a plain-text corpus, blank lines kept (they separate documents)."""
    check_corpus_file(path)
    for (line,) in iter_records(path, "txt"):
        yield line


def _records(path: str, fmt: str, columns: tuple[str, str]) -> Iterator[tuple[str, str]]:
    """(text, doc) of every CSV/TSV/JSONL record (doc column values as strings)."""
    doc_column = columns[1]
    for n, (text, doc) in enumerate(iter_records(path, fmt, columns), start=1):
        if doc is None:
            raise DataError(f"{path}: record {n}: no field '{doc_column}' (--doc-column)")
        yield (text if isinstance(text, str) else ""), str(doc)


def iter_corpus_lines(paths, fmt=None, text_column="text", doc_column=None) -> Iterator[str]:
    """One corpus as text lines with a blank line between documents.

    Plain text: blank lines separate documents.  CSV/TSV/JSONL: one record per
    line; with `doc_column`, consecutive records with the same value form a
    document, otherwise each file is one document.  Files never share a document.
    """
    for path in paths:
        kind = detect_format(path, fmt)
        if kind == "txt":
            yield from _text_lines(path)
        elif doc_column:
            previous = None
            for text, doc in _records(path, kind, (text_column, doc_column)):
                if previous is not None and doc != previous:
                    yield ""
                previous = doc
                if text.strip():
                    yield " ".join(text.split())
        else:
            check_corpus_file(path)
            for text in iter_texts(path, kind, text_column):
                yield " ".join(text.split())
        yield ""


def prefetch(iterator: Iterator, size: int = 4) -> Iterator:
    """Run `iterator` in a daemon thread, `size` items ahead (the data pipeline
    overlaps the training step, which releases the GIL).  The thread stops when
    the consumer does, and is joined before this generator finishes."""
    q: queue.Queue = queue.Queue(maxsize=size)
    done, stop = object(), threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work():
        try:
            for item in iterator:
                if not put(item):
                    return
            put(done)
        except BaseException as exc:  # forwarded to the consumer
            put(exc)

    thread = threading.Thread(target=work, daemon=True, name="pretrain-data")
    thread.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        # Let the worker leave native code (tokenizer, numpy) before the interpreter exits:
        # a daemon thread stopped inside C++ at shutdown aborts the process (exit -6).
        thread.join(timeout=10)
