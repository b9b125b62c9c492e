"""Task-adaptive pretraining for `albert finetune --tapt-steps N`.

Before fine-tuning, ALBERT's own objective (n-gram masked LM + sentence-order
prediction, LAMB) runs for N steps on the task's texts: every training text
(with its pair text) and every text of the `--unlabeled` files is one
document, split into sentences.  The pretraining itself is
:class:`albert_cli.train.pretrain.Pretrainer`, run as a library on a corpus
file written into the staging directory, with:

* the fine-tuning tokenizer (``OUT.partial/assets/spiece.model``) and sequence
  length (``max_seq_length``);
* the model being fine-tuned as its starting point: the ``--init`` checkpoint
  (with its MLM/SOP heads when it has them), or the freshly initialised
  backbone of a model trained from scratch (saved to ``tapt-init/`` first, so
  that TAPT starts from exactly the weights fine-tuning would have started
  from);
* every epoch a new segmentation and SOP order of each document as well as new
  masks (``vary_instances_per_epoch``): a small task corpus is seen many
  times.  The training documents are shuffled once (seeded) when the corpus is
  written, and examples go through a 2,048-example shuffle buffer each epoch
  (a buffer as large as the corpus would stall every epoch's first step while
  the whole epoch is generated).

SOP on short texts: a document with several sentences is cut at a sentence
boundary; a one-sentence document (a TREC question, a headline) is cut inside
the sentence at a random token (see :mod:`albert_cli.data.pretraining`), so
SOP becomes "which half of this text comes first" (on TREC questions the final
"?" gives it away: SOP accuracy reaches ~0.99 and the masked LM carries the
learning); a one-token text gives no example.  The result is committed to ``OUT.partial/tapt/`` (a Hugging Face
``AlbertForPreTraining`` directory with ``albert_pretrain.json`` and logs),
which `--resume` reuses instead of pretraining again; it stays in the finished
model directory as ``OUT/tapt/`` (without its checkpoints).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from albert_cli.console import info
from albert_cli.errors import DataError, UsageError

TAPT_DIR = "tapt"  # the committed result, inside OUT.partial (and then OUT)
INIT_DIR = "tapt-init"  # starting weights of a model trained from scratch (removed afterwards)
FIGURES_FILE = "tapt.json"  # the summary figures, next to albert_pretrain.json
CORPUS_FILE = "tapt-corpus.txt"  # one sentence per line, blank line between documents (removed afterwards)
SCRATCH_LEARNING_RATE = 1e-3  # LAMB, a model trained from scratch; with --init: `albert pretrain`'s default
SHUFFLE_BUFFER = 2048
# A masked LM whose loss is not this far below the unigram entropy has learned word
# frequencies only: fine-tuning from it was worse than from a random start (ag_news).
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
    from albert_cli.data.readers import _check_path

    for path in paths:
        if str(path) == "-":
            raise UsageError("--unlabeled cannot read standard input; give a file")
        p = _check_path(path)  # DataError: "PATH: no such file" / is a directory / permission denied
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
    from albert_cli.data.readers import detect_format, iter_texts

    for path in paths:
        yield from iter_texts(path, detect_format(path), text_column)


def write_corpus(path: Path, documents: Iterable[Iterable[str]]) -> int:
    """Write documents (each an iterable of texts) as a pretraining text corpus:
    one sentence per line, a blank line after each document. Returns the number
    of documents written (empty ones are skipped). Atomic (temp file + rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    count = 0
    with open(tmp, "w", encoding="utf-8") as f:
        for texts in documents:
            sentences = [s for text in texts for s in split_sentences(text)]
            if sentences:
                f.write("\n".join(sentences) + "\n\n")
                count += 1
    os.replace(tmp, path)
    return count


def task_documents(texts, pairs, unlabeled: list[str], text_column: str, seed: int) -> Iterator[list[str]]:
    """Training documents (text + pair text) in a seeded random order, then the unlabeled texts in file order."""
    order = np.random.default_rng([seed, 0x7A97]).permutation(len(texts))
    for i in order.tolist():
        yield [texts[i]] + ([pairs[i]] if pairs is not None and pairs[i] else [])
    for text in iter_unlabeled_texts(unlabeled, text_column):
        yield [text]


# ---------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------
@dataclass
class TaptPlan:
    steps: int
    staging: Path  # OUT.partial of the fine-tuning run
    tokenizer: Path  # its SentencePiece model
    init: str  # a model directory to start from
    max_seq_length: int
    batch_size: int
    learning_rate: float
    seed: int
    deterministic: bool = True
    jit: bool = False
    resume: bool = False


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
    from albert_cli.train.pretrain import META_FILE

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


def run_tapt(plan: TaptPlan, corpus: Path, documents: int) -> dict:
    """Pretrain from `plan.init` on `corpus` into `plan.staging/tapt` (resuming a
    checkpoint in `tapt.partial/` when `plan.resume`); returns the figures."""
    from albert_cli.modeldir import partial_dir
    from albert_cli.train.pretrain import PretrainOptions, Pretrainer
    from albert_cli.train.state import latest_checkpoint

    out = plan.staging / TAPT_DIR
    resume = plan.resume and latest_checkpoint(partial_dir(out) / "checkpoints") is not None
    batch = max(1, min(plan.batch_size, documents))
    opts = PretrainOptions(
        corpus=[str(corpus)], output=str(out), tokenizer=str(plan.tokenizer), init=str(plan.init), format="txt",
        max_seq_length=plan.max_seq_length, max_predictions_per_seq=max_predictions(plan.max_seq_length),
        batch_size=batch, learning_rate=plan.learning_rate, max_steps=plan.steps,
        save_every=max(50, min(1000, plan.steps // 5)), keep_checkpoints=1, log_every=10,
        resume=resume, overwrite=not resume, seed=plan.seed, optimizer="lamb", strategy="one-device",
        deterministic=plan.deterministic, jit=plan.jit, shuffle_buffer=SHUFFLE_BUFFER, vary_instances_per_epoch=True,
    )
    info(
        f"task-adaptive pretraining: {plan.steps} steps of masked LM + sentence order on {documents} documents "
        f"(batch {batch}, sequence length {plan.max_seq_length}, LAMB {plan.learning_rate:.3g})"
    )
    pretrainer = Pretrainer(opts)
    pretrainer.progress_label = "tapt"
    result = pretrainer.run()
    del pretrainer
    out_figures = figures({**result, "documents": documents, "learning_rate": plan.learning_rate,
                           "batch_size": batch, "max_seq_length": plan.max_seq_length})
    from albert_cli.modeldir import atomic_write_text

    atomic_write_text(out / FIGURES_FILE, json.dumps(out_figures, indent=1))
    return out_figures


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


def cleanup(staging: Path) -> None:
    """Remove what only TAPT needed: the corpus copy, the starting weights, TAPT's optimizer checkpoints."""
    (staging / CORPUS_FILE).unlink(missing_ok=True)
    shutil.rmtree(staging / INIT_DIR, ignore_errors=True)
    shutil.rmtree(staging / TAPT_DIR / "checkpoints", ignore_errors=True)
