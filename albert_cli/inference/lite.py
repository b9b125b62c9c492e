"""The TFLite predictor: texts tokenized in Python, ids through the LiteRT interpreter.

A TFLite model directory (written by ``albert export``, see ``albert_cli.artifacts.tflite``) holds
``model.tflite`` (int32 ``token_ids`` / ``segment_ids`` / ``padding_mask`` ``[batch, seq]`` in, one float32
output: ``probabilities`` or ``value``), ``assets/albert_cli.json`` and the tokenizer files.
tensorflow-text's SentencePiece ops are not TFLite builtins, so texts are tokenized here, with the same
ids as the SavedModel's in-graph tokenizer, and labels, scores and thresholds come from
:func:`albert_cli.inference.base.serving_outputs`: the outputs have the SavedModel's keys and meaning.
Nothing here imports TensorFlow at import time.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from albert_cli._tf import _quiet_stderr_fd, import_tf
from albert_cli.artifacts.modeldir import TFLITE_FILE, ModelMeta
from albert_cli.errors import ModelError
from albert_cli.inference.base import BasePredictor, Outputs, sequence_length, serving_outputs
from albert_cli.text.packing import Packed, pack_batch
from albert_cli.text.preprocessor import pad_batch
from albert_cli.text.tokenizers import tokenizer_for_model_dir
from albert_cli.text.windows import WindowSpec, count_windows, encode_windows

INPUT_NAMES = ("token_ids", "segment_ids", "padding_mask")
"""The inputs of ``model.tflite`` (and of the SavedModel's ``classify_ids`` signature it is converted from)."""


def cpu_count() -> int:
    """CPUs this process may run on (its affinity mask), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def first_line(exc: BaseException, limit: int = 300) -> str:
    """An exception's text on one line, cut at `limit` characters."""
    text = " ".join(str(exc).split())
    return text[:limit] + ("..." if len(text) > limit else "")


class Packer:
    """Python tokenization + packing with the ids of the model directory's in-graph tokenizer.

    Args:
        path: the model directory (its ``assets/`` hold the tokenizer).
        meta: its metadata (tokenizer, normalizer, sequence length).
    """

    def __init__(self, path: Path, meta: ModelMeta):
        self.meta = meta
        self.tokenizer = tokenizer_for_model_dir(path, meta)
        tok = self.tokenizer
        self.cls_id, self.sep_id, self.pad_id = tok.cls_id, tok.sep_id, tok.pad_id
        self.max_seq_length = sequence_length(meta)
        self.windows = WindowSpec.from_dict(meta.windows)

    def encode(self, texts: list[str], pairs: list[str] | None) -> list:
        """Token ids of each text, or ``(ids_a, ids_b)`` per pair."""
        ids_a = self.tokenizer.encode_batch(texts)
        if pairs is None:
            return ids_a
        return list(zip(ids_a, self.tokenizer.encode_batch(pairs)))

    def packed_length(self, example) -> int:
        """Tokens of `example` once packed (with [CLS]/[SEP], cut at the sequence length)."""
        if isinstance(example, tuple):
            return min(len(example[0]) + len(example[1]) + 3, self.max_seq_length)
        if self.windows is not None:  # every window's pieces and its [CLS] and [SEP]
            pieces = min(len(example), self.windows.pieces_read(self.max_seq_length))
            return pieces + 2 * count_windows(pieces, self.max_seq_length, self.windows.stride)
        return min(len(example) + 2, self.max_seq_length)

    def pack(self, examples, max_seq_length: int | None = None) -> Packed:
        """int32 ``[batch, longest]`` inputs for encoded `examples` (``[batch, windows, longest]`` for a windowed
        model; with `max_seq_length`, each text cut to one window of that length)."""
        if self.windows is not None:
            if max_seq_length is not None:
                packed = self.pack_rows(examples, max_seq_length)
                return Packed(*(x[:, None, :] for x in packed))
            encoded = [encode_windows(ids, self.max_seq_length, self.windows, self.cls_id, self.sep_id)
                       for ids in examples]
            return Packed(**pad_batch(encoded, np.arange(len(encoded)), multiple=1))
        return self.pack_rows(examples, max_seq_length)

    def pack_rows(self, examples, max_seq_length: int | None = None) -> Packed:
        """int32 ``[batch, longest]``: each example cut at the sequence length."""
        return pack_batch(
            examples, max_seq_length=max_seq_length or self.max_seq_length, cls_id=self.cls_id,
            sep_id=self.sep_id, pad_id=self.pad_id,
        )


def make_interpreter(model_path: Path | None = None, content: bytes | None = None, num_threads: int | None = None):
    """``tf.lite.Interpreter`` with the default XNNPACK delegate, quietly.

    TensorFlow 2.21 still ships the interpreter (and links it into the wheel we
    already depend on); it warns that it moves to ``ai_edge_litert``, a package
    we do not need, so that warning and XNNPACK's start-up notice are hidden.

    Args:
        model_path: a ``model.tflite`` file, or
        content: the model's bytes.
        num_threads: interpreter threads [default: every CPU this process may use].
    """
    tf = import_tf()
    threads = int(num_threads or cpu_count())
    with _quiet_stderr_fd(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"(?s).*tf\.lite\.Interpreter is deprecated")
        try:
            if content is not None:
                interpreter = tf.lite.Interpreter(model_content=content, num_threads=threads)
            else:
                interpreter = tf.lite.Interpreter(model_path=str(model_path), num_threads=threads)
            interpreter.allocate_tensors()  # applies the delegate (and prints its notice) now
        except (ValueError, RuntimeError) as exc:
            where = model_path if model_path is not None else "the converted model"
            raise ModelError(f"{where}: cannot load the TFLite model ({first_line(exc)})") from None
    return interpreter


class Runner:
    """Feeds packed batches to an interpreter, resizing its inputs when the shape changes.

    Args:
        interpreter: from :func:`make_interpreter`.
        where: the model's name in error messages.
    """

    def __init__(self, interpreter, where):
        self.interpreter = interpreter
        details = interpreter.get_input_details()
        self.inputs = {}
        for name in INPUT_NAMES:
            found = [d["index"] for d in details if d["name"] == name or d["name"].endswith(f"_{name}:0")]
            if len(found) != 1:
                raise ModelError(f"{where}: the TFLite model has no '{name}' input")
            self.inputs[name] = found[0]
        outputs = interpreter.get_output_details()
        if len(outputs) != 1:
            raise ModelError(f"{where}: expected one TFLite output, found {len(outputs)}")
        self.output = outputs[0]["index"]
        self.shape: tuple | None = None
        self.where = where

    def __call__(self, packed: Packed) -> np.ndarray:
        """The model's one output for a packed batch."""
        it = self.interpreter
        shape = tuple(packed.token_ids.shape)
        if shape != self.shape:
            for index in self.inputs.values():
                it.resize_tensor_input(index, list(shape), strict=False)
            it.allocate_tensors()
            self.shape = shape
        for name, index in self.inputs.items():
            it.set_tensor(index, np.ascontiguousarray(packed[name], dtype=np.int32))
        try:
            it.invoke()
        except RuntimeError as exc:  # a kernel's check failed: one line, not a traceback
            raise ModelError(
                f"{self.where}: the TFLite model failed on a batch of shape {shape} ({first_line(exc)})"
            ) from None
        return it.get_tensor(self.output).copy()


class LitePredictor(BasePredictor):
    """Runs a TFLite export (``albert export --format tflite``) with the SavedModel predictor's outputs.

    Args:
        model_dir: a TFLite model directory (``model.tflite`` + ``assets/``).
        batch_size: texts per batch.
        num_threads: interpreter threads [default: every CPU this process may use].

    Example:
        >>> LitePredictor("news-lite").predict(["A late goal"])["label"]  # doctest: +SKIP
        array([b'sport'], dtype=object)
    """

    def __init__(self, model_dir, batch_size: int = 32, num_threads: int | None = None):
        super().__init__(model_dir, batch_size)
        tflite = self.path / TFLITE_FILE
        if not tflite.is_file():
            raise ModelError(f"{self.path}: no {TFLITE_FILE} (not a TFLite export)")
        self.packer = Packer(self.path, self.meta)
        self.interpreter = make_interpreter(tflite, num_threads=num_threads)
        self._run_packed = Runner(self.interpreter, tflite)

    def _run_batch(self, texts: list[str], pairs: list[str] | None) -> Outputs:
        packed = self.packer.pack(self.packer.encode(texts, pairs))
        return serving_outputs(self.meta, self._run_packed(packed))
