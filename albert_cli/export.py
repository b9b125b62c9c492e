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
``token_ids``/``segment_ids``/``padding_mask`` and returns the same outputs.
"""

from __future__ import annotations

from pathlib import Path

from albert_cli.modeldir import ASSETS, META_FILE, ModelMeta, atomic_write_text


def build_serving_module(model, tokenizer, meta: ModelMeta):
    from albert_cli._tf import import_tf

    tf = import_tf()
    from albert_cli.text.tokenizers import make_in_graph_tokenizer

    # The same ids as `tokenizer` (SentencePiece or WordPiece), inside the graph.
    tf_tok = make_in_graph_tokenizer(tokenizer, meta.max_seq_length, signatures=False)
    task = meta.task
    labels = list(meta.labels)
    thresholds = list(meta.thresholds or [])

    class AlbertServing(tf.Module):
        def __init__(self):
            super().__init__(name="albert_serving")
            self.model = model
            self.tokenizer = tf_tok
            self.labels = tf.constant(labels if labels else [""], tf.string)
            self.thresholds = tf.constant(thresholds if thresholds else [0.5], tf.float32)

        def _outputs(self, inputs):
            logits = tf.cast(self.model(inputs, training=False), tf.float32)
            if task == "regression":
                return {"value": tf.squeeze(logits, -1)}
            if task == "single_label":
                probs = tf.nn.softmax(logits, -1)
                best = tf.argmax(probs, -1, output_type=tf.int32)
                return {
                    "label": tf.gather(self.labels, best),
                    "score": tf.reduce_max(probs, -1),
                    "probabilities": probs,
                }
            probs = tf.sigmoid(logits)
            predicted = tf.cast(probs >= self.thresholds[None, :], tf.int32)
            names = tf.where(predicted > 0, self.labels[None, :], tf.constant(""))
            joined = tf.strings.reduce_join(names, axis=-1, separator="|")
            joined = tf.strings.regex_replace(joined, r"\|+", "|")
            joined = tf.strings.regex_replace(joined, r"^\||\|$", "")
            return {"label": joined, "score": tf.reduce_max(probs, -1), "probabilities": probs, "predicted": predicted}

        @tf.function(
            input_signature=[
                tf.TensorSpec([None, None], tf.int32, name="token_ids"),
                tf.TensorSpec([None, None], tf.int32, name="segment_ids"),
                tf.TensorSpec([None, None], tf.int32, name="padding_mask"),
            ]
        )
        def classify_ids(self, token_ids, segment_ids, padding_mask):
            return self._outputs({"token_ids": token_ids, "segment_ids": segment_ids, "padding_mask": padding_mask})

    module = AlbertServing()
    if meta.pair:

        @tf.function(
            input_signature=[
                tf.TensorSpec([None], tf.string, name="text"),
                tf.TensorSpec([None], tf.string, name="text_pair"),
            ]
        )
        def serve(text, text_pair):
            return module._outputs(module.tokenizer(text, text_pair))

    else:

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def serve(text):
            return module._outputs(module.tokenizer(text))

    module.serve = serve
    return module


def export_model_dir(directory: Path, model, config, tokenizer, meta: ModelMeta) -> None:
    """Write the SavedModel and the assets into `directory` (a staging directory)."""
    from albert_cli._tf import import_tf
    from albert_cli.weights.hf import save_hf_dir

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
