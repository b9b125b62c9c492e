"""`albert tokenize train|encode`: build a SentencePiece vocabulary, or encode text with one.

Nothing heavy is imported at module level (sentencepiece and rich are imported inside the
commands), so `albert --help` stays instant.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import replace
from enum import Enum
from pathlib import Path
from typing import BinaryIO, List, Optional

import typer

from albert_cli.cli.options import AlbertCommand, input_format
from albert_cli.data.sources import display_name, open_input, utf8_lines
from albert_cli.errors import DataError, UsageError
from albert_cli.text.normalize import NormalizerOptions

UTF8_BOM = b"\xef\xbb\xbf"

app = typer.Typer(
    help="Train a SentencePiece vocabulary (ALBERT recipe) or encode text with one.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


class InputFormat(str, Enum):
    """``--input-format`` choices (`albert_cli.data.readers.FORMATS`, plus auto)."""

    auto = "auto"
    txt = "txt"
    csv = "csv"
    tsv = "tsv"
    jsonl = "jsonl"


@app.command("train", cls=AlbertCommand)
def train(
    inputs: List[Path] = typer.Argument(
        ...,
        help="Training text: plain text (one example per line) or CSV/TSV/JSONL with a text column. "
        "Several files are concatenated.",
        show_default=False,
    ),
    output: Path = typer.Option(
        ...,
        "--output",
        "-o",
        help="Output prefix: writes PREFIX.model, PREFIX.vocab and PREFIX.json (normalizer and training settings).",
        show_default=False,
    ),
    vocab_size: int = typer.Option(30000, "--vocab-size", help="Number of pieces, including the 5 special ones."),
    fmt: InputFormat = typer.Option(
        InputFormat.auto, "--input-format", help="Input format; auto = from the file extension (.csv .tsv .jsonl, else text)."
    ),
    old_fmt: Optional[InputFormat] = typer.Option(None, "--format", hidden=True, help="Deprecated: use --input-format."),
    text_column: str = typer.Option("text", "--text-column", help="Column (CSV/TSV) or key (JSONL) holding the text."),
    cased: bool = typer.Option(False, "--cased", help="Keep upper case (default: lowercase, like ALBERT)."),
    keep_accents: bool = typer.Option(
        False, "--keep-accents", help="Keep accents and other combining marks (default: strip them after NFKD)."
    ),
    input_sentence_size: int = typer.Option(
        1_000_000,
        "--input-sentence-size",
        help="Train on a uniform random sample of at most this many lines (the input is streamed).",
    ),
    character_coverage: Optional[float] = typer.Option(
        None,
        "--character-coverage",
        help="Share of characters the vocabulary must cover; default 0.99995, or 0.9995 when the text is "
        "mostly Chinese/Japanese/Korean.",
        show_default=False,
    ),
    seed: int = typer.Option(12345, "--seed", help="Random seed for line sampling and SentencePiece."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing PREFIX.model/.vocab/.json files."),
) -> None:
    """Train an ALBERT-style unigram SentencePiece model: <pad>=0 <unk>=1 [CLS]=2 [SEP]=3 [MASK]=4."""
    chosen_format = _input_format(fmt, old_fmt)
    existing = [p for p in (Path(f"{output}{ext}") for ext in (".model", ".vocab", ".json")) if p.exists()]
    if existing and not overwrite:
        raise UsageError(f"{existing[0]}: exists (use --overwrite to replace {output}.model/.vocab/.json)")
    parent = output.absolute().parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        what = "does not exist" if not parent.exists() else "is not a directory" if not parent.is_dir() else "is not writable"
        raise UsageError(f"{output}: cannot write the vocabulary: {parent} {what}")
    from albert_cli.artifacts.modeldir import check_writable_dir

    check_writable_dir(parent, output)  # root passes os.access even in /proc

    from albert_cli.console import err_console, info
    from albert_cli.text.spm import train_sentencepiece

    normalizer = NormalizerOptions(lowercase=not cased, strip_accents=not keep_accents)
    names = ", ".join(str(p) for p in inputs)
    info(f"training a {vocab_size:,}-piece SentencePiece vocabulary on {names}")

    def on_event(event: str, data: dict) -> None:
        if event == "train":
            info(
                f"read {data['seen']:,} lines; training on {data['sentences']:,} "
                f"(character coverage {data['character_coverage']}, CJK share {data['cjk_share']:.0%})"
            )

    t0 = time.time()
    status = err_console.status("reading input...", spinner="dots") if sys.stderr.isatty() else None
    if status is not None:
        status.start()
    try:
        paths = train_sentencepiece(
            [str(p) for p in inputs],
            output,
            vocab_size=vocab_size,
            normalizer=normalizer,
            input_sentence_size=input_sentence_size,
            character_coverage=character_coverage,
            seed=seed,
            progress=on_event,
            fmt=chosen_format,
            text_column=text_column,
        )
    finally:
        if status is not None:
            status.stop()
    used = json.loads(Path(paths["sidecar"]).read_text(encoding="utf-8"))["training"]["vocab_size"]  # after a shrink
    info(
        f"wrote {paths['model']}, {paths['vocab']}, {paths['sidecar']} "
        f"({used:,} pieces, {time.time() - t0:.1f}s)"
    )


def _input_format(fmt: InputFormat, old: InputFormat | None) -> str | None:
    """--input-format (or its deprecated spelling --format); None for auto."""
    chosen = input_format(None if fmt == InputFormat.auto else fmt.value, old.value if old is not None else None)
    return None if chosen in (None, InputFormat.auto.value) else chosen


@app.command("encode", cls=AlbertCommand)
def encode(
    model: Path = typer.Option(
        ..., "--model", "-m", help="SentencePiece model (PREFIX.model); PREFIX.json next to it sets the normalizer.",
        show_default=False,
    ),
    input: str = typer.Argument("-", help="Text file, one example per line; '-' (default) reads standard input."),
    ids: bool = typer.Option(False, "--ids", help="Print token ids instead of pieces."),
    cased: Optional[bool] = typer.Option(
        None, "--cased/--uncased", help="Override the case handling recorded in PREFIX.json.", show_default=False
    ),
    keep_accents: Optional[bool] = typer.Option(
        None,
        "--keep-accents/--strip-accents",
        help="Override the accent handling recorded in PREFIX.json.",
        show_default=False,
    ),
) -> None:
    """Encode text line by line: one output line per input line (pieces, or ids with --ids), no [CLS]/[SEP]."""
    from albert_cli.text.spm import SentencePieceTokenizer

    tok = SentencePieceTokenizer.from_file(model)
    if cased is not None:
        tok.normalizer = replace(tok.normalizer, lowercase=not cased)
    if keep_accents is not None:
        tok.normalizer = replace(tok.normalizer, strip_accents=not keep_accents)
    with open_input(input) as stream:
        try:
            _encode_lines(tok, stream, display_name(input), ids, sys.stdout.buffer)
        except BrokenPipeError:
            from albert_cli.console import closed_stdout_is_fine

            with closed_stdout_is_fine():
                raise


def _encode_lines(tok, stream: BinaryIO, name: str, ids: bool, out: BinaryIO) -> None:
    """Write one line of pieces (or ids) to `out` per line of `stream`, flushed line by line."""
    for lineno, raw in enumerate(utf8_lines(stream, name), start=1):  # one line at a time (works with `tail -f`)
        if lineno == 1 and raw.startswith(UTF8_BOM):
            raw = raw[len(UTF8_BOM):]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(
                f"{name}: line {lineno}, byte {exc.start + 1}: not valid UTF-8 (byte 0x{raw[exc.start]:02x})"
            ) from None
        if text.endswith("\n"):
            text = text[:-1]
            if text.endswith("\r"):
                text = text[:-1]
        line = " ".join(map(str, tok.encode(text))) if ids else " ".join(tok.tokenize(text))
        out.write(line.encode("utf-8") + b"\n")
        out.flush()
