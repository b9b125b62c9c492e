"""`albert pretrain`: ALBERT's masked-LM + sentence-order-prediction pretraining.

The objective is the original ``run_pretraining.py``'s::

    mlm_loss = sum(CE(masked positions) * masked_lm_weights) / (sum(weights) + 1e-5)
    sop_loss = mean(CE over 2 classes)
    loss     = mlm_loss + sop_loss

with LAMB (or AdamW), global-norm clipping 1.0, linear warm-up then linear
(polynomial, power 1) decay.  Examples come from
:mod:`albert_cli.data.pretraining` (streamed corpus, n-gram whole-word
masking redrawn every epoch) and are always padded to ``--max-seq-length``,
so every step has the same shapes (XLA compiles once).

This module holds everything that does not depend on the Keras backend --
options, corpus reading, the example stream, the step budget, the training
loop (progress, logging, checkpoints, resume, Ctrl-C), the output directory --
and the TensorFlow runtime (:class:`TFRuntime`, ``tf.distribute``).  The JAX
runtime lives in :mod:`albert_cli.train.pretrain_jax`; with
``KERAS_BACKEND=jax`` TensorFlow is never imported.

Data position on resume: a checkpoint records ``epoch`` and the number of
batches of that epoch already trained; resuming regenerates that epoch (same
seed, same masks) and skips those batches.  With several workers each one
keeps its own position (same rule, its own shard), so the chief's checkpoint
only needs the global step: every worker replays its shard up to it.
"""

from __future__ import annotations

import json
import math
import os
import queue
import re
import shutil
import tempfile
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from albert_cli.console import err_console, info, warn
from albert_cli.errors import DataError, Interrupted, ModelError, UsageError, deferred_interrupts

# LAMB's peak rate for ALBERT's batch of 4096; smaller batches use the
# square-root scaling rule of the LAMB paper: lr = 1.76e-3 * sqrt(batch / 4096).
REFERENCE_LR, REFERENCE_BATCH = 1.76e-3, 4096
DEFAULT_CONFIG = "small"
META_FILE = "albert_pretrain.json"
LOG_FILE = "train.jsonl"
STRATEGIES = ("auto", "one-device", "mirrored", "multi-worker", "tpu")
PRECISIONS = {"fp32": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}
METRICS = ("loss", "mlm_loss", "mlm_accuracy", "sop_loss", "sop_accuracy")


# ---------------------------------------------------------------------------
# Options
# ---------------------------------------------------------------------------
def parse_duration(text: str | None) -> float | None:
    """Seconds from ``"90"``, ``"45s"``, ``"30m"``, ``"2h"``, ``"1h30m"`` (None stays None)."""
    if text is None:
        return None
    s = str(text).strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", s):
        return float(s)
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([smhd])", s)
    if not parts or re.sub(r"(\d+(?:\.\d+)?)\s*([smhd])", "", s).strip():
        raise UsageError(f"--max-time: cannot read {text!r}; use e.g. 90s, 30m, 2h or 1h30m")
    unit = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    return sum(float(n) * unit[u] for n, u in parts)


def default_learning_rate(batch_size: int, optimizer: str = "lamb") -> float:
    """LAMB: ``1.76e-3 * sqrt(batch/4096)`` (ALBERT's rate, square-root scaled).
    AdamW: BERT's 1e-4 at batch 256, square-root scaled the same way."""
    if optimizer == "adamw":
        return 1e-4 * math.sqrt(batch_size / 256)
    return REFERENCE_LR * math.sqrt(batch_size / REFERENCE_BATCH)


@dataclass
class PretrainOptions:
    corpus: list[str]
    output: str
    tokenizer: str | None = None
    config: str | None = None
    init: str | None = None
    format: str | None = None
    text_column: str = "text"
    doc_column: str | None = None
    max_seq_length: int = 128
    max_predictions_per_seq: int = 20
    masked_lm_prob: float = 0.15
    short_seq_prob: float = 0.1
    batch_size: int = 32
    learning_rate: float | None = None
    warmup_steps: int | None = None
    decay_steps: int | None = None
    max_steps: int | None = None
    max_time: str | None = None
    epochs: float | None = None
    save_every: int = 1000
    keep_checkpoints: int = 2
    log_every: int = 10
    resume: bool = False
    seed: int = 12345
    optimizer: str = "lamb"
    weight_decay: float = 0.01
    precision: str = "fp32"
    jit: bool = False
    strategy: str = "auto"
    deterministic: bool = False
    shuffle_buffer: int = 1000
    # Redraw every document's SOP segmentation each epoch (not only its masks): for
    # many passes over a small corpus (`finetune --tapt-steps`).
    vary_instances_per_epoch: bool = False
    overwrite: bool = False
    export_google: bool = False
    max_time_seconds: float | None = field(default=None, init=False)

    def validate(self) -> None:
        """Raise UsageError (exit 2) for out-of-range or conflicting options."""
        if not self.corpus:
            raise UsageError("give at least one CORPUS file")
        if not self.tokenizer and not self.init:
            raise UsageError("--tokenizer is required (or --init a model directory that has spiece.model)")
        if self.init and self.config:
            raise UsageError("--config sets the shape of a new model; it cannot be combined with --init")
        if self.max_seq_length < 8:
            raise UsageError(f"--max-seq-length must be at least 8, got {self.max_seq_length}")
        if self.max_predictions_per_seq < 1:
            raise UsageError(f"--max-predictions-per-seq must be at least 1, got {self.max_predictions_per_seq}")
        if not 0 < self.masked_lm_prob < 1:
            raise UsageError(f"--masked-lm-prob must be in (0, 1), got {self.masked_lm_prob}")
        if not 0 <= self.short_seq_prob <= 1:
            raise UsageError(f"--short-seq-prob must be in [0, 1], got {self.short_seq_prob}")
        for name in ("batch_size", "save_every", "keep_checkpoints", "log_every"):
            if getattr(self, name) < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        for name in ("max_steps", "decay_steps"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
        if self.warmup_steps is not None and self.warmup_steps < 0:
            raise UsageError(f"--warmup-steps must be >= 0, got {self.warmup_steps}")
        if self.epochs is not None and not self.epochs > 0:
            raise UsageError(f"--epochs must be positive, got {self.epochs}")
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise UsageError(f"--learning-rate must be positive, got {self.learning_rate}")
        if self.optimizer not in ("lamb", "adamw"):
            raise UsageError(f"--optimizer must be lamb or adamw, got '{self.optimizer}'")
        if self.precision not in PRECISIONS:
            raise UsageError(f"--precision must be one of {', '.join(PRECISIONS)}, got '{self.precision}'")
        if self.strategy not in STRATEGIES:
            raise UsageError(f"--strategy must be one of {', '.join(STRATEGIES)}, got '{self.strategy}'")
        if self.seed < 0:
            raise UsageError(f"--seed must be >= 0, got {self.seed}")
        self.max_time_seconds = parse_duration(self.max_time)
        if self.max_time_seconds is not None and self.max_time_seconds <= 0:
            raise UsageError(f"--max-time must be positive, got {self.max_time}")

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "max_time_seconds"}


# ---------------------------------------------------------------------------
# Corpus
# ---------------------------------------------------------------------------
def _check_file(path: str) -> Path:
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
    from albert_cli.data.readers import iter_records

    _check_file(path)
    for (line,) in iter_records(path, "txt"):
        yield line


def _records(path: str, fmt: str, columns: tuple[str, str]) -> Iterator[tuple[str, str]]:
    """(text, doc) of every CSV/TSV/JSONL record (doc column values as strings)."""
    from albert_cli.data.readers import iter_records

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
    from albert_cli.data.readers import detect_format, iter_texts

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
            _check_file(path)
            for text in iter_texts(path, kind, text_column):
                yield " ".join(text.split())
        yield ""


# ---------------------------------------------------------------------------
# Helpers shared by the runtimes
# ---------------------------------------------------------------------------
def pretraining_losses(outputs: dict, features: dict) -> dict:
    """The original objective (see module docstring) and accuracies, in float32 (keras.ops)."""
    from keras import ops

    mlm_logits = ops.cast(outputs["mlm_logits"], "float32")
    sop_logits = ops.cast(outputs["sop_logits"], "float32")
    ids = ops.cast(features["masked_lm_ids"], "int32")
    weights = ops.cast(features["masked_lm_weights"], "float32")
    labels = ops.cast(features["sentence_order_label"], "int32")
    denominator = ops.sum(weights) + 1e-5
    mlm_ce = ops.sparse_categorical_crossentropy(ids, mlm_logits, from_logits=True)
    mlm_loss = ops.sum(mlm_ce * weights) / denominator
    mlm_hit = ops.cast(ops.equal(ops.cast(ops.argmax(mlm_logits, axis=-1), "int32"), ids), "float32")
    sop_loss = ops.mean(ops.sparse_categorical_crossentropy(labels, sop_logits, from_logits=True))
    sop_hit = ops.cast(ops.equal(ops.cast(ops.argmax(sop_logits, axis=-1), "int32"), labels), "float32")
    return {
        "loss": mlm_loss + sop_loss,
        "mlm_loss": mlm_loss,
        "mlm_accuracy": ops.sum(mlm_hit * weights) / denominator,
        "sop_loss": sop_loss,
        "sop_accuracy": ops.mean(sop_hit),
    }


def model_inputs(features: dict) -> dict:
    """The `AlbertPretrainer` inputs of a feature batch."""
    return {
        "token_ids": features["token_ids"],
        "segment_ids": features["segment_ids"],
        "padding_mask": features["padding_mask"],
        "mask_positions": features["masked_lm_positions"],
    }


def learning_rate_at(optimizer, step: int) -> float:
    """The scheduled rate used by update number `step` (0-based)."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    schedule = getattr(inner, "_learning_rate", None)
    if callable(schedule):
        from keras import ops

        return float(ops.convert_to_numpy(schedule(step)))
    return float(np.asarray(inner.learning_rate))


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


def seed_everything(seed: int) -> None:
    """Python, NumPy and Keras seeds, without importing TensorFlow."""
    import random

    from keras.src.backend.common import global_state

    random.seed(seed)
    np.random.seed(seed)
    global_state.set_global_attribute("global_random_seed", seed)


class JsonlLog:
    """Append-only ``logs/train.jsonl`` (one record per logged step; both backends)."""

    def __init__(self, path: Path | None):
        self.file = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.file = open(path, "a", encoding="utf-8")

    def write(self, record: dict) -> None:
        if self.file:
            self.file.write(json.dumps(record) + "\n")
            self.file.flush()

    def close(self) -> None:
        if self.file:
            self.file.close()


# ---------------------------------------------------------------------------
# The runner
# ---------------------------------------------------------------------------
class Pretrainer:
    """Sets up tokenizer, stream, model and optimizer on a runtime, trains, writes OUT.

    Also a library: `albert finetune --tapt-steps` runs one on the task's texts
    (with `progress_label = "tapt"`).
    """

    progress_label = "pretrain"

    def __init__(self, opts: PretrainOptions):
        opts.validate()
        self.opts = opts
        self.out = Path(opts.output)

    # ------------------------------------------------------------- runtime
    def _make_runtime(self):
        backend = os.environ.get("KERAS_BACKEND", "tensorflow")
        if backend == "jax":
            import importlib.util

            if importlib.util.find_spec("jax") is None:
                raise UsageError("KERAS_BACKEND=jax, but the jax package is not installed (pip install jax)")
            from albert_cli.train.pretrain_jax import JaxRuntime

            return JaxRuntime(self.opts)
        if backend != "tensorflow":
            raise UsageError(f"KERAS_BACKEND={backend} is not supported by pretrain (use tensorflow or jax)")
        return TFRuntime(self.opts)

    # --------------------------------------------------------------- output
    def _prepare_output(self, is_chief: bool, worker_index: int) -> None:
        """Chief: check OUT and build in OUT.partial.  Other workers: a temp dir
        (they read the chief's checkpoints on --resume, so OUT must then be on a
        shared filesystem)."""
        from albert_cli.modeldir import partial_dir, prepare_output

        if is_chief:
            self.staging = prepare_output(self.out, self.opts.overwrite, self.opts.resume)
            self.ckpt_read = self.staging / "checkpoints"
            finished_logs = self.out / "logs"
            if self.opts.resume and finished_logs.is_dir() and not (self.staging / "logs").exists():
                shutil.copytree(finished_logs, self.staging / "logs")  # continuing a finished run
        else:
            self.staging = Path(tempfile.mkdtemp(prefix=f"albert-pretrain-worker{worker_index}-"))
            self.ckpt_read = partial_dir(self.out) / "checkpoints"
        self.ckpt_dir = self.staging / "checkpoints"

    def _check_inputs(self) -> None:
        """Fail fast (before TensorFlow/JAX start) on missing corpus or tokenizer files."""
        from albert_cli.text.spm import SentencePieceTokenizer

        for path in self.opts.corpus:
            _check_file(path)
        if self.opts.tokenizer:
            SentencePieceTokenizer.from_file(self.opts.tokenizer)

    # ------------------------------------------------------------ tokenizer
    def _setup_tokenizer(self) -> None:
        """Copy the SentencePiece model (+ PREFIX.json sidecar) into the output, load it."""
        from albert_cli.data.pretraining import vocab_from_sentencepiece
        from albert_cli.text.spm import SentencePieceTokenizer, sidecar_path

        target = self.staging / "spiece.model"
        source = Path(self.opts.tokenizer) if self.opts.tokenizer else None
        if source is None and self.pretrained is not None:
            tok = self.pretrained.tokenizer
            if tok is None or tok.kind != "sentencepiece":
                raise ModelError(f"{self.opts.init}: no SentencePiece model (spiece.model); give --tokenizer")
            source = Path(tok.path)
        if source is not None:
            SentencePieceTokenizer.from_file(source)  # clean error for a missing / bad file
            if not (target.exists() and target.samefile(source)):
                shutil.copyfile(source, target)
            side = sidecar_path(source)
            if side.is_file():
                shutil.copyfile(side, sidecar_path(target))
        self.tokenizer = SentencePieceTokenizer.from_file(target)
        try:
            self.vocab = vocab_from_sentencepiece(target)
        except ValueError as exc:
            raise ModelError(f"{source or target}: {exc}") from None

    # ---------------------------------------------------------------- model
    def _model_config(self):
        from albert_cli.model.config import AlbertConfig

        o = self.opts
        if self.pretrained is not None:
            config = self.pretrained.config
        else:
            config = AlbertConfig.resolve(o.config or DEFAULT_CONFIG)
            config.vocab_size = self.tokenizer.vocab_size
        config.validate()
        if self.tokenizer.vocab_size > config.vocab_size:
            raise ModelError(
                f"{o.init}: tokenizer has {self.tokenizer.vocab_size} pieces but the model only {config.vocab_size}"
            )
        if o.max_seq_length > config.max_position_embeddings:
            raise UsageError(
                f"--max-seq-length {o.max_seq_length} exceeds the model's {config.max_position_embeddings} positions"
            )
        return config

    def _build_model(self, config):
        from albert_cli.model.backbone import AlbertBackbone
        from albert_cli.model.heads import AlbertPretrainer

        model = AlbertPretrainer(AlbertBackbone(config))
        if self.pretrained is not None:
            from albert_cli.weights.loader import apply_to

            apply_to(model, self.pretrained)  # backbone + whichever of mlm/sop the source has
        return model

    # ----------------------------------------------------------------- data
    def _stream(self, shard_index: int, num_shards: int):
        from albert_cli.data.pretraining import PretrainingStream, iter_documents

        o = self.opts
        encode = self.tokenizer.encode

        def documents():
            return iter_documents(iter_corpus_lines(o.corpus, o.format, o.text_column, o.doc_column), encode)

        return PretrainingStream(
            documents, self.vocab, max_seq_length=o.max_seq_length, max_predictions_per_seq=o.max_predictions_per_seq,
            seed=o.seed, masked_lm_prob=o.masked_lm_prob, short_seq_prob=o.short_seq_prob,
            shard_index=shard_index, num_shards=num_shards, shuffle_buffer_size=o.shuffle_buffer,
            vary_instances_per_epoch=o.vary_instances_per_epoch,
        )

    def _budget(self) -> tuple[int | None, int, int]:
        """(steps to run or None = until --max-time, LR decay steps, warm-up steps)."""
        o = self.opts
        total = o.max_steps
        epochs = o.epochs if o.epochs is not None else (None if (o.max_steps or o.max_time_seconds) else 1.0)
        if epochs is not None:
            info("counting the examples of one epoch (one pass over the corpus)")
            examples = sum(1 for _ in self._stream(0, 1).examples(0))
            per_epoch = examples // o.batch_size
            if per_epoch == 0:
                raise DataError(
                    f"{o.corpus[0]}: the corpus gives {examples} examples, fewer than --batch-size {o.batch_size}"
                )
            by_epochs = max(1, int(round(per_epoch * epochs)))
            total = min(total, by_epochs) if total else by_epochs
            info(f"{examples} examples per epoch, {per_epoch} steps per epoch")
        decay = o.decay_steps or total or 10**9  # --max-time only: constant rate after warm-up
        warmup = o.warmup_steps if o.warmup_steps is not None else (int(0.025 * total) if total else 1000)
        return total, decay, warmup

    def _batches(self, stream, start_epoch: int, skip: int) -> Iterator[tuple[int, int, dict]]:
        """(epoch, batch index in epoch, batch), cycling epochs forever, from a position."""
        per_worker = self.opts.batch_size // self.rt.num_workers
        epoch = start_epoch
        while True:
            produced = False
            for b, batch in enumerate(stream.batches(epoch, per_worker, drop_remainder=True)):
                produced = True
                if epoch == start_epoch and b < skip:
                    continue
                yield epoch, b, batch
            if not produced:
                raise DataError(
                    f"{self.opts.corpus[0]}: worker {self.rt.worker_index} gets fewer than "
                    f"{per_worker} examples per epoch (corpus too small for --batch-size)"
                )
            epoch += 1

    def _replay_position(self, stream, step: int) -> tuple[int, int]:
        """(epoch, batches done in it) after `step` steps, by counting batches (non-chief resume)."""
        per_worker = self.opts.batch_size // self.rt.num_workers
        epoch, left = 0, step
        while True:
            n = sum(1 for _ in stream.batches(epoch, per_worker, drop_remainder=True))
            if n == 0 or left < n:
                return epoch, left
            left -= n
            epoch += 1

    # ------------------------------------------------------------------ run
    def run(self) -> dict:
        """Check inputs, start the runtime, build everything, train, write OUT."""
        o = self.opts
        self._check_inputs()
        multi = (os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow"
                 and planned_strategy(o.strategy) == "multi-worker")
        _, index, chief = cluster_role(_tf_config()) if multi else (1, 0, True)
        self._prepare_output(chief, index)
        try:
            self.rt = self._make_runtime()
            if o.batch_size % self.rt.num_replicas:
                raise UsageError(f"--batch-size {o.batch_size} must be a multiple of the {self.rt.num_replicas} replicas")
            self.rt.seed(o.seed, o.deterministic)
            total = self._setup()
            result = self._train(total)
            if self.rt.is_chief:
                self._export(result)
            else:
                shutil.rmtree(self.staging, ignore_errors=True)
        except Interrupted:
            raise
        except BaseException:  # bad data, bad options, full disk...: keep OUT.partial only if it can be resumed
            if chief:
                from albert_cli.modeldir import discard_if_empty

                discard_if_empty(self.staging)
            elif self.staging.is_dir():
                shutil.rmtree(self.staging, ignore_errors=True)
            raise
        self.rt.check_clean()
        return {
            "output": str(self.out), **result, "backend": self.rt.name, "workers": self.rt.num_workers,
            "worker_index": self.rt.worker_index, "is_chief": self.rt.is_chief,
        }

    def _setup(self) -> int | None:
        """Tokenizer, config, step budget, model + optimizer on the runtime; returns the step budget."""
        from albert_cli.model.optimizers import make_optimizer

        o = self.opts
        self.pretrained = None
        if o.init:
            from albert_cli.weights.loader import load_pretrained

            self.pretrained = load_pretrained(o.init)
        self._setup_tokenizer()
        config = self._model_config()
        total, decay, warmup = self._budget()
        lr = o.learning_rate or default_learning_rate(o.batch_size, o.optimizer)
        self.rt.set_precision(o.precision)
        with self.rt.scope():
            model = self._build_model(config)
            optimizer = make_optimizer(o.optimizer, lr, decay, warmup, weight_decay=o.weight_decay, clipnorm=1.0)
            model, optimizer = self.rt.compile(model, optimizer)
        self.model, self.optimizer, self.config = model, optimizer, config
        self.settings = dict(
            learning_rate=lr, warmup_steps=warmup, decay_steps=decay, total_steps=total, config=config.to_dict(),
            backend=self.rt.name, strategy=self.rt.strategy_name, workers=self.rt.num_workers,
            replicas=self.rt.num_replicas, vocab_size=self.tokenizer.vocab_size,
        )
        info(
            f"pretraining {self.rt.name}/{self.rt.strategy_name}: batch {o.batch_size}, seq {o.max_seq_length}, "
            f"lr {lr:.3g} ({o.optimizer}), warm-up {warmup}, " + (f"{total} steps" if total else f"until {o.max_time}")
        )
        return total

    # ------------------------------------------------------------- the loop
    def _restore(self, stream) -> tuple[int, int, int, dict]:
        from albert_cli.train.state import latest_checkpoint, restore_checkpoint

        last = latest_checkpoint(self.ckpt_read)
        if last is None:
            raise UsageError(f"{self.out}: nothing to resume (no checkpoint in {self.ckpt_read})")
        state = restore_checkpoint(self.ckpt_read, last, self.model, self.optimizer)
        self.rt.after_restore()
        if self.rt.num_workers > 1 and not self.rt.is_chief:
            epoch, skip = self._replay_position(stream, state["step"])
        else:
            epoch, skip = state["epoch"], state["batch_in_epoch"]
        info(f"resumed at step {state['step']} (epoch {epoch + 1}, batch {skip})")
        return state["step"], epoch, skip, state.get("totals", {})

    def _save(self, step: int, epoch: int, batch_in_epoch: int, totals: dict) -> None:
        if not self.rt.is_chief:
            return
        from albert_cli.train.state import save_checkpoint

        self.rt.sync()
        state = {"epoch": epoch, "batch_in_epoch": batch_in_epoch, "totals": totals}
        save_checkpoint(self.ckpt_dir, step, self.model, self.optimizer, state,
                        keep=self.opts.keep_checkpoints)

    def _train(self, total: int | None) -> dict:
        from albert_cli.console import progress

        o, rt = self.opts, self.rt
        stream = self._stream(rt.worker_index, rt.num_workers)
        step, epoch, skip, totals = 0, 0, 0, {}
        if o.resume:
            step, epoch, skip, totals = self._restore(stream)
        start_step = step
        tokens = tokens_at_start = int(totals.get("tokens", 0))
        seconds_before = float(totals.get("seconds", 0.0))
        jsonl = JsonlLog(self.staging / "logs" / LOG_FILE if rt.is_chief else None)
        scalars = rt.scalar_writer(self.staging / "logs" / "train") if rt.is_chief else None
        head: list[dict] = []  # the first and the last 5 steps of this run
        tail: deque = deque(maxlen=5)
        window_tokens, window_start = 0, time.time()
        t0 = time.time()
        position = (epoch, skip)
        with progress() as bar:
            task = bar.add_task(self.progress_label, total=total, completed=step, status="")
            try:
                for epoch_i, b, batch in prefetch(self._batches(stream, epoch, skip)):
                    if total is not None and step >= total:  # e.g. resuming a finished run
                        break
                    out_of_time = o.max_time_seconds is not None and time.time() - t0 >= o.max_time_seconds
                    with deferred_interrupts():
                        metrics = rt.step(batch, stop=out_of_time)
                        step += 1
                        position = (epoch_i, b + 1)
                        batch_tokens = int(batch["padding_mask"].sum()) * rt.num_workers
                        tokens += batch_tokens
                        window_tokens += batch_tokens
                    if not math.isfinite(metrics["loss"]):
                        raise ModelError(f"training diverged at step {step} (loss {metrics['loss']}); "
                                         "try a lower --learning-rate")
                    row = {k: metrics[k] for k in METRICS}
                    tail.append(row)
                    if len(head) < 5:
                        head.append(row)
                    elapsed = time.time() - t0
                    rate = (tokens - tokens_at_start) / max(elapsed, 1e-6)
                    bar.update(task, completed=step, status=f"loss {metrics['loss']:.3f} {rate:,.0f} tok/s")
                    if step % o.log_every == 0 or step == 1:
                        now = time.time()
                        record = {"step": step, **{k: round(metrics[k], 6) for k in METRICS},
                                  "learning_rate": learning_rate_at(self.optimizer, step - 1),
                                  "tokens_per_second": round(window_tokens / max(now - window_start, 1e-6), 1),
                                  "elapsed": round(now - t0, 3)}
                        window_tokens, window_start = 0, now
                        jsonl.write(record)
                        if scalars is not None:
                            scalars(step, record)
                    if step % o.save_every == 0:
                        self._save(step, *position, self._totals(tokens, seconds_before + time.time() - t0))
                    if metrics.get("stop"):
                        info(f"--max-time {o.max_time} reached at step {step}")
                        break
                    if total is not None and step >= total:
                        break
            except Interrupted:
                self._save(step, *position, self._totals(tokens, seconds_before + time.time() - t0))
                if rt.is_chief:
                    err_console.print(
                        f"saved a checkpoint at step {step} in {self.ckpt_dir}; continue with --resume", highlight=False
                    )
                raise
            finally:
                jsonl.close()
                if scalars is not None:
                    scalars.close()
        seconds = time.time() - t0
        self._save(step, *position, self._totals(tokens, seconds_before + seconds))
        return self._summary(step, start_step, (tokens, tokens - tokens_at_start), (seconds_before, seconds), head, list(tail))

    @staticmethod
    def _totals(tokens: int, seconds: float) -> dict:
        return {"tokens": tokens, "seconds": round(seconds, 3)}

    @staticmethod
    def _summary(step, start_step, tokens, seconds, head, tail) -> dict:
        """Final figures: `tokens`/`seconds` are (all runs, this run); losses are
        means over the first / last 5 steps of this run."""
        def mean(rows, key):
            return round(float(np.mean([r[key] for r in rows])), 6) if rows else None

        return {
            "steps": step,
            "steps_this_run": step - start_step,
            "tokens": tokens[0],
            "seconds": round(sum(seconds), 2),
            "tokens_per_second": round(tokens[1] / max(seconds[1], 1e-6), 1),
            "first_loss": mean(head, "loss"),
            "final_loss": mean(tail, "loss"),
            **{f"final_{k}": mean(tail, k) for k in METRICS if k != "loss"},
        }

    # --------------------------------------------------------------- export
    def _export(self, result: dict) -> None:
        """Write the HF directory (+ Google checkpoint) into OUT.partial, then commit."""
        from albert_cli.modeldir import atomic_write_text, commit
        from albert_cli.weights import save_hf_dir

        self.rt.sync()
        info("writing the model directory")
        save_hf_dir(self.model, self.staging, config=self.config)
        n = self.tokenizer.normalizer
        atomic_write_text(
            self.staging / "tokenizer_config.json",
            json.dumps({"tokenizer_class": "AlbertTokenizer", "do_lower_case": n.lowercase,
                        "keep_accents": not n.strip_accents, "remove_space": True,
                        "model_max_length": self.config.max_position_embeddings}, indent=1),
        )
        if self.opts.export_google:
            from albert_cli.weights import save_google_checkpoint

            google = self.staging / "google"
            prefix = save_google_checkpoint(self.model, google, config=self.config)
            # TF's `checkpoint` index holds absolute paths (into OUT.partial): make them relative.
            (google / "checkpoint").write_text(
                f'model_checkpoint_path: "{prefix.name}"\nall_model_checkpoint_paths: "{prefix.name}"\n'
            )
            shutil.copyfile(self.staging / "spiece.model", google / "spiece.model")
        meta = {"format": "albert-cli-pretrain", "format_version": 1, **result,
                "options": self.opts.to_dict(), **self.settings}
        atomic_write_text(self.staging / META_FILE, json.dumps(meta, indent=1, default=str))
        commit(self.staging, self.out)


def run_pretrain(opts: PretrainOptions) -> dict:
    """Pretrain as `opts` says; returns the summary printed by the CLI."""
    return Pretrainer(opts).run()


# ---------------------------------------------------------------------------
# TensorFlow runtime (tf.distribute)
# ---------------------------------------------------------------------------
def _tf_config() -> dict:
    raw = os.environ.get("TF_CONFIG", "").strip()
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise UsageError(f"TF_CONFIG is not valid JSON ({exc})") from None
    return data if isinstance(data, dict) else {}


def cluster_role(tf_config: dict) -> tuple[int, int, bool]:
    """(number of workers, this worker's index, is chief) from a TF_CONFIG dict."""
    cluster = tf_config.get("cluster", {}) or {}
    task = tf_config.get("task", {}) or {}
    kind, index = task.get("type", "worker"), int(task.get("index", 0))
    workers = list(cluster.get("chief", [])) + list(cluster.get("worker", []))
    n = max(1, len(workers))
    if "chief" in cluster:
        position = 0 if kind == "chief" else index + 1
        return n, position, kind == "chief"
    return n, index, index == 0


def planned_strategy(option: str) -> str:
    """The strategy `--strategy` names; ``auto`` = multi-worker when TF_CONFIG lists >1 workers."""
    if option != "auto":
        return option
    return "multi-worker" if cluster_role(_tf_config())[0] > 1 else "one-device"


class TFRuntime:
    """Training step under a `tf.distribute` strategy (TensorFlow backend)."""

    name = "tensorflow"

    def __init__(self, opts: PretrainOptions):
        from albert_cli._tf import import_tf

        self.tf = tf = import_tf()
        self.opts = opts
        tf_config = _tf_config()
        _, index, chief = cluster_role(tf_config)
        kind = planned_strategy(opts.strategy)
        self.strategy_name = kind
        self.strategy = self._make_strategy(tf, kind)
        if kind == "multi-worker":
            resolver = self.strategy.cluster_resolver
            self.num_workers = max(1, len(resolver.cluster_spec().as_dict().get("worker", []))
                                   + len(resolver.cluster_spec().as_dict().get("chief", [])))
            self.worker_index, self.is_chief = index, chief
        else:
            self.num_workers, self.worker_index, self.is_chief = 1, 0, True
        self.num_replicas = self.strategy.num_replicas_in_sync
        self.local_replicas = max(1, self.num_replicas // self.num_workers)

    @staticmethod
    def _make_strategy(tf, kind: str):
        try:
            if kind == "one-device":
                return tf.distribute.OneDeviceStrategy("/cpu:0" if not tf.config.list_physical_devices("GPU")
                                                       else "/gpu:0")
            if kind == "mirrored":
                return tf.distribute.MirroredStrategy()
            if kind == "multi-worker":
                if not _tf_config().get("cluster"):
                    raise UsageError("--strategy multi-worker needs TF_CONFIG (cluster and task) in the environment")
                return tf.distribute.MultiWorkerMirroredStrategy()
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
            return tf.distribute.TPUStrategy(resolver)
        except (UsageError, ModelError):
            raise
        except Exception as exc:  # no TPU, bad cluster spec, ...
            raise UsageError(f"--strategy {kind}: cannot start ({type(exc).__name__}: "
                             f"{' '.join(str(exc).split())[:200]})") from None

    # -- setup ---------------------------------------------------------------
    def seed(self, seed: int, deterministic: bool) -> None:
        import keras

        keras.utils.set_random_seed(seed)
        if deterministic:
            self.tf.config.experimental.enable_op_determinism()

    def set_precision(self, precision: str) -> None:
        import keras

        if precision == "fp16":
            warn("--precision fp16 on CPU is emulated and usually slower than fp32; it is meant for GPUs")
        keras.config.set_dtype_policy(PRECISIONS[precision])

    def scope(self):
        return self.strategy.scope()

    def compile(self, model, optimizer):
        """Wrap fp16 in loss scaling, build the optimizer, trace the train step."""
        import keras

        tf = self.tf
        if self.opts.precision == "fp16":
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        optimizer.build(model.trainable_variables)
        replicas = self.num_replicas
        fp16 = self.opts.precision == "fp16"
        one_device = self.strategy_name == "one-device"

        def forward_backward(features):
            with tf.GradientTape() as tape:
                metrics = pretraining_losses(model(model_inputs(features), training=True), features)
                loss = metrics["loss"] / replicas
                if fp16:
                    loss = optimizer.scale_loss(loss)
            return metrics, tape.gradient(loss, model.trainable_variables)

        if self.opts.jit and not one_device:  # collectives stay outside XLA
            forward_backward = tf.function(forward_backward, jit_compile=True)

        def replica_step(features):
            features = dict(features)
            stop = tf.identity(features.pop("_stop"))  # placed on the replica device (all_reduce needs one)
            metrics, grads = forward_backward(features)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))  # all-reduces the gradients
            ctx = tf.distribute.get_replica_context()
            out = {k: ctx.all_reduce(tf.distribute.ReduceOp.MEAN, v) for k, v in metrics.items()}
            out["stop"] = ctx.all_reduce(tf.distribute.ReduceOp.SUM, stop)  # > 0: some worker votes stop
            return out

        @tf.function(jit_compile=bool(self.opts.jit and one_device))
        def train_step(dist_features):
            per_replica = self.strategy.run(replica_step, args=(dist_features,))
            return {k: self.strategy.experimental_local_results(v)[0] for k, v in per_replica.items()}

        self._train_step = train_step
        return model, optimizer

    # -- steps ---------------------------------------------------------------
    def _distribute(self, batch: dict, stop: bool):
        tf, n = self.tf, self.local_replicas
        size = next(iter(batch.values())).shape[0] // n

        def value_fn(ctx):
            i = ctx.replica_id_in_sync_group % n
            values = {k: tf.constant(v[i * size:(i + 1) * size]) for k, v in batch.items()}
            values["_stop"] = tf.constant(1.0 if stop else 0.0)
            return values

        return self.strategy.experimental_distribute_values_from_function(value_fn)

    def step(self, batch: dict, stop: bool = False) -> dict:
        out = self._train_step(self._distribute(batch, stop))
        return {k: float(v) for k, v in out.items()}

    def sync(self) -> None:
        """Keras variables are the training state on TensorFlow: nothing to copy."""

    def after_restore(self) -> None:
        pass

    def scalar_writer(self, logdir: Path):
        """A `write(step, record)` callable for TensorBoard scalars (with `.close`)."""
        tf = self.tf
        writer = tf.summary.create_file_writer(str(logdir))

        class _Writer:
            def __call__(self, step, record):
                with writer.as_default(step=step):
                    for key, value in record.items():
                        if key != "step":
                            tf.summary.scalar(key, value)

            def close(self):
                writer.close()

        return _Writer()

    def check_clean(self) -> None:
        pass
