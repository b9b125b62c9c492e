"""Prediction records and their output formats (``albert predict --format``)."""

from __future__ import annotations

import csv
import io
import json
import sys
from dataclasses import dataclass, replace
from typing import Iterable

import numpy as np

from albert_cli.artifacts.modeldir import ModelMeta
from albert_cli.errors import UsageError

OUTPUT_FORMATS = ("jsonl", "tsv", "csv", "label")


@dataclass
class OutputOptions:
    """What a prediction record holds and how it is written.

    Args:
        format: one of ``OUTPUT_FORMATS``.
        all_scores: add every label's probability.
        top_k: add the `top_k` most probable labels (when above 1).
        threshold: multi-label: one threshold for every label instead of the tuned ones.
    """

    format: str = "jsonl"
    all_scores: bool = False
    top_k: int = 1
    threshold: float | None = None


def _decode(label) -> str:
    return label.decode("utf-8") if isinstance(label, bytes) else str(label)


def _multi_label_record(meta: ModelMeta, probs, predicted, opts: OutputOptions) -> dict:
    if opts.threshold is not None:
        chosen = [meta.labels[j] for j in range(len(probs)) if probs[j] >= opts.threshold]
    else:
        chosen = [meta.labels[j] for j in np.flatnonzero(predicted)]
    return {"labels": chosen, "label": "|".join(chosen), "score": float(probs.max())}


def format_rows(meta: ModelMeta, out: dict[str, np.ndarray], opts: OutputOptions) -> list[dict]:
    """One record per example of a predictor's outputs `out`, ready to print.

    Example:
        >>> format_rows(meta, predictor.predict(["A late goal"]), OutputOptions(top_k=2))  # doctest: +SKIP
        [{'label': 'sport', 'score': 0.97, 'top_k': [{'label': 'sport', ...}, {'label': 'tech', ...}]}]
    """
    n = len(next(iter(out.values())))
    rows = []
    for i in range(n):
        if meta.task == "regression":
            rows.append({"value": float(out["value"][i])})
            continue
        probs = out["probabilities"][i]
        if meta.task == "multi_label":
            rec = _multi_label_record(meta, probs, out["predicted"][i], opts)
        else:
            rec = {"label": _decode(out["label"][i]), "score": float(out["score"][i])}
        if opts.top_k > 1:
            top = np.argsort(-probs, kind="stable")[: opts.top_k]
            rec["top_k"] = [{"label": meta.labels[j], "score": float(probs[j])} for j in top]
        if opts.all_scores:
            rec["probabilities"] = {meta.labels[j]: float(p) for j, p in enumerate(probs)}
        rows.append(rec)
    return rows


def check_output_options(meta: ModelMeta, opts: OutputOptions) -> OutputOptions:
    """`opts` if every option does something for this model and format, else a one-line UsageError; `top_k`
    is cut to the number of labels."""
    if opts.format not in OUTPUT_FORMATS:
        raise UsageError(f"--format must be one of {', '.join(OUTPUT_FORMATS)}, got '{opts.format}'")
    asked = [name for name, on in (("--all-scores", opts.all_scores), (f"--top-k {opts.top_k}", opts.top_k > 1)) if on]
    if asked and meta.task == "regression":
        raise UsageError(f"{asked[0]}: a regression model predicts one value, it has no label scores")
    if asked and opts.format == "label":
        raise UsageError(f"{asked[0]}: --format label prints the label alone; use --format jsonl, tsv or csv")
    if opts.threshold is not None and meta.task != "multi_label":
        raise UsageError(f"--threshold applies to multi-label models; this one is {meta.task.replace('_', '-')}")
    return replace(opts, top_k=max(1, min(opts.top_k, len(meta.labels))))


class Writer:
    """Writes records to a stream (stdout by default) in the chosen format, flushing per call.

    Args:
        meta: the model's metadata (task and labels decide the table columns).
        opts: the output options, checked here (`check_output_options`).
        stream: a text stream [default: ``sys.stdout``].
    """

    def __init__(self, meta: ModelMeta, opts: OutputOptions, stream=None):
        self.meta, self.opts = meta, check_output_options(meta, opts)
        self.stream = stream or sys.stdout
        self.header_done = False

    def _columns(self) -> list[str]:
        if self.meta.task == "regression":
            return ["value"]
        cols = ["label", "score"]
        if self.opts.top_k > 1:  # the same K labels as jsonl's "top_k", best first
            cols += [f"top{k}_{field}" for k in range(1, self.opts.top_k + 1) for field in ("label", "score")]
        if self.opts.all_scores:
            cols += [f"p_{l}" for l in self.meta.labels]
        return cols

    def _flat(self, rec: dict) -> list[str]:
        if "error" in rec:
            return ["" for _ in self._columns()]
        if self.meta.task == "regression":
            return [str(rec.get("value"))]
        vals = [rec["label"], f"{rec['score']:.6f}"]
        for top in rec.get("top_k", []):
            vals += [top["label"], f"{top['score']:.6f}"]
        if self.opts.all_scores:
            vals += [f"{rec['probabilities'][l]:.6f}" for l in self.meta.labels]
        return [str(v) for v in vals]

    def write(self, records: Iterable[dict]) -> None:
        """Write `records` (a table header first, once) and flush."""
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
            csv.writer(buf, lineterminator="\n").writerow(values)
