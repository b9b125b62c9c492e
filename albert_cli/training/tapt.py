"""Task-adaptive pretraining for `albert finetune --tapt-steps N`.

Before fine-tuning, ALBERT's own objective (n-gram masked LM + sentence-order prediction, LAMB) runs for N steps
on the task's texts: every training text (with its pair text) and every text of the `--unlabeled` files is one
document, split into sentences. It is the pretraining loop (`albert_cli.training.pretrain.loop.train`), handed
everything in memory: the documents, the fine-tuning tokenizer and sequence length, and a copy of the backbone
being fine-tuned (with the --init checkpoint's MLM/SOP heads when it has them); the adapted backbone weights are
copied back. Every epoch draws a new segmentation and sentence order of each document as well as new masks
(``vary_instances_per_epoch``): a small task corpus is seen many times. A one-sentence document is cut inside the
sentence for SOP (see `albert_cli.data.pretraining`).

The result is written to ``OUT.partial/tapt/`` (a Hugging Face ``AlbertForPreTraining`` directory with
``albert_pretrain.json``, ``tapt.json`` and logs): `--resume` loads it instead of pretraining again, and it stays
in the finished model as ``OUT/tapt/`` (without its checkpoints).
"""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from albert_cli.data.readers import detect_format, iter_texts
from albert_cli.data.sources import check_input_file
from albert_cli.errors import DataError, UsageError
from albert_cli.training.pretrain.options import META_FILE

TAPT_DIR = "tapt"  # the result, inside OUT.partial (and then OUT)
FIGURES_FILE = "tapt.json"  # the summary figures, next to albert_pretrain.json; written last: TAPT is done
SCRATCH_LEARNING_RATE = 1e-3  # LAMB, a model trained from scratch; with --init: `albert pretrain`'s default
SHUFFLE_BUFFER = 2048
# A masked LM whose loss is not this far below the unigram entropy has learned word
# frequencies only: fine-tuning from it was worse than from a random start (see bench/README.md).
CONTEXT_MARGIN = 0.2
MAX_PREDICTIONS = 20  # ALBERT's masked positions per 128-token sequence
FIGURES = ("steps", "seconds", "first_loss", "final_loss", "final_mlm_loss", "final_mlm_accuracy",
           "final_sop_loss", "final_sop_accuracy")

# A sentence ends with . ! ? or … (and closing quotes/brackets) before a space or the
# end of the text (so "3.5" and "e.g.x" do not split), or with a CJK full stop,
# ! ? or ； anywhere (CJK text has no spaces).
_SENTENCE = re.compile(
    r"\S.*?(?:[.!?\u2026]+[\"'\u201d\u2019)\]\u00bb]*(?=\s|$)"
    r"|[\u3002\uff01\uff1f\uff1b!?]+[\u201d\u2019\u300d\u300f\uff09)]*"
    r"|$)",
    re.S,
)


def split_sentences(text: str) -> list[str]:
    """The sentences of `text`, whitespace collapsed (a text without end punctuation is one sentence)."""
    out = []
    for match in _SENTENCE.finditer(text or ""):
        sentence = " ".join(match.group().split())
        if sentence:
            out.append(sentence)
    return out


# ---------------------------------------------------------------------------
# Unlabeled files
# ---------------------------------------------------------------------------
def check_unlabeled(paths: Iterable[str], text_column: str = "text") -> None:
    """Fail fast (before TensorFlow starts) on a missing, unreadable or empty --unlabeled file."""
    for path in paths:
        if str(path) == "-":
            raise UsageError("--unlabeled cannot read standard input; give a file")
        p = check_input_file(path)  # DataError: "PATH: no such file" / is a directory / permission denied
        if p.stat().st_size == 0:
            raise DataError(f"{path}: file is empty (--unlabeled)")
        texts = iter_unlabeled_texts([path], text_column)  # the first record: a missing column fails here
        if next(texts, None) is None:
            raise DataError(f"{path}: no text in it (--unlabeled)")
        texts.close()


def iter_unlabeled_texts(paths: Iterable[str], text_column: str = "text") -> Iterator[str]:
    """Every non-blank text of the files: a line of a text file, a record (`text_column`) of CSV/TSV/JSONL.

    The format comes from each file's extension (as for `albert pretrain` corpora).
    """
    for path in paths:
        yield from iter_texts(path, detect_format(path), text_column)


def task_documents(texts, pairs, unlabeled: list[str], text_column: str, seed: int) -> Iterator[list[str]]:
    """Training documents (text + pair text) in a seeded random order, then the unlabeled texts in file order."""
    order = np.random.default_rng([seed, 0x7A97]).permutation(len(texts))
    for i in order.tolist():
        yield [texts[i]] + ([pairs[i]] if pairs is not None and pairs[i] else [])
    for text in iter_unlabeled_texts(unlabeled, text_column):
        yield [text]


def max_predictions(max_seq_length: int, masked_lm_prob: float = 0.15) -> int:
    """Masked-LM slots: enough for 15% of the longest sequence, at most ALBERT's 20."""
    return int(min(MAX_PREDICTIONS, max(2, math.ceil(max_seq_length * masked_lm_prob))))


def figures(meta: dict) -> dict:
    """The summary figures of a TAPT run from its result (or its albert_pretrain.json)."""
    out = {k: meta.get(k) for k in FIGURES}
    for k in ("documents", "learning_rate", "batch_size", "max_seq_length"):
        if k in meta:
            out[k] = meta[k]
    return out


def read_figures(directory: Path) -> dict | None:
    """The figures of a finished TAPT run (None if `directory` holds none)."""
    try:
        return json.loads((Path(directory) / FIGURES_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        pass
    try:  # committed, but stopped before FIGURES_FILE was written
        meta = json.loads((Path(directory) / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    opts = meta.get("options") or {}
    meta.setdefault("batch_size", opts.get("batch_size"))
    meta.setdefault("max_seq_length", opts.get("max_seq_length"))
    return figures(meta)


def unigram_entropy(sequences: Iterable, special: set[int]) -> float:
    """Entropy (nats) of the token frequencies of `sequences` (special ids left out): the masked-LM
    loss of a model that ignores the context and always predicts the word frequencies."""
    arrays = [np.asarray(ids, np.int64).ravel() for ids in sequences]
    ids = np.concatenate(arrays) if arrays else np.zeros(0, np.int64)
    ids = ids[~np.isin(ids, list(special))]
    if ids.size == 0:
        return 0.0
    counts = np.bincount(ids)
    p = counts[counts > 0] / ids.size
    return round(float(-(p * np.log(p)).sum()), 4)


def corpus_lines(documents: Iterable[Iterable[str]]) -> tuple[list[str], int]:
    """Documents (each an iterable of texts) as pretraining corpus lines: one sentence a line, a blank line after
    each document; returns (lines, documents kept) (empty documents are skipped)."""
    lines, count = [], 0
    for texts in documents:
        sentences = [s for text in texts for s in split_sentences(text)]
        if sentences:
            lines.extend(sentences)
            lines.append("")
            count += 1
    return lines, count


def cleanup(directory: Path) -> None:
    """Remove what only an unfinished TAPT needed: its optimizer checkpoints."""
    shutil.rmtree(Path(directory) / "checkpoints", ignore_errors=True)
