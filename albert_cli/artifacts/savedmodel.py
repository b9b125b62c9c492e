"""Write a model directory: a SavedModel serving raw strings, plus its assets.

``serving_default`` takes ``text`` (and ``text_pair`` for pair models), a
``tf.string`` tensor of shape ``[None]``, tokenizes inside the graph with the
model's own SentencePiece model and normalization, and returns

* classification: ``label`` (string), ``score`` (its probability) and
  ``probabilities`` ``[None, num_labels]``; multi-label adds ``predicted``
  (0/1 per label after the tuned thresholds) and ``label`` joins the predicted
  labels with ``|``;
* regression: ``value``.

A second signature, ``classify_ids``, takes already tokenized
``token_ids``/``segment_ids``/``padding_mask`` and returns the same outputs (``[B, W, L]`` windows for a
windowed model, whose ``serving_default`` cuts each text into windows in its graph: ``albert_cli.text.tf_windows``).
The graph computes the rules of ``albert_cli.inference.base.serving_outputs`` (the reference the TFLite
predictor uses; tests check that both agree): a SavedModel must serve on its own, without albert-cli.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from albert_cli._tf import import_tf
from albert_cli.artifacts.modeldir import ASSETS, META_FILE, ModelMeta, atomic_write_text
from albert_cli.inference.base import sequence_length
from albert_cli.text.tokenizers import make_in_graph_tokenizer
from albert_cli.text.windows import WindowSpec
from albert_cli.weights.hf import save_hf_dir

SAVED_MODEL_SKIP = ("logs", "checkpoints")  # training leftovers, not part of a deployable model


def _graph_outputs(tf, logits, task: str, labels, thresholds) -> dict:
    """``albert_cli.inference.base.serving_outputs`` in TensorFlow: the signatures' outputs from logits."""
    logits = tf.cast(logits, tf.float32)
    if task == "regression":
        return {"value": tf.squeeze(logits, -1)}
    if task == "single_label":
        probs = tf.nn.softmax(logits, -1)
        best = tf.argmax(probs, -1, output_type=tf.int32)
        return {"label": tf.gather(labels, best), "score": tf.reduce_max(probs, -1), "probabilities": probs}
    probs = tf.sigmoid(logits)
    predicted = tf.cast(probs >= thresholds[None, :], tf.int32)
    names = tf.where(predicted > 0, labels[None, :], tf.constant(""))
    joined = tf.strings.reduce_join(names, axis=-1, separator="|")
    joined = tf.strings.regex_replace(joined, r"\|+", "|")
    joined = tf.strings.regex_replace(joined, r"^\||\|$", "")
    return {"label": joined, "score": tf.reduce_max(probs, -1), "probabilities": probs, "predicted": predicted}


def _serve_function(tf, module, pair: bool):
    """The ``serving_default`` function: raw strings (and pairs) -> outputs, tokenized in the graph."""
    if pair:

        @tf.function(
            input_signature=[tf.TensorSpec([None], tf.string, name="text"), tf.TensorSpec([None], tf.string, name="text_pair")]
        )
        def serve(text, text_pair):
            return module._outputs(module.tokenizer(text, text_pair))

        return serve

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve(text):
        return module._outputs(module.tokenizer(text))

    return serve


def build_serving_module(model, tokenizer, meta: ModelMeta):
    """A ``tf.Module`` with the ``serve`` (raw strings) and ``classify_ids`` (token ids) functions.

    Args:
        model: the Keras classifier (inputs dict -> logits).
        tokenizer: its Python tokenizer; the module gets the in-graph tokenizer with the same ids.
        meta: the model directory's metadata (task, labels, thresholds, sequence length, pair).
    """
    tf = import_tf()
    # The same ids as `tokenizer` (SentencePiece or WordPiece), inside the graph.
    windows = WindowSpec.from_dict(meta.windows)  # [B, W, L]: each text's windows (albert_cli.text.windows)
    tf_tok = make_in_graph_tokenizer(tokenizer, sequence_length(meta), signatures=False, windows=windows)
    task, labels, thresholds = meta.task, list(meta.labels), list(meta.thresholds or [])
    rank = 3 if windows is not None else 2
    ids_spec = [tf.TensorSpec([None] * rank, tf.int32, name=name) for name in ("token_ids", "segment_ids", "padding_mask")]

    class AlbertServing(tf.Module):
        def __init__(self):
            super().__init__(name="albert_serving")
            self.model = model
            self.tokenizer = tf_tok
            self.labels = tf.constant(labels if labels else [""], tf.string)
            self.thresholds = tf.constant(thresholds if thresholds else [0.5], tf.float32)

        def _outputs(self, inputs):
            return _graph_outputs(tf, self.model(inputs, training=False), task, self.labels, self.thresholds)

        @tf.function(input_signature=ids_spec)
        def classify_ids(self, token_ids, segment_ids, padding_mask):
            return self._outputs({"token_ids": token_ids, "segment_ids": segment_ids, "padding_mask": padding_mask})

    module = AlbertServing()
    module.serve = _serve_function(tf, module, meta.pair)
    return module


def export_model_dir(directory: Path, model, config, tokenizer, meta: ModelMeta) -> None:
    """Write the SavedModel and the assets into `directory` (a staging directory).

    Args:
        directory: where to write (``saved_model.pb``, ``variables/``, ``assets/``).
        model: the trained Keras classifier.
        config: its ``AlbertConfig`` (for the Hugging Face ``config.json`` in ``assets/``).
        tokenizer: its Python tokenizer.
        meta: the metadata written to ``assets/albert_cli.json``.
    """
    tf = import_tf()
    directory = Path(directory)
    module = build_serving_module(model, tokenizer, meta)
    tf.saved_model.save(
        module,
        str(directory),
        signatures={"serving_default": module.serve, "classify_ids": module.classify_ids},
    )
    assets = directory / ASSETS
    assets.mkdir(exist_ok=True)
    extra = {}
    if meta.labels:
        extra = {"id2label": dict(enumerate(meta.labels)), "label2id": {l: i for i, l in enumerate(meta.labels)}}
    save_hf_dir(model, assets, config, extra_config=extra)
    atomic_write_text(assets / META_FILE, meta.to_json())


def copy_saved_model(src: Path, dest: Path) -> int:
    """Copy a model directory without its training leftovers (``SAVED_MODEL_SKIP``); returns the bytes of
    ``variables/``."""
    for entry in sorted(Path(src).iterdir()):
        if entry.name in SAVED_MODEL_SKIP:
            continue
        if entry.is_dir():
            shutil.copytree(entry, dest / entry.name)
        else:
            shutil.copy2(entry, dest / entry.name)
    return sum(p.stat().st_size for p in (dest / "variables").rglob("*") if p.is_file())
