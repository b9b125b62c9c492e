"""Prediction with a model directory: batched, length-grouped, order-preserving, streaming."""

from __future__ import annotations

import io
import json
import os
import queue
import sys
import threading
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np

from albert_cli.errors import UsageError
from albert_cli.modeldir import ModelMeta, load_saved_model, open_model_dir

OUTPUT_FORMATS = ("jsonl", "tsv", "csv", "label")


class Predictor:
    """Loads the SavedModel once and runs its ``serving_default`` signature."""

    def __init__(self, model_dir, batch_size: int = 32):
        if batch_size < 1:
            raise UsageError(f"--batch-size must be positive, got {batch_size}")
        self.path, self.meta = open_model_dir(model_dir)
        self.batch_size = batch_size
        from albert_cli._tf import import_tf

        self.tf = import_tf()
        loaded = load_saved_model(self.path)
        try:
            self.fn = loaded.signatures["serving_default"]
        except KeyError:
            from albert_cli.errors import ModelError

            raise ModelError(f"{self.path}: the SavedModel has no serving_default signature") from None
        self._loaded = loaded  # keep the resources alive

    @property
    def task(self) -> str:
        return self.meta.task

    def _run(self, texts: list[str], pairs: list[str] | None) -> dict[str, np.ndarray]:
        tf = self.tf
        kwargs = {"text": tf.constant(texts, tf.string)}
        if self.meta.pair:
            kwargs["text_pair"] = tf.constant(pairs, tf.string)
        return {k: v.numpy() for k, v in self.fn(**kwargs).items()}

    def predict(self, texts: list[str], pairs: list[str] | None = None) -> dict[str, np.ndarray]:
        """Outputs for every text, in input order (batches are grouped by length)."""
        if self.meta.pair and pairs is None:
            raise UsageError(f"{self.path}: this model classifies text pairs; set --text-pair-column")
        n = len(texts)
        if n == 0:
            return {}
        if not getattr(self, "_precision_set", False):
            # $ALBERT_PRECISION=bf16|auto: bfloat16 matmuls (set before the signature's first run).
            from albert_cli._tf import apply_inference_precision, inference_precision

            apply_inference_precision(inference_precision())
            self._precision_set = True
        lengths = [len(t) + (len(pairs[i]) if pairs else 0) for i, t in enumerate(texts)]
        return run_length_grouped(
            lengths, self.batch_size,
            lambda idx: self._run([texts[i] for i in idx], [pairs[i] for i in idx] if pairs else None),
        )


def run_length_grouped(lengths, batch_size: int, run_batch) -> dict[str, np.ndarray]:
    """Batches of similar length (stable sort on `lengths`), outputs scattered back into input order.

    `run_batch(idx)` computes the outputs (a dict of arrays, one row per index) for the items `idx`.
    """
    n = len(lengths)
    order = np.argsort(lengths, kind="stable")
    results: dict[str, np.ndarray] = {}
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        for key, value in run_batch(idx).items():
            if key not in results:
                results[key] = np.empty((n,) + value.shape[1:], value.dtype)
            results[key][idx] = value
    return results


def make_predictor(model_dir, batch_size: int = 32):
    """The predictor for a model directory: `Predictor` (SavedModel), or `albert_cli.lite.LitePredictor`
    for a TFLite export (``model.tflite``). Both have ``.meta``, ``.task`` and ``.predict(texts, pairs)``."""
    from albert_cli.modeldir import is_tflite_dir, recover

    recover(model_dir)
    if is_tflite_dir(model_dir):
        from albert_cli.lite import LitePredictor

        return LitePredictor(model_dir, batch_size=batch_size)
    return Predictor(model_dir, batch_size=batch_size)


# ----------------------------------------------------------------- formatting
@dataclass
class OutputOptions:
    format: str = "jsonl"
    all_scores: bool = False
    top_k: int = 1
    threshold: float | None = None


def _decode(label) -> str:
    return label.decode("utf-8") if isinstance(label, bytes) else str(label)


def format_rows(meta: ModelMeta, out: dict[str, np.ndarray], opts: OutputOptions) -> list[dict]:
    """One record per example, ready to print."""
    n = len(next(iter(out.values())))
    rows = []
    for i in range(n):
        if meta.task == "regression":
            rows.append({"value": float(out["value"][i])})
            continue
        probs = out["probabilities"][i]
        if meta.task == "multi_label":
            if opts.threshold is not None:
                chosen = [meta.labels[j] for j in range(len(probs)) if probs[j] >= opts.threshold]
            else:
                chosen = [meta.labels[j] for j in np.flatnonzero(out["predicted"][i])]
            rec = {"labels": chosen, "label": "|".join(chosen), "score": float(probs.max())}
        else:
            rec = {"label": _decode(out["label"][i]), "score": float(out["score"][i])}
        if opts.top_k > 1:
            top = np.argsort(-probs, kind="stable")[: opts.top_k]
            rec["top_k"] = [{"label": meta.labels[j], "score": float(probs[j])} for j in top]
        if opts.all_scores:
            rec["probabilities"] = {meta.labels[j]: float(p) for j, p in enumerate(probs)}
        rows.append(rec)
    return rows


class Writer:
    """Writes records to stdout in the chosen format, flushing per batch."""

    def __init__(self, meta: ModelMeta, opts: OutputOptions, stream=None):
        if opts.format not in OUTPUT_FORMATS:
            raise UsageError(f"--format must be one of {', '.join(OUTPUT_FORMATS)}, got '{opts.format}'")
        self.meta, self.opts = meta, opts
        self.stream = stream or sys.stdout
        self.header_done = False

    def _columns(self) -> list[str]:
        if self.meta.task == "regression":
            return ["value"]
        cols = ["label", "score"]
        if self.opts.all_scores:
            cols += [f"p_{l}" for l in self.meta.labels]
        return cols

    def _flat(self, rec: dict) -> list[str]:
        if "error" in rec:
            return ["" for _ in self._columns()]
        vals = [rec.get("value")] if self.meta.task == "regression" else [rec["label"], f"{rec['score']:.6f}"]
        if self.opts.all_scores and self.meta.task != "regression":
            vals += [f"{rec['probabilities'][l]:.6f}" for l in self.meta.labels]
        return [str(v) for v in vals]

    def write(self, records: Iterable[dict]) -> None:
        fmt, s = self.opts.format, self.stream
        buf = io.StringIO()
        if fmt in ("tsv", "csv") and not self.header_done:
            self.header_done = True
            self._write_table_row(buf, self._columns())
        for rec in records:
            if fmt == "jsonl":
                buf.write(json.dumps(rec, ensure_ascii=False) + "\n")
            elif fmt == "label":
                buf.write(("" if "error" in rec else str(rec.get("label", rec.get("value", "")))) + "\n")
            else:
                self._write_table_row(buf, self._flat(rec))
        s.write(buf.getvalue())
        s.flush()

    def _write_table_row(self, buf, values) -> None:
        if self.opts.format == "tsv":
            buf.write("\t".join(v.replace("\t", " ") for v in values) + "\n")
        else:
            import csv

            csv.writer(buf, lineterminator="\n").writerow(values)


# ------------------------------------------------------------------ streaming
def iter_lines(path) -> Iterator[tuple[int, str | None, str | None]]:
    """(line number, text or None, error or None) for each input line, streaming."""
    from albert_cli.data.readers import check_input_file, display_name, utf8_lines

    raw = sys.stdin.buffer if str(path) == "-" else open(check_input_file(path), "rb")
    try:
        for lineno, line in enumerate(utf8_lines(raw, display_name(path)), start=1):
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
    finally:
        if raw is not sys.stdin.buffer:
            raw.close()


def chunked(items: Iterator, size: int, wait: float | None) -> Iterator[list]:
    """Group an iterator into lists of up to `size`.

    With `wait` (seconds), a partial chunk is released when no new item arrives
    within `wait`, so `tail -f log | albert predict m -` answers promptly.
    """
    if wait is None:
        chunk = []
        for item in items:
            chunk.append(item)
            if len(chunk) >= size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk
        return
    q: queue.Queue = queue.Queue(maxsize=size * 4)
    done = object()

    def pump():
        try:
            for item in items:
                q.put(item)
        except BaseException as exc:  # surfaced in the consumer
            q.put(exc)
        q.put(done)

    threading.Thread(target=pump, daemon=True).start()
    finished = False
    while not finished:
        item = q.get()
        if item is done:
            return
        if isinstance(item, BaseException):
            raise item
        chunk = [item]
        while len(chunk) < size:
            try:
                item = q.get(timeout=wait)
            except queue.Empty:
                break
            if item is done:
                finished = True
                break
            if isinstance(item, BaseException):
                raise item
            chunk.append(item)
        yield chunk


def predict_lines(predictor: Predictor, path, writer: Writer, chunk_size: int = 256) -> int:
    """Plain-text input: one output record per input line; returns the number of errors."""
    is_stream = str(path) == "-" or not os.path.isfile(str(path))
    errors = 0
    for chunk in chunked(iter_lines(path), chunk_size, 0.05 if is_stream else None):
        good = [(i, t) for i, (_, t, e) in enumerate(chunk) if e is None]
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


def predict_table(predictor: Predictor, dataset, writer: Writer, chunk_size: int = 1024) -> None:
    for start in range(0, len(dataset), chunk_size):
        texts = dataset.texts[start : start + chunk_size]
        pairs = dataset.pairs[start : start + chunk_size] if dataset.pairs is not None else None
        out = predictor.predict(texts, pairs)
        writer.write(format_rows(predictor.meta, out, writer.opts))
