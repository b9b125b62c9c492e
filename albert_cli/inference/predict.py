"""``albert predict``'s library side: the predictor for a model directory, run over lines or a table.

Predictions are batched, length-grouped and order-preserving; output is written per chunk, so
``tail -f log | albert predict MODEL -`` streams.
"""

from __future__ import annotations

import shlex

from albert_cli.artifacts.modeldir import is_tflite_dir, recover
from albert_cli.data.readers import split_pair
from albert_cli.data.sources import display_name
from albert_cli.errors import UsageError
from albert_cli.inference.base import BasePredictor
from albert_cli.inference.lite import LitePredictor
from albert_cli.inference.saved import SavedModelPredictor
from albert_cli.inference.streaming import chunked, iter_lines, stream_wait
from albert_cli.inference.writers import Writer, format_rows


def make_predictor(model_dir, batch_size: int = 32) -> BasePredictor:
    """The predictor for a model directory: `SavedModelPredictor`, or `LitePredictor` for a TFLite export
    (``model.tflite``). Both have ``.meta``, ``.task`` and ``.predict(texts, pairs)``.

    Example:
        >>> make_predictor("news-model", batch_size=64).predict(["Stocks fell"])  # doctest: +SKIP
    """
    recover(model_dir)
    if is_tflite_dir(model_dir):
        return LitePredictor(model_dir, batch_size=batch_size)
    return SavedModelPredictor(model_dir, batch_size=batch_size)


def _pair_lines(lines, path, model):
    """A pair model's plain-text lines, ``TEXT<TAB>PAIR``, as (line number, (text, pair), error).

    Until one line is a pair, a line that is not one stops the command: the input is single texts (or some
    other table), not pairs, and one line saying so helps more than an error record per line.
    """
    seen_pair = False
    for lineno, text, err in lines:
        if err is None:
            first, second, err = split_pair(text)
            if err is not None and not seen_pair:
                raise UsageError(
                    f"{display_name(path)}: line {lineno}: {err} (a pair model); "
                    f"try: printf 'a text\\tits pair\\n' | albert predict {shlex.quote(str(model))} -"
                )
            seen_pair = seen_pair or err is None
            text = (first, second) if err is None else None
        yield lineno, text, err


def predict_lines(predictor: BasePredictor, path, writer: Writer, chunk_size: int = 256) -> int:
    """Plain-text input (``-``: stdin): one output record per input line; returns the number of errors.

    A pair model reads ``TEXT<TAB>PAIR`` lines (`_pair_lines`). Empty, NUL-containing or undecodable lines (for
    a pair model, after its first pair, lines without exactly one tab) give ``{"error": ..., "line": N}``.
    """
    errors = 0
    pairs = predictor.meta.pair
    lines = _pair_lines(iter_lines(path), path, predictor.path) if pairs else iter_lines(path)
    for chunk in chunked(lines, chunk_size, stream_wait(path)):
        good = [(i, t) for i, (_, t, e) in enumerate(chunk) if e is None]
        if pairs:
            out = predictor.predict([t for _, (t, _) in good], [p for _, (_, p) in good]) if good else {}
        else:
            out = predictor.predict([t for _, t in good]) if good else {}
        recs = format_rows(predictor.meta, out, writer.opts) if good else []
        records: list[dict] = [None] * len(chunk)  # type: ignore[list-item]
        for (i, _), rec in zip(good, recs):
            records[i] = rec
        for i, (lineno, _, err) in enumerate(chunk):
            if err is not None:
                errors += 1
                records[i] = {"error": err, "line": lineno}
        writer.write(records)
    return errors


def predict_table(predictor: BasePredictor, dataset, writer: Writer, chunk_size: int = 1024) -> None:
    """One output record per row of `dataset` (``albert_cli.data.readers.read_dataset``), written per chunk."""
    for start in range(0, len(dataset), chunk_size):
        texts = dataset.texts[start : start + chunk_size]
        pairs = dataset.pairs[start : start + chunk_size] if dataset.pairs is not None else None
        out = predictor.predict(texts, pairs)
        writer.write(format_rows(predictor.meta, out, writer.opts))
