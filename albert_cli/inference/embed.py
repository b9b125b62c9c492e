"""Sentence embeddings from any ALBERT checkpoint (Google TF1, HF, or an albert-cli model).

Texts are tokenized with the checkpoint's own tokenizer (SentencePiece with HF
``AlbertTokenizer`` semantics, or BERT WordPiece), packed as ``[CLS] text [SEP]``,
grouped by length into batches with dynamic padding and run through the
backbone in one ``tf.function`` (input signature [None, None], so batches of
any shape reuse one trace). Pooling (``albert_cli.model.kinds.EMBED_POOLINGS``):

* ``pooler`` - ``pooled_output`` (tanh dense on [CLS]; HF ``pooler_output``); the
  default, except for a model fine-tuned with ``--pooling mean`` (default ``mean`` there); refused
  for such a model when nothing trained its pooler (no ``--init``, no ``--tapt-steps``: `pooler_trained`)
* ``cls``    - ``sequence_output[:, 0]`` (HF ``last_hidden_state[:, 0]``); refused where ``pooler`` is
* ``mean``   - mean of ``sequence_output`` over the real tokens (padding_mask = 1,
  which includes [CLS] and [SEP], as sentence-transformers' mean pooling)

With ``normalize`` each vector is divided by its L2 norm (cosine similarity =
dot product).

A model fine-tuned with windows (``albert_cli.json``: ``windows``) embeds a text as its classifier reads it: each
window pooled as above, then the windows' mean or maximum (`document_vectors`); ``--max-seq-length`` instead
cuts texts as for any checkpoint.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from albert_cli._tf import import_tf
from albert_cli.artifacts.modeldir import META_FILE, ModelMeta, open_model_dir
from albert_cli.errors import ModelError, UsageError
from albert_cli.inference.base import check_batch_size
from albert_cli.inference.streaming import chunked, iter_lines, stream_wait
from albert_cli.model.config import AlbertConfig
from albert_cli.model.kinds import EMBED_POOLINGS
from albert_cli.text.packing import pack_batch
from albert_cli.text.preprocessor import check_sequence_length, length_groups
from albert_cli.text.tokenizers import tokenizer_for_pretrained
from albert_cli.text.windows import WindowSpec, split_windows
from albert_cli.weights import build_backbone, load_pretrained

DEFAULT_MAX_SEQ_LENGTH = 512
SIGNIFICANT_DIGITS = 6


def _check_options(pooling: str | None, batch_size: int, max_seq_length: int | None) -> None:
    if pooling is not None and pooling not in EMBED_POOLINGS:
        raise UsageError(f"--pooling must be one of {', '.join(EMBED_POOLINGS)}, got '{pooling}'")
    check_batch_size(batch_size)
    if max_seq_length is not None and max_seq_length < 2:  # the upper bound waits for the model's positions
        check_sequence_length(max_seq_length, minimum=2)


def pooler_trained(meta: ModelMeta, depth: int = 0) -> bool:
    """Whether the tanh pooler (and the [CLS] vector it reads) of an albert-cli model was ever trained.

    A mean-pooled classifier freezes its pooler, so only its starting point can have trained it: ``--init``
    weights (pretraining's sentence-order task trains the pooler; an albert-cli ``--init`` is asked in turn)
    or ``--tapt-steps`` (the same task, on the task's texts).
    """
    if meta.pooling != "mean":
        return True  # the classifier read the pooler: fine-tuning trained it
    training = meta.training or {}
    if training.get("tapt_steps"):
        return True
    init = training.get("init")
    if not init:
        return False
    try:
        parent = open_model_dir(init)[1]
    except ModelError:  # a Google/HF checkpoint or hub id (pretrained), or gone since: trust it
        return True
    return depth < 8 and pooler_trained(parent, depth + 1)


def _check_pooling(model, loaded, pooling: str) -> None:
    """Refuse a pooling that reads an untrained pooler: every text would get about the same vector."""
    if pooling == "mean" or loaded.format != "albert_cli" or loaded.pooling != "mean":
        return
    try:  # albert_cli.json beside the weights (the directory need not hold a SavedModel to be embedded)
        meta = ModelMeta.from_dict(json.loads((Path(loaded.path) / META_FILE).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return  # no history to judge by
    if not pooler_trained(meta):
        raise UsageError(
            f"--pooling {pooling}: {model} was fine-tuned with mean pooling and never pretrained, so its tanh "
            "pooler and [CLS] vector were never trained (every text gets about the same vector); use --pooling mean"
        )


def _model_windows(loaded) -> tuple[WindowSpec, int] | None:
    """The windows and window length of an albert-cli model fine-tuned with windows, else None."""
    if loaded.format != "albert_cli":
        return None
    try:
        meta = ModelMeta.from_dict(json.loads((Path(loaded.path) / META_FILE).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None
    spec = WindowSpec.from_dict(meta.windows)
    return (spec, int(meta.max_seq_length)) if spec is not None else None


def document_vectors(vectors: np.ndarray, owners: np.ndarray, documents: int, pooling: str) -> np.ndarray:
    """Window vectors [windows, hidden] to document vectors [documents, hidden]: the mean or the maximum of the
    windows of each document (`owners`: the document of each window), as ``albert_cli.model.documents``."""
    out = np.zeros((documents, vectors.shape[1]), np.float32)
    if pooling == "max":
        out[:] = -np.inf
        np.maximum.at(out, owners, vectors)
        return out
    np.add.at(out, owners, vectors)
    return out / np.maximum(np.bincount(owners, minlength=documents), 1)[:, None].astype(np.float32)


def embed_sequence_length(config: AlbertConfig, max_seq_length: int | None = None) -> int:
    """The longest packed input of ``embed``: `max_seq_length`, or 512 (at most the model's position table).

    An embedded checkpoint need not be an albert-cli model directory, so this does not read ``albert_cli.json``.
    """
    limit = config.max_position_embeddings
    if max_seq_length is None:
        return min(DEFAULT_MAX_SEQ_LENGTH, limit)
    return check_sequence_length(max_seq_length, limit, minimum=2)


def _pooled_function(tf, backbone, pooling: str, normalize: bool):
    """One traced ``(token_ids, segment_ids, padding_mask) -> float32 [batch, hidden]`` for any batch shape."""
    spec = tf.TensorSpec([None, None], tf.int32)

    @tf.function(input_signature=[spec, spec, spec])
    def run(token_ids, segment_ids, padding_mask):
        out = backbone(
            {"token_ids": token_ids, "segment_ids": segment_ids, "padding_mask": padding_mask}, training=False
        )
        if pooling == "pooler":
            vec = out["pooled_output"]
        elif pooling == "cls":
            vec = out["sequence_output"][:, 0, :]
        else:
            seq = out["sequence_output"]
            mask = tf.cast(padding_mask, seq.dtype)[:, :, None]
            vec = tf.reduce_sum(seq * mask, axis=1) / tf.maximum(tf.reduce_sum(mask, axis=1), 1.0)
        vec = tf.cast(vec, tf.float32)
        if normalize:
            vec = vec / tf.maximum(tf.norm(vec, axis=-1, keepdims=True), 1e-12)
        return vec

    return run


class Embedder:
    """Load a checkpoint once; ``embed(texts)`` -> float32 [n, hidden] in input order.

    Args:
        model: a Google TF1, Hugging Face or albert-cli model directory.
        pooling: one of ``EMBED_POOLINGS`` [default: the pooling the model was fine-tuned with, else pooler].
        batch_size: texts per batch.
        max_seq_length: longer texts are cut [default: 512, or the model's position table if smaller].
        normalize: scale every vector to unit L2 norm.

    Example:
        >>> Embedder("albert-base-v2-dir", pooling="mean", normalize=True).embed(["a sentence"]).shape  # doctest: +SKIP
        (1, 768)
    """

    def __init__(self, model, pooling: str | None = None, batch_size: int = 32, max_seq_length: int | None = None,
                 normalize: bool = False):
        _check_options(pooling, batch_size, max_seq_length)
        loaded = load_pretrained(model)
        config = loaded.config
        self.path = loaded.path
        self.format = loaded.format
        self.tokenizer = tokenizer_for_pretrained(loaded)
        if self.tokenizer.vocab_size > config.vocab_size:
            raise ModelError(
                f"{model}: the tokenizer has {self.tokenizer.vocab_size} entries but the model's vocabulary "
                f"only {config.vocab_size}"
            )
        self.max_seq_length = embed_sequence_length(config, max_seq_length)
        self.windows = _model_windows(loaded) if max_seq_length is None else None
        if self.windows is not None:
            self.max_seq_length = self.windows[1]
        # Default: the pooling the model was fine-tuned with (a mean-pooled model's tanh pooler is untrained).
        self.pooling = pooling or loaded.pooling
        _check_pooling(model, loaded, self.pooling)
        self.batch_size = int(batch_size)
        self.normalize = bool(normalize)
        self.hidden_size = config.hidden_size
        self.cls_id, self.sep_id, self.pad_id = self.tokenizer.cls_id, self.tokenizer.sep_id, self.tokenizer.pad_id
        self._tf = import_tf()
        self.backbone = build_backbone(loaded)
        del loaded
        self._run = _pooled_function(self._tf, self.backbone, self.pooling, self.normalize and not self.windows)

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids (without [CLS]/[SEP]) of each text."""
        return self.tokenizer.encode_batch(texts)

    def embed_ids(self, ids: Sequence[Sequence[int]]) -> np.ndarray:
        """float32 [n, hidden] for pre-tokenized texts, in input order (batches grouped by length)."""
        if self.windows is None:
            return self._embed_packed(ids)
        spec, length = self.windows
        windows, owners = [], []
        for doc, x in enumerate(ids):
            found = split_windows(x, length, spec, self.cls_id, self.sep_id)
            windows += [w[1:-1] for w in found]  # packed again below, with the same [CLS] and [SEP]
            owners += [doc] * len(found)
        vectors = document_vectors(self._embed_packed(windows), np.asarray(owners, np.int64), len(ids), spec.pooling)
        if self.normalize:
            vectors /= np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)
        return vectors

    def _embed_packed(self, ids: Sequence[Sequence[int]]) -> np.ndarray:
        n = len(ids)
        out = np.empty((n, self.hidden_size), np.float32)
        # Token counts: embed tokenizes before batching, so it groups on what decides the padding.
        for idx in length_groups([len(x) for x in ids], self.batch_size):
            packed = pack_batch(
                [list(ids[i]) for i in idx],
                max_seq_length=self.max_seq_length,
                cls_id=self.cls_id,
                sep_id=self.sep_id,
                pad_id=self.pad_id,
            )
            out[idx] = self._run(packed.token_ids, packed.segment_ids, packed.padding_mask).numpy()
        return out

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """float32 [n, hidden] for `texts`, in input order."""
        return self.embed_ids(self.encode(list(texts)))


# ----------------------------------------------------------------- output
def format_vector(vec: Iterable[float], digits: int = SIGNIFICANT_DIGITS) -> str:
    """JSON array of floats with `digits` significant digits (e.g. ``[0.123457,-1.5e-05]``)."""
    return "[" + ",".join(format(float(v), f".{digits}g") for v in vec) + "]"


def embedding_record(vec, digits: int = SIGNIFICANT_DIGITS) -> str:
    """One output line (without newline): ``{"embedding": [...]}``."""
    return '{"embedding": ' + format_vector(vec, digits) + "}"


def embed_lines(embedder: Embedder, path, stream=None, chunk_size: int | None = None) -> int:
    """One JSON line per input line, in order, flushed per chunk; returns the number of error lines.

    Empty, NUL-containing or undecodable lines give ``{"error": ..., "line": N}``.
    From stdin (or a pipe), a partial chunk is released after 50 ms without input.
    """
    stream = stream or sys.stdout
    if chunk_size is None:
        chunk_size = max(embedder.batch_size * 4, 64)
    errors = 0
    for chunk in chunked(iter_lines(path), chunk_size, stream_wait(path)):
        good = [i for i, (_, _, err) in enumerate(chunk) if err is None]
        vectors = embedder.embed([chunk[i][1] for i in good]) if good else None
        rows: list[str] = [""] * len(chunk)
        for k, i in enumerate(good):
            rows[i] = embedding_record(vectors[k])
        for i, (lineno, _, err) in enumerate(chunk):
            if err is not None:
                errors += 1
                rows[i] = json.dumps({"error": err, "line": lineno}, ensure_ascii=False)
        buf = io.StringIO()
        for row in rows:
            buf.write(row + "\n")
        stream.write(buf.getvalue())
        stream.flush()
    return errors
