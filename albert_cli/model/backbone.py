"""ALBERT encoder as a backend-agnostic Keras 3 functional model.

Only `keras`, `keras.layers` and `keras.ops` are used here, so the backbone
runs on the TensorFlow, JAX and (for inference) NumPy backends.

Variable paths (`variable.path`) are stable and serve as the canonical weight
names used by the checkpoint converters in `albert_cli.weights`, e.g.
`token_embedding/embeddings`, `group_0_inner_0/query/kernel`,
`pooled_dense/bias`. Dense kernels are stored Keras-style as [in, out].
"""

from __future__ import annotations

import math

import keras
from keras import layers, ops

from albert_cli.model.config import TANH_GELUS, AlbertConfig

INPUT_NAMES = ("token_ids", "segment_ids", "padding_mask")

# Added to attention scores of padded keys (the value used by Google's ALBERT).
MASK_ADDER = -10000.0


def get_activation(name: str):
    """Activation function for a config `hidden_act` name."""
    if name in TANH_GELUS:
        return lambda x: ops.gelu(x, approximate=True)
    if name == "gelu_exact":
        return lambda x: ops.gelu(x, approximate=False)
    if name == "relu":
        return ops.relu
    raise ValueError(f"unknown activation {name!r}")


def _dense(layer: layers.Dense, x):
    """`layer`'s affine map on a 2-D `x`, written out: `ops.add(ops.matmul(x, kernel), bias)`.

    The same math as calling the layer, but on TensorFlow with oneDNN this graph is
    MatMul + BiasAdd (`ops.add` of a vector is a BiasAdd), which the grappler remapper fuses
    into one matmul primitive together with a following GELU or residual add; through
    `Dense.__call__` on 3-D inputs (a tensordot between reshapes) neither fusion happens (timings: see
    bench/README.md).
    """
    return ops.add(ops.matmul(x, ops.cast(layer.kernel, x.dtype)), ops.cast(layer.bias, x.dtype))


def _init(config: AlbertConfig):
    return keras.initializers.TruncatedNormal(stddev=config.initializer_range)


@keras.saving.register_keras_serializable(package="albert_cli")
class PositionEmbedding(layers.Layer):
    """Learned absolute position table [max_positions, dim]; returns rows 0..seq-1."""

    def __init__(self, max_positions: int, dim: int, initializer_range: float = 0.02, **kwargs):
        super().__init__(**kwargs)
        self.max_positions = max_positions
        self.dim = dim
        self.initializer_range = initializer_range

    def build(self, input_shape):
        self.embeddings = self.add_weight(
            name="embeddings",
            shape=(self.max_positions, self.dim),
            initializer=keras.initializers.TruncatedNormal(stddev=self.initializer_range),
        )

    def call(self, inputs):
        """`inputs` [B, S, ...] -> position embeddings [1, S, dim]."""
        seq_len = ops.shape(inputs)[1]
        return ops.expand_dims(self.embeddings[:seq_len], 0)

    def compute_output_shape(self, input_shape):
        return (1, input_shape[1], self.dim)

    def get_config(self):
        return {**super().get_config(), "max_positions": self.max_positions, "dim": self.dim,
                "initializer_range": self.initializer_range}


@keras.saving.register_keras_serializable(package="albert_cli")
class AlbertTransformerBlock(layers.Layer):
    """One post-LN ALBERT block (shared by every layer of its group).

    attention -> dense -> dropout -> add & LayerNorm, then
    ffn(intermediate, act) -> ffn_output -> dropout -> add & LayerNorm.
    """

    def __init__(self, config: dict, **kwargs):
        super().__init__(**kwargs)
        self.config = dict(config)
        cfg = AlbertConfig.from_dict(self.config)
        h, eps = cfg.hidden_size, cfg.layer_norm_eps
        self.num_heads = cfg.num_attention_heads
        self.head_size = h // self.num_heads
        self.hidden_size = h
        self.attention_dropout_rate = cfg.attention_probs_dropout_prob
        self.activation = get_activation(cfg.hidden_act)
        dense = dict(kernel_initializer=_init(cfg), dtype=self.dtype_policy)
        self.query = layers.Dense(h, name="query", **dense)
        self.key = layers.Dense(h, name="key", **dense)
        self.value = layers.Dense(h, name="value", **dense)
        self.attention_probs_dropout = layers.Dropout(cfg.attention_probs_dropout_prob, dtype=self.dtype_policy,
                                                      name="attention_probs_dropout")
        self.attention_output = layers.Dense(h, name="attention_output", **dense)
        self.attention_dropout = layers.Dropout(cfg.hidden_dropout_prob, dtype=self.dtype_policy,
                                                name="attention_dropout")
        self.attention_layer_norm = layers.LayerNormalization(epsilon=eps, dtype=self.dtype_policy,
                                                              name="attention_layer_norm")
        self.ffn = layers.Dense(cfg.intermediate_size, name="ffn", **dense)
        self.ffn_output = layers.Dense(h, name="ffn_output", **dense)
        self.ffn_dropout = layers.Dropout(cfg.hidden_dropout_prob, dtype=self.dtype_policy, name="ffn_dropout")
        self.output_layer_norm = layers.LayerNormalization(epsilon=eps, dtype=self.dtype_policy,
                                                           name="output_layer_norm")

    def build(self, input_shape):
        hidden = tuple(input_shape)
        for layer in (self.query, self.key, self.value, self.attention_output, self.ffn):
            layer.build(hidden)
        self.ffn_output.build(hidden[:-1] + (self.ffn.units,))
        self.attention_layer_norm.build(hidden)
        self.output_layer_norm.build(hidden)

    def _attention(self, x, padding_mask, training):
        """`x` [B, S, H] -> attention context [B, S, H]."""
        shape = ops.shape(x)
        flat = ops.reshape(x, (-1, self.hidden_size))
        return ops.reshape(self._attention_flat(flat, shape[0], shape[1], padding_mask, training), shape)

    def _attention_flat(self, x, batch, seq, padding_mask, training):
        """`x` [B*S, H] -> attention context [B*S, H]."""
        heads = (batch, seq, self.num_heads, self.head_size)
        q = ops.reshape(_dense(self.query, x), heads)
        k = ops.reshape(_dense(self.key, x), heads)
        v = ops.reshape(_dense(self.value, x), heads)
        # [B, 1, 1, S] additive mask: 0 for real tokens, MASK_ADDER for padding.
        adder = (1.0 - ops.cast(padding_mask, q.dtype)) * MASK_ADDER
        adder = adder[:, None, None, :]
        # Batched matmuls on [B, N, S, D] x [B, N, D, S], the scale applied to q (a smaller tensor
        # than the scores): TensorFlow's oneDNN rewrite fuses the mask add into the first matmul.
        # Faster than `ops.dot_product_attention`, which on TensorFlow is two einsums plus a scale multiply and
        # a bias add over the [B, N, S, S] scores (see bench/README.md).
        q = ops.transpose(q * (1.0 / math.sqrt(self.head_size)), (0, 2, 1, 3))
        k = ops.transpose(k, (0, 2, 3, 1))
        v = ops.transpose(v, (0, 2, 1, 3))
        scores = ops.matmul(q, k) + adder
        probs = ops.cast(ops.softmax(ops.cast(scores, "float32"), axis=-1), v.dtype)  # softmax in float32
        if training and self.attention_dropout_rate > 0:
            probs = self.attention_probs_dropout(probs, training=training)
        context = ops.transpose(ops.matmul(probs, v), (0, 2, 1, 3))
        return ops.reshape(context, (-1, self.hidden_size))

    def call(self, x, padding_mask, training=None):
        # Computed on [B*S, H] with 2-D matmuls (see `_dense`); the output is reshaped back to [B, S, H].
        shape = ops.shape(x)
        h = ops.reshape(x, (-1, self.hidden_size))
        attention = _dense(self.attention_output, self._attention_flat(h, shape[0], shape[1], padding_mask, training))
        attention = self.attention_dropout(attention, training=training)
        h = self.attention_layer_norm(h + attention)
        ffn = _dense(self.ffn_output, self.activation(_dense(self.ffn, h)))
        ffn = self.ffn_dropout(ffn, training=training)
        return ops.reshape(self.output_layer_norm(h + ffn), shape)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "config": self.config}


@keras.saving.register_keras_serializable(package="albert_cli")
class AlbertBackbone(keras.Model):
    """ALBERT encoder.

    Inputs (dict, int32, [batch, seq]): `token_ids`, `segment_ids`,
    `padding_mask` (1 = real token, 0 = padding).
    Outputs (dict): `sequence_output` [batch, seq, hidden], `pooled_output`
    [batch, hidden] (tanh dense on position 0).
    """

    def __init__(self, config: AlbertConfig, dtype=None, **kwargs):
        if isinstance(config, dict):
            config = AlbertConfig.from_dict(config)
        config.validate()
        cfg = config
        init = _init(cfg)

        token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        segment_ids = keras.Input(shape=(None,), dtype="int32", name="segment_ids")
        padding_mask = keras.Input(shape=(None,), dtype="int32", name="padding_mask")

        self.token_embedding = layers.Embedding(cfg.vocab_size, cfg.embedding_size, embeddings_initializer=init,
                                                dtype=dtype, name="token_embedding")
        position_embedding = PositionEmbedding(cfg.max_position_embeddings, cfg.embedding_size,
                                               cfg.initializer_range, dtype=dtype, name="position_embedding")
        segment_embedding = layers.Embedding(cfg.type_vocab_size, cfg.embedding_size, embeddings_initializer=init,
                                             dtype=dtype, name="segment_embedding")
        tokens = self.token_embedding(token_ids)
        x = layers.Add(dtype=dtype, name="embeddings_add")(
            [tokens, position_embedding(tokens), segment_embedding(segment_ids)]
        )
        x = layers.LayerNormalization(epsilon=cfg.layer_norm_eps, dtype=dtype, name="embeddings_layer_norm")(x)
        x = layers.Dropout(cfg.hidden_dropout_prob, dtype=dtype, name="embeddings_dropout")(x)
        x = layers.Dense(cfg.hidden_size, kernel_initializer=init, dtype=dtype, name="embedding_projection")(x)

        block_config = cfg.to_dict()
        self.groups = [
            [AlbertTransformerBlock(block_config, dtype=dtype, name=f"group_{g}_inner_{i}")
             for i in range(cfg.inner_group_num)]
            for g in range(cfg.num_hidden_groups)
        ]
        for layer in range(cfg.num_hidden_layers):
            for block in self.groups[int(layer / cfg.num_hidden_layers * cfg.num_hidden_groups)]:
                x = block(x, padding_mask=padding_mask)
        sequence_output = x
        pooled_output = layers.Dense(cfg.hidden_size, activation="tanh", kernel_initializer=init, dtype=dtype,
                                     name="pooled_dense")(sequence_output[:, 0, :])

        super().__init__(
            inputs={"token_ids": token_ids, "segment_ids": segment_ids, "padding_mask": padding_mask},
            outputs={"sequence_output": sequence_output, "pooled_output": pooled_output},
            **kwargs,
        )
        self.config = cfg

    def call(self, inputs, training=None, mask=None):
        """Run on the three named inputs; other keys of an input dict are ignored.

        (Keras matches dict inputs positionally after flattening, so an extra
        key such as `mask_positions` would otherwise shift the inputs.)
        """
        if isinstance(inputs, dict):
            inputs = {name: inputs[name] for name in INPUT_NAMES}
        return super().call(inputs, training=training, mask=mask)

    def get_config(self):
        return {"config": self.config.to_dict(), "dtype": keras.dtype_policies.serialize(self.dtype_policy),
                "name": self.name, "trainable": self.trainable}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        return cls(AlbertConfig.from_dict(config.pop("config")), **config)
