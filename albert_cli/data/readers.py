"""Readers for CSV, TSV, JSONL and plain text, shared by every command.

Every problem with the input becomes a one-line :class:`DataError` naming the
file, the row or line, and what is wrong. Row numbers count data rows from 1
(the header is not a row); line numbers count physical lines from 1.

Formats (chosen by extension or ``fmt``):

* ``csv`` / ``tsv``: a header row; columns picked by name. TSV is read without
  quote processing (as GLUE-style files expect).
* ``jsonl``: one JSON object per line; multi-label labels may be JSON lists.
* ``txt``: one example per line (no labels), or fastText style
  ``__label__A __label__B text`` when labels are needed. For a pair task
  (a text pair column is set), each line is ``TEXT<TAB>PAIR``.

``-`` reads standard input.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from albert_cli.console import warn
from albert_cli.data.sources import display_name, is_stdin, open_input, sniff_encoding
from albert_cli.errors import DataError, UsageError

FORMATS = ("csv", "tsv", "jsonl", "txt")
_EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".txt": "txt",
    ".text": "txt",
}
MULTI_LABEL_SEPARATOR = "|"
FASTTEXT_PREFIX = "__label__"


@dataclass
class Dataset:
    """Examples read from one file, in file order."""

    name: str
    texts: list[str] = field(default_factory=list)
    pairs: list[str] | None = None
    labels: list | None = None  # str, list[str] (multi-label) or float (regression)
    rows: list[int] = field(default_factory=list)  # source row/line of each example
    skipped: int = 0

    def __len__(self) -> int:
        return len(self.texts)


def detect_format(path: str | os.PathLike, fmt: str | None = None) -> str:
    """`fmt` checked, or the format its extension says (``-`` and unknown extensions: ``txt``)."""
    if fmt and fmt != "auto":
        fmt = fmt.lower()
        if fmt not in FORMATS:
            raise UsageError(f"unknown --input-format '{fmt}': use one of {', '.join(FORMATS)}")
        return fmt
    if is_stdin(path):
        return "txt"
    suffixes = [s.lower() for s in Path(str(path)).suffixes]
    for suffix in reversed(suffixes):
        if suffix in _EXTENSIONS:
            return _EXTENSIONS[suffix]
    return "txt"


PAIR_SEPARATOR = "\t"


def split_pair(line: str) -> tuple[str, str, str | None]:
    """A plain-text line of a pair task, ``TEXT<TAB>PAIR``: (text, pair, None), or ("", "", what is wrong).

    Exactly one tab: a third field (a label column of a TSV file, say) must not slip into the pair's text.
    """
    fields = line.split(PAIR_SEPARATOR)
    if len(fields) == 2:
        for value, where in zip(fields, ("text before", "pair after")):
            if not value.strip():
                return "", "", f"empty {where} the tab"
        return fields[0], fields[1], None
    found = "no tab" if len(fields) == 1 else f"{len(fields)} tab-separated fields"
    return "", "", f"pair input needs TEXT<TAB>PAIR lines, found {found}"


def read_bytes(path: str | os.PathLike) -> bytes:
    """The whole content of `path` (standard input for ``-``)."""
    with open_input(path) as raw:
        return raw.read()


def decode(data: bytes, name: str) -> str:
    """Decode UTF-8 (with or without BOM) or BOM-marked UTF-16; say where it fails."""
    if data.startswith(b"\xff\xfe") or data.startswith(b"\xfe\xff"):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise DataError(f"{name}: invalid UTF-16 at byte {exc.start}") from None
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        bad = data[exc.start : exc.start + 1].hex()
        raise DataError(
            f"{name}: line {line}, byte {col}: not valid UTF-8 (byte 0x{bad}); save the file as UTF-8"
        ) from None
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise DataError(f"{name}: line {line}: contains NUL bytes (binary data, or UTF-16 without a BOM?)")
    return text


def _is_missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def text_problem(column: str, value) -> str | None:
    """Why a text cell cannot be classified (empty, or not a string), or None when it can."""
    if _is_missing(value) or (isinstance(value, str) and not value.strip()):
        return f"empty text in column '{column}'"
    if not isinstance(value, str):
        return f"text in column '{column}' is not a string (got {type(value).__name__})"
    return None


def _parse_label(value, kind: str, name: str, where: str, column: str):
    """Returns the label, or None when the cell is empty."""
    if _is_missing(value):
        return None
    if kind == "regression":
        if isinstance(value, bool):
            raise DataError(f"{name}: {where}: label in column '{column}' is not a number: {value!r}")
        if isinstance(value, (int, float)):
            return float(value)
        text = str(value).strip()
        if not text:
            return None
        try:
            number = float(text)
        except ValueError:
            raise DataError(f"{name}: {where}: label in column '{column}' is not a number: {text[:40]!r}") from None
        if math.isnan(number) or math.isinf(number):
            raise DataError(f"{name}: {where}: label in column '{column}' is not a finite number: {text!r}")
        return number
    if kind == "multi":
        if isinstance(value, list):
            parts = [str(v).strip() for v in value]
        else:
            parts = [p.strip() for p in str(value).split(MULTI_LABEL_SEPARATOR)]
        parts = [p for p in parts if p]
        return sorted(set(parts))  # an empty list is a valid multi-label target
    if isinstance(value, list):
        raise DataError(
            f"{name}: {where}: label in column '{column}' is a list; use --multi-label for multi-label data"
        )
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    return text or None


class _Collector:
    """Accumulates examples, applying the empty-text and missing-label rules."""

    def __init__(self, name, text_column, pair_column, label_column, label_kind, skip_bad_rows, unit):
        self.ds = Dataset(name=name, pairs=[] if pair_column else None, labels=[] if label_column else None)
        self.text_column, self.pair_column, self.label_column = text_column, pair_column, label_column
        self.label_kind, self.skip_bad_rows, self.unit = label_kind, skip_bad_rows, unit
        self.first_skip: str | None = None

    def bad(self, message: str) -> None:
        if not self.skip_bad_rows:
            raise DataError(f"{self.ds.name}: {message} (use --skip-bad-rows to skip such rows)")
        self.ds.skipped += 1
        self.first_skip = self.first_skip or message

    def add(self, number: int, text, pair=None, label=None) -> None:
        where = f"{self.unit} {number}"
        for column, value in ((self.text_column, text), (self.pair_column, pair)):
            problem = text_problem(column, value) if column is not None else None
            if problem is not None:
                return self.bad(f"{where}: {problem}")
        parsed = None
        if self.label_column is not None:
            parsed = _parse_label(label, self.label_kind, self.ds.name, where, self.label_column)
            if parsed is None:
                return self.bad(f"{where}: missing label in column '{self.label_column}'")
        self.ds.texts.append(text)
        if self.pair_column:
            self.ds.pairs.append(pair)
        if self.label_column is not None:
            self.ds.labels.append(parsed)
        self.ds.rows.append(number)

    def finish(self) -> Dataset:
        if self.ds.skipped:
            warn(f"{self.ds.name}: skipped {self.ds.skipped} bad row(s); first: {self.first_skip}")
        if not self.ds.texts:
            raise DataError(f"{self.ds.name}: no usable examples (all {self.ds.skipped} rows were bad)")
        return self.ds


def _missing_column(name: str, column: str, option: str, columns: list[str]) -> DataError:
    shown = ", ".join(repr(c) for c in columns) or "(none)"
    hint = ""
    if len(columns) == 1:
        for sep, label in ((";", "semicolon"), ("\t", "tab"), ("|", "pipe"), (",", "comma")):
            if sep in columns[0]:
                hint = f"; the header looks {label}-separated: check the delimiter or --input-format"
                break
    return DataError(f"{name}: no column '{column}' (set it with {option}); columns are: {shown}{hint}")


def read_dataset(
    path: str | os.PathLike,
    fmt: str | None = None,
    text_column: str = "text",
    text_pair_column: str | None = None,
    label_column: str | None = "label",
    label_kind: str = "single",
    skip_bad_rows: bool = False,
    data: bytes | None = None,
) -> Dataset:
    """Read a whole labelled (or unlabelled, with ``label_column=None``) dataset.

    ``label_kind`` is ``single``, ``multi`` or ``regression``.
    """
    name = display_name(path)
    fmt = detect_format(path, fmt)
    raw = read_bytes(path) if data is None else data
    if not raw.strip():
        raise DataError(f"{name}: file is empty")
    text = decode(raw, name)
    if not text.strip():
        raise DataError(f"{name}: file is empty")
    if fmt in ("csv", "tsv"):
        return _read_table(text, name, fmt, text_column, text_pair_column, label_column, label_kind, skip_bad_rows)
    if fmt == "jsonl":
        return _read_jsonl(text, name, text_column, text_pair_column, label_column, label_kind, skip_bad_rows)
    return _read_txt(text, name, label_column, label_kind, skip_bad_rows, pairs=text_pair_column is not None)


def _read_table(text, name, fmt, text_column, pair_column, label_column, label_kind, skip_bad_rows) -> Dataset:
    import pandas as pd

    sep = "," if fmt == "csv" else "\t"
    try:
        frame = pd.read_csv(
            io.StringIO(text),
            sep=sep,
            dtype=str,
            keep_default_na=False,
            quoting=csv.QUOTE_MINIMAL if fmt == "csv" else csv.QUOTE_NONE,
            skip_blank_lines=True,
        )
    except pd.errors.EmptyDataError:
        raise DataError(f"{name}: file is empty") from None
    except pd.errors.ParserError as exc:
        detail = " ".join(str(exc).split()).replace("Error tokenizing data. C error: ", "")
        raise DataError(f"{name}: malformed {fmt.upper()}: {detail}") from None
    columns = [str(c) for c in frame.columns]
    wanted = [(text_column, "--text-column"), (pair_column, "--text-pair-column"), (label_column, "--label-column")]
    for column, option in wanted:
        if column is not None and column not in columns:
            raise _missing_column(name, column, option, columns)
    if len(frame) == 0:
        raise DataError(f"{name}: header only, no data rows")
    if label_column is not None and not any(v.strip() for v in frame[label_column]):
        raise DataError(f"{name}: label column '{label_column}' is empty in every row")
    col = _Collector(name, text_column, pair_column, label_column, label_kind, skip_bad_rows, "row")
    texts = frame[text_column].tolist()
    pairs = frame[pair_column].tolist() if pair_column else [None] * len(texts)
    labels = frame[label_column].tolist() if label_column else [None] * len(texts)
    for i, (t, p, y) in enumerate(zip(texts, pairs, labels), start=1):
        col.add(i, t, p, y)
    return col.finish()


def _json_object(line: str, name: str, lineno: int) -> dict:
    """One JSONL line as a dict, or a DataError naming the file and line."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise DataError(f"{name}: line {lineno}: invalid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(record, dict):
        raise DataError(f"{name}: line {lineno}: expected a JSON object, got {type(record).__name__}")
    return record


def _read_jsonl(text, name, text_column, pair_column, label_column, label_kind, skip_bad_rows) -> Dataset:
    col = _Collector(name, text_column, pair_column, label_column, label_kind, skip_bad_rows, "line")
    seen_label = False
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        record = _json_object(line, name, lineno)
        for column, option in ((text_column, "--text-column"), (pair_column, "--text-pair-column")):
            if column is not None and column not in record:
                raise DataError(
                    f"{name}: line {lineno}: no field '{column}' (set it with {option}); "
                    f"fields are: {', '.join(repr(k) for k in record) or '(none)'}"
                )
        label = None
        if label_column is not None:
            label = record.get(label_column)
            seen_label = seen_label or not _is_missing(label)
        col.add(lineno, record.get(text_column), record.get(pair_column) if pair_column else None, label)
    if not col.ds.texts and not col.ds.skipped:
        raise DataError(f"{name}: file is empty")
    if label_column is not None and not seen_label:
        raise DataError(f"{name}: no record has a '{label_column}' field (set it with --label-column)")
    return col.finish()


def _read_txt(text, name, label_column, label_kind, skip_bad_rows, pairs: bool = False) -> Dataset:
    labelled = label_column is not None
    col = _Collector(name, "text", "pair" if pairs else None, "label" if labelled else None, label_kind,
                     skip_bad_rows, "line")
    for lineno, line in enumerate(text.splitlines(), start=1):
        pair = None
        if pairs:  # TEXT<TAB>PAIR (fastText labels, if any, lead TEXT)
            line, pair, problem = split_pair(line)
            if problem:
                col.bad(f"line {lineno}: {problem}")
                continue
        if labelled:
            labels, words = [], line.split()
            while words and words[0].startswith(FASTTEXT_PREFIX):
                labels.append(words.pop(0)[len(FASTTEXT_PREFIX) :])
            if not labels:
                raise DataError(
                    f"{name}: line {lineno}: no label; plain-text training data needs fastText-style "
                    f"'{FASTTEXT_PREFIX}LABEL text' lines (or use CSV/TSV/JSONL with a label column)"
                )
            label = labels if label_kind == "multi" else labels[0]
            col.add(lineno, " ".join(words), pair, label)
        else:
            col.add(lineno, line, pair)
    return col.finish()


def _csv_records(stream, name: str, fmt: str, columns: tuple[str, ...], where: list[int]) -> Iterator[tuple]:
    reader = csv.reader(
        stream,
        delimiter="," if fmt == "csv" else "\t",
        quoting=csv.QUOTE_MINIMAL if fmt == "csv" else csv.QUOTE_NONE,
    )
    try:
        header = next(reader)
    except StopIteration:
        raise DataError(f"{name}: file is empty") from None
    options = ("--text-column", "--doc-column")
    for i, column in enumerate(columns):
        if column not in header:
            raise _missing_column(name, column, options[min(i, 1)], header)
    indices = [header.index(c) for c in columns]
    for row in reader:
        where[0] = reader.line_num
        yield tuple(row[i] if i < len(row) else "" for i in indices)


def _jsonl_records(stream, name: str, columns: tuple[str, ...], where: list[int]) -> Iterator[tuple]:
    for lineno, line in enumerate(stream, start=1):
        where[0] = lineno
        if not line.strip():
            continue
        record = _json_object(line, name, lineno)
        yield tuple(record.get(c) for c in columns)


def _text_records(stream, name: str, where: list[int]) -> Iterator[tuple]:
    for lineno, line in enumerate(stream, start=1):
        where[0] = lineno
        line = line.rstrip("\r\n")
        if "\x00" in line:
            raise DataError(f"{name}: line {lineno}: contains NUL bytes (binary data?)")
        yield (line,)


def iter_records(
    path: str | os.PathLike, fmt: str | None = None, columns: tuple[str, ...] = ("text",)
) -> Iterator[tuple]:
    """Stream the values of `columns` for every record, without loading the file.

    CSV/TSV: a missing column is an error (naming the columns that exist);
    JSONL: a record without a field gives None for it; a text file yields
    ``(line,)``. Used for corpora (SentencePiece training, pretraining).
    """
    name = display_name(path)
    fmt = detect_format(path, fmt)
    where = [0]  # the last line read, for the messages below
    with open_input(path, allow_empty=False) as raw:
        stream = io.TextIOWrapper(raw, encoding=sniff_encoding(raw), errors="strict", newline="")
        try:
            if fmt in ("csv", "tsv"):
                yield from _csv_records(stream, name, fmt, columns, where)
            elif fmt == "jsonl":
                yield from _jsonl_records(stream, name, columns, where)
            else:
                yield from _text_records(stream, name, where)
        except UnicodeDecodeError:
            raise DataError(f"{name}: near line {where[0] + 1}: not valid UTF-8; save the file as UTF-8") from None
        except csv.Error as exc:
            raise DataError(f"{name}: line {where[0] + 1}: malformed {fmt.upper()}: {exc}") from None
        finally:
            stream.detach()  # leave `raw` to open_input (it may be stdin)


def iter_texts(
    path: str | os.PathLike, fmt: str | None = None, text_column: str = "text"
) -> Iterator[str]:
    """Stream the non-blank texts of the text column (or the lines of a text file)."""
    for (value,) in iter_records(path, fmt, (text_column,)):
        if isinstance(value, str) and value.strip():
            yield value
