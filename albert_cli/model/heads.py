"""Task heads on top of `AlbertBackbone` (Keras 3, backend-agnostic).

Canonical variable paths of the heads: `classifier/{kernel,bias}`,
`bow/{unigram,bigram,boundaries}` and `bow_mix/share` (the classifier's optional bag-of-n-grams member),
`mlm_head/dense/{kernel,bias}`, `mlm_head/layer_norm/{gamma,beta}`,
`mlm_head/output_bias`, `sop_head/{kernel,bias}`.
"""

from __future__ import annotations

import keras
from keras import layers, ops

from albert_cli.model.backbone import AlbertBackbone, get_activation
from albert_cli.model.documents import FlattenWindows, WindowPooling, novel_pieces
from albert_cli.model.kinds import POOLINGS, TASKS


def masked_mean(sequence, padding_mask):
    """Mean of `sequence` [B, T, H] over the positions where `padding_mask` [B, T] is 1 (in float32)."""
    sequence = ops.cast(sequence, "float32")
    mask = ops.expand_dims(ops.cast(padding_mask, "float32"), -1)
    return ops.sum(sequence * mask, axis=1) / ops.maximum(ops.sum(mask, axis=1), 1.0)


BOW_BUCKETS = 2**18  # hashed rows of each table of the bag-of-n-grams member (fewer for many labels: bow_buckets_for)
BOW_MAX_WEIGHTS = 2**23  # cap on each table (rows x labels): 32 MB of float32
BOW_SCALE = 1000.0  # output scale of the bag-of-n-grams member (see BagOfNgrams)
DOCUMENT_BOW_SCALE = 100.0  # the same for the unit-length features of a windowed document
BOW_WORD_PIECES = 3  # a word's hash covers its last 3 pieces
_HASH_SPACE = 2**18
_BOW_HASH_MULTIPLIER = 4093  # (h mod 2^18) * 4093 + (id mod 2^18) stays below 2^31: int32 on every backend


def bow_buckets_for(num_labels: int) -> int:
    """Hashed rows for `num_labels` outputs: BOW_BUCKETS, halved until a table holds <= BOW_MAX_WEIGHTS."""
    buckets = BOW_BUCKETS
    while buckets > 1024 and buckets * num_labels > BOW_MAX_WEIGHTS:
        buckets //= 2
    return buckets


def _mix(h, token):
    """Hash `token` (int32, >= 0) into `h` (< 2^18); the result is < 2^18."""
    return ops.mod(h * _BOW_HASH_MULTIPLIER + ops.mod(token, _HASH_SPACE), _HASH_SPACE)


def _shift_right(x, k: int, fill: int):
    """x[:, i - k] at position i (`fill` for the first k positions)."""
    return ops.concatenate([ops.full_like(x[:, :k], fill), x[:, :-k]], axis=1)


def _shift_left(x, fill: int):
    """x[:, i + 1] at position i (`fill` at the last position)."""
    return ops.concatenate([x[:, 1:], ops.full_like(x[:, :1], fill)], axis=1)


def words_from_pieces(token_ids, padding_mask, boundaries, counted=None):
    """Hashed whole words read out of subword `token_ids` [B, T].

    `boundaries` [vocab] holds each piece's STARTS (1) | ENDS (2) bits (`albert_cli.text.words`): a word
    begins at a piece that starts one or follows a piece that ends one (and at the first position). Returns
    `(words, word_mask)`, int32 [B, T]: row b holds the hashes (< 2^18) of its words in order, left-aligned,
    and `word_mask` is 1 on the filled slots. A word's hash covers its last BOW_WORD_PIECES pieces; a one-piece
    word hashes to its id. With `counted` (float [B, T]), a third array: per slot, `counted` at its word's last
    piece (which words a windowed document counts: `albert_cli.model.documents.novel_pieces`).
    """
    token_ids = ops.cast(token_ids, "int32")
    ids = ops.mod(token_ids, _HASH_SPACE)
    mask = ops.cast(padding_mask, "int32")
    flags = ops.cast(ops.take(boundaries, token_ids, axis=0), "int32")
    begins = ops.maximum(ops.mod(flags, 2), _shift_right(ops.floor_divide(flags, 2), 1, 1))
    inside = 1 - begins  # 1 where piece i continues the word of piece i - 1
    # hashed[i]: the hash of the word's pieces up to i (its last BOW_WORD_PIECES); run: pieces i-k+1..i continue.
    hashed, tail, run = ids, ids, inside
    for k in range(1, BOW_WORD_PIECES):
        tail = _mix(_shift_right(tail, 1, 0), ids)  # hash of pieces i-k .. i
        hashed = ops.where(run > 0, tail, hashed)
        run = run * _shift_right(inside, k, 0)
    ends = mask * ops.maximum(_shift_left(begins, 1), 1 - _shift_left(mask, 0))  # last piece of a word
    slot = ops.cumsum(begins * mask, axis=1) - 1  # which word of its row piece i belongs to
    # Move each word's hash from its last piece to its slot: [B, pieces, slots] one-hot, exact in float32 (< 2^24).
    # (expand_dims and squeeze rather than [..., None]: TFLite has no strided slice with an ellipsis)
    moves = ops.one_hot(ops.maximum(slot, 0), ops.shape(ids)[1], dtype="float32")
    moved = ops.transpose(moves * ops.expand_dims(ops.cast(ends, "float32"), -1), (0, 2, 1))
    words = ops.squeeze(ops.matmul(moved, ops.expand_dims(ops.cast(hashed, "float32"), -1)), -1)
    words, word_mask = ops.cast(ops.round(words), "int32"), ops.cast(ops.sum(moved, axis=2), "int32")
    if counted is None:
        return words, word_mask
    return words, word_mask, ops.squeeze(ops.matmul(moved, ops.expand_dims(ops.cast(counted, "float32"), -1)), -1)


@keras.saving.register_keras_serializable(package="albert_cli")
class BagOfNgrams(layers.Layer):
    """A linear bag-of-words-and-bigrams classifier over token ids (fastText without the hidden layer).

    Call with `(token_ids [B, T], padding_mask [B, T])` -> logits [B, num_outputs]. The pieces are first
    joined into whole words (`words_from_pieces`, with the non-trainable `boundaries` table of the tokenizer,
    set by `set_boundaries`): words and pairs of adjacent words are hashed into `buckets` rows of `unigram` and
    `bigram` ([buckets, num_outputs] each, at most 2^18); the output is `scale` times the mean of the rows of
    the row's words and pairs. Both tables start at zero. Under Adam every weight moves by about the learning
    rate per step whatever its gradient's size, so without `scale` a linear model at ALBERT's 5e-4 would hardly
    leave zero in a run; with 1000 it moves its logits at fastText-like rates. Whole words rather than pieces:
    see bench/README.md for how the two compare.

    Args:
        vocab_size: rows of the `boundaries` table (the tokenizer's vocabulary).
        num_outputs: logits per example.
        buckets: hashed rows of each table (`bow_buckets_for` picks it from the number of labels).
        scale: output scale (see above).
        window_overlap: None for ``[B, T]`` rows; for ``[B, W, L]`` windows (`albert_cli.model.documents`), the
            pieces consecutive windows share: every piece of a document is then counted once, and a long
            document's words and pairs weigh log(1 + count), scaled to unit length (TF-IDF's sublinear term
            weights) instead of their mean, with `scale` DOCUMENT_BOW_SCALE (bench/README.md, long documents).
    """

    def __init__(self, vocab_size: int, num_outputs: int, buckets: int = BOW_BUCKETS, scale: float = BOW_SCALE,
                 window_overlap: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if not 1 <= buckets <= _HASH_SPACE:
            raise ValueError(f"buckets must be between 1 and 2^18, got {buckets}")
        self.vocab_size = vocab_size
        self.num_outputs = num_outputs
        self.buckets = buckets
        self.scale = scale
        self.window_overlap = window_overlap

    def build(self, token_ids_shape, padding_mask_shape=None):
        self.unigram = self.add_weight(name="unigram", shape=(self.buckets, self.num_outputs),
                                       initializer="zeros", dtype="float32")
        self.bigram = self.add_weight(name="bigram", shape=(self.buckets, self.num_outputs),
                                      initializer="zeros", dtype="float32")
        # Until set_boundaries: every piece is a word of its own.
        self.boundaries = self.add_weight(name="boundaries", shape=(self.vocab_size,), initializer="ones",
                                          dtype="float32", trainable=False)

    def set_boundaries(self, table) -> None:
        """Install the tokenizer's word-boundary table (`albert_cli.text.words.word_boundaries`)."""
        if tuple(table.shape) != (self.vocab_size,):
            raise ValueError(f"boundaries table has shape {tuple(table.shape)}, expected ({self.vocab_size},)")
        self.boundaries.assign(table)

    def _sums(self, token_ids, padding_mask, counted):
        """Per row: the summed table rows of its counted words and pairs [N, outputs], and their number [N, 1]."""
        words, word_mask, counted = words_from_pieces(token_ids, padding_mask, self.boundaries, counted)
        mask = ops.cast(word_mask, "float32")
        unigram_mask = mask * counted
        pair_mask = mask * _shift_left(mask, 0) * _shift_left(counted, 0)  # a pair counts where its second word does
        pairs = ops.mod(_mix(words, _shift_left(words, 0)), self.buckets)
        total = ops.sum(ops.take(self.unigram, ops.mod(words, self.buckets), axis=0) * unigram_mask[:, :, None], axis=1)
        total = total + ops.sum(ops.take(self.bigram, pairs, axis=0) * pair_mask[:, :, None], axis=1)  # no einsum
        count = ops.sum(unigram_mask, axis=1, keepdims=True) + ops.sum(pair_mask, axis=1, keepdims=True)  # (TFLite)
        return total, count

    def call(self, token_ids, padding_mask):
        if self.window_overlap is None:
            total, count = self._sums(token_ids, padding_mask, ops.cast(padding_mask, "float32"))
            return self.scale * total / ops.maximum(count, 1.0)
        return self._document(token_ids, padding_mask)

    def _document(self, token_ids, padding_mask):
        """A windowed document [B, W, L]: each piece counted once (`novel_pieces`), then TF-IDF's sublinear term
        weights: log(1 + count) of every hashed word and pair of the document, scaled to unit length."""
        shape = ops.shape(token_ids)
        rows = [ops.reshape(x, (-1, shape[2])) for x in (token_ids, padding_mask,
                                                         novel_pieces(padding_mask, self.window_overlap))]
        words, word_mask, counted = words_from_pieces(rows[0], rows[1], self.boundaries, rows[2])
        mask = ops.cast(word_mask, "float32")
        weights = ops.concatenate([mask * counted, mask * _shift_left(mask, 0) * _shift_left(counted, 0)], axis=1)
        pairs = ops.mod(_mix(words, _shift_left(words, 0)), self.buckets)
        # Row d * 2 * buckets + k of one flat histogram: document d's unigram bucket k, then its bigram buckets.
        document = ops.expand_dims(ops.floor_divide(ops.arange(ops.shape(words)[0]), shape[1]), 1)
        slots = document * (2 * self.buckets) + ops.concatenate([ops.mod(words, self.buckets),
                                                                 self.buckets + pairs], axis=1)
        counts = ops.segment_sum(ops.reshape(weights, (-1,)), ops.reshape(slots, (-1,)),
                                 num_segments=shape[0] * 2 * self.buckets)
        features = ops.log1p(ops.reshape(counts, (shape[0], 2 * self.buckets)))
        features = features / ops.maximum(ops.sqrt(ops.sum(features * features, axis=1, keepdims=True)), 1e-6)
        return self.scale * ops.matmul(features, ops.concatenate([self.unigram, self.bigram], axis=0))

    def compute_output_shape(self, token_ids_shape, padding_mask_shape=None):
        return (token_ids_shape[0], self.num_outputs)

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size, "num_outputs": self.num_outputs,
                "buckets": self.buckets, "scale": self.scale, "window_overlap": self.window_overlap}


@keras.saving.register_keras_serializable(package="albert_cli")
class MixLogits(layers.Layer):
    """`share * first + (1 - share) * second`: how the classifier combines ALBERT's logits with the bag's.

    `share` (non-trainable, shape [1]) is 0.5 until a trainer picks it on development data
    (`finetune --dev` does: see `albert_cli.training.finetune.selection`).
    """

    def build(self, first_shape, second_shape=None):
        self.share = self.add_weight(name="share", shape=(1,), initializer=keras.initializers.Constant(0.5),
                                     dtype="float32", trainable=False)

    def call(self, first, second):
        return self.share * first + (1.0 - self.share) * second

    def compute_output_shape(self, first_shape, second_shape=None):
        return first_shape


def logits_to_probabilities(logits, task: str):
    """Softmax (single_label), sigmoid (multi_label) or identity (regression)."""
    if task == "single_label":
        return ops.softmax(logits, axis=-1)
    if task == "multi_label":
        return ops.sigmoid(logits)
    if task == "regression":
        return logits
    raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")


def _deserialize_backbone(backbone):
    if isinstance(backbone, dict):
        return keras.saving.deserialize_keras_object(backbone)
    return backbone


def _encode(backbone: AlbertBackbone, pooling: str, window_pooling: str | None):
    """The classifier's inputs and its pooled vector [B, H]: of each text, or (`window_pooling`) of each
    document's windows (inputs [B, W, L], see `albert_cli.model.documents`)."""
    if window_pooling is None:
        inputs = dict(backbone.input)
        rows = inputs
    else:
        inputs = {k: keras.Input(shape=(None, None), dtype="int32", name=k) for k in backbone.input}
        rows = {k: FlattenWindows(name=f"flatten_{k}")(v) for k, v in inputs.items()}
    outputs = backbone(rows)
    if pooling == "mean":
        backbone.get_layer("pooled_dense").trainable = False  # no gradient reaches it
        pooled = masked_mean(outputs["sequence_output"], rows["padding_mask"])
    else:
        pooled = outputs["pooled_output"]
    if window_pooling is None:
        return inputs, pooled
    return inputs, WindowPooling(window_pooling, name="window_pooling")(pooled, inputs["padding_mask"])


@keras.saving.register_keras_serializable(package="albert_cli")
class AlbertClassifier(keras.Model):
    """Backbone -> pooling -> dropout -> dense(num_labels); outputs logits.

    `pooling`: "pooler" (the published head: the backbone's `pooled_output`, a tanh
    dense on the [CLS] vector, as HF `AlbertForSequenceClassification`) or "mean"
    (the mean of `sequence_output` over the real tokens; the tanh pooler is then
    unused and frozen). `task` decides how logits become probabilities
    (`logits_to_probabilities`) and which loss the trainer uses; it does not
    change the graph.

    `bow_buckets` > 0 adds a second member, a `BagOfNgrams` linear model (layer
    `bow`) on the token ids: the output is then a weighted mean of the two
    members' logits (layer `bow_mix`, `MixLogits`: 0.5 each until fine-tuning
    picks ALBERT's share on dev data), and `members` (a model with the same inputs) returns both, so that a
    trainer can give each its own loss. 0: ALBERT alone, as published.

    `window_pooling` ("mean" or "max") makes it a document classifier: the inputs are ``[B, W, L]`` windows
    (`albert_cli.text.windows`), each encoded and pooled as above, then pooled over the document's windows
    before the dropout and the dense layer; the bag counts each piece of the document once (`window_overlap`:
    the pieces consecutive windows share). None: one ``[B, T]`` sequence per text.
    """

    def __init__(self, backbone: AlbertBackbone, num_labels: int, task: str = "single_label",
                 dropout: float = 0.1, pooling: str = "pooler", bow_buckets: int = 0, window_pooling: str | None = None,
                 window_overlap: int = 0, **kwargs):
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r}; expected one of {POOLINGS}")
        if num_labels < 1:
            raise ValueError(f"num_labels must be >= 1, got {num_labels}")
        backbone = _deserialize_backbone(backbone)
        inputs, pooled = _encode(backbone, pooling, window_pooling)
        x = layers.Dropout(dropout, name="classifier_dropout")(pooled)
        init = keras.initializers.TruncatedNormal(stddev=backbone.config.initializer_range)
        logits = layers.Dense(num_labels, kernel_initializer=init, name="classifier")(x)
        members = None
        if bow_buckets:
            bow = BagOfNgrams(backbone.config.vocab_size, num_labels, bow_buckets,
                              DOCUMENT_BOW_SCALE if window_pooling else BOW_SCALE, name="bow", dtype="float32",
                              window_overlap=window_overlap if window_pooling else None)
            members = [ops.cast(logits, "float32"), bow(inputs["token_ids"], inputs["padding_mask"])]
            logits = MixLogits(name="bow_mix", dtype="float32")(members[0], members[1])
        super().__init__(inputs=inputs, outputs=logits, **kwargs)
        # Both members' logits for training (None without the bag of n-grams); shares every variable.
        self.members = keras.Model(inputs=inputs, outputs=members, name="members") if members else None
        self.backbone = backbone
        self.num_labels = num_labels
        self.task = task
        self.dropout = dropout
        self.pooling = pooling
        self.bow_buckets = bow_buckets
        self.window_pooling = window_pooling
        self.window_overlap = window_overlap

    def probabilities(self, logits):
        """Map this model's logits to probabilities (or values for regression)."""
        return logits_to_probabilities(logits, self.task)

    def get_config(self):
        return {"backbone": keras.saving.serialize_keras_object(self.backbone), "num_labels": self.num_labels,
                "task": self.task, "dropout": self.dropout, "pooling": self.pooling,
                "bow_buckets": self.bow_buckets, "window_pooling": self.window_pooling,
                "window_overlap": self.window_overlap, "name": self.name,
                "trainable": self.trainable}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@keras.saving.register_keras_serializable(package="albert_cli")
class AlbertMaskedLMHead(layers.Layer):
    """MLM head: gather `mask_positions`, dense H->E + activation, LayerNorm,
    then logits against the (tied) word-embedding matrix plus an output bias.

    Call with `(sequence_output [B,S,H], mask_positions [B,P])` -> `[B,P,V]`.
    The decoder matrix is the backbone's `token_embedding` layer passed in.
    """

    def __init__(self, token_embedding: layers.Embedding, hidden_act: str = "gelu",
                 layer_norm_eps: float = 1e-12, initializer_range: float = 0.02, **kwargs):
        super().__init__(**kwargs)
        self.token_embedding = token_embedding
        self.hidden_act = hidden_act
        self.layer_norm_eps = layer_norm_eps
        self.initializer_range = initializer_range
        self.activation = get_activation(hidden_act)
        self.dense = layers.Dense(token_embedding.output_dim, name="dense", dtype=self.dtype_policy,
                                  kernel_initializer=keras.initializers.TruncatedNormal(stddev=initializer_range))
        self.layer_norm = layers.LayerNormalization(epsilon=layer_norm_eps, name="layer_norm",
                                                    dtype=self.dtype_policy)

    def build(self, sequence_output_shape, mask_positions_shape=None):
        self.dense.build(tuple(sequence_output_shape))
        self.layer_norm.build(tuple(sequence_output_shape[:-1]) + (self.token_embedding.output_dim,))
        self.output_bias = self.add_weight(name="output_bias", shape=(self.token_embedding.input_dim,),
                                           initializer="zeros")

    def call(self, sequence_output, mask_positions):
        positions = ops.cast(mask_positions, "int32")[:, :, None]
        gathered = ops.take_along_axis(sequence_output, positions, axis=1)
        x = self.layer_norm(self.activation(self.dense(gathered)))
        logits = ops.matmul(x, ops.transpose(ops.cast(self.token_embedding.embeddings, x.dtype)))
        return logits + ops.cast(self.output_bias, x.dtype)

    def compute_output_shape(self, sequence_output_shape, mask_positions_shape=None):
        return tuple(mask_positions_shape) + (self.token_embedding.input_dim,)

    def get_config(self):
        # The tied embedding layer is not serialised: AlbertPretrainer rebuilds it.
        return {**super().get_config(), "hidden_act": self.hidden_act, "layer_norm_eps": self.layer_norm_eps,
                "initializer_range": self.initializer_range}


@keras.saving.register_keras_serializable(package="albert_cli")
class AlbertSOPHead(layers.Layer):
    """Sentence-order prediction: dense(2) on `pooled_output` -> logits [B, 2]."""

    def __init__(self, initializer_range: float = 0.02, **kwargs):
        super().__init__(**kwargs)
        self.initializer_range = initializer_range

    def build(self, input_shape):
        init = keras.initializers.TruncatedNormal(stddev=self.initializer_range)
        self.kernel = self.add_weight(name="kernel", shape=(input_shape[-1], 2), initializer=init)
        self.bias = self.add_weight(name="bias", shape=(2,), initializer="zeros")

    def call(self, pooled_output):
        return ops.matmul(pooled_output, self.kernel) + self.bias

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (2,)

    def get_config(self):
        return {**super().get_config(), "initializer_range": self.initializer_range}


@keras.saving.register_keras_serializable(package="albert_cli")
class AlbertPretrainer(keras.Model):
    """Backbone + MLM + SOP heads.

    Inputs: the backbone inputs plus `mask_positions` (int32 [B, P]).
    Outputs: `mlm_logits` [B, P, V], `sop_logits` [B, 2].
    """

    def __init__(self, backbone: AlbertBackbone, **kwargs):
        backbone = _deserialize_backbone(backbone)
        cfg = backbone.config
        inputs = dict(backbone.input)
        inputs["mask_positions"] = keras.Input(shape=(None,), dtype="int32", name="mask_positions")
        outputs = backbone({k: inputs[k] for k in ("token_ids", "segment_ids", "padding_mask")})
        mlm_head = AlbertMaskedLMHead(backbone.token_embedding, cfg.hidden_act, cfg.layer_norm_eps,
                                      cfg.initializer_range, name="mlm_head")
        sop_head = AlbertSOPHead(cfg.initializer_range, name="sop_head")
        super().__init__(
            inputs=inputs,
            outputs={
                "mlm_logits": mlm_head(outputs["sequence_output"], inputs["mask_positions"]),
                "sop_logits": sop_head(outputs["pooled_output"]),
            },
            **kwargs,
        )
        self.backbone = backbone
        self.mlm_head = mlm_head
        self.sop_head = sop_head

    def get_config(self):
        return {"backbone": keras.saving.serialize_keras_object(self.backbone), "name": self.name,
                "trainable": self.trainable}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
