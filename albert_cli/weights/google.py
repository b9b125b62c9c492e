"""Google TF1 ALBERT checkpoints (`albert_config.json` + `model.ckpt-*`).

Variable names follow google-research/albert `modeling.py` and
`run_pretraining.py`. TensorFlow is imported lazily, only when a checkpoint
is read or written. Optimizer slots (Adam/LAMB `adam_m`, `adam_v`,
`global_step`) and other unknown variables are skipped on load.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from albert_cli._tf import import_tf
from albert_cli.errors import ModelError
from albert_cli.model.config import AlbertConfig
from albert_cli.weights.common import (
    LoadedWeights,
    Row,
    collect_weights,
    expand_table,
    find_tokenizer,
    from_canonical,
    to_canonical,
)

CONFIG_FILE = "albert_config.json"
CHECKPOINT_PREFIX = "model.ckpt"


def _dense(ours: str, theirs: str) -> list[Row]:
    return [(f"{ours}/kernel", f"{theirs}/kernel", False), (f"{ours}/bias", f"{theirs}/bias", False)]


def _norm(ours: str, theirs: str) -> list[Row]:
    return [(f"{ours}/gamma", f"{theirs}/gamma", False), (f"{ours}/beta", f"{theirs}/beta", False)]


_LAYER = "bert/encoder/transformer/group_{g}/inner_group_{i}"
_BLOCK = "group_{g}_inner_{i}"

# The single canonical <-> Google name table. TF kernels are already [in, out].
GOOGLE_TABLE: list[Row] = [
    ("token_embedding/embeddings", "bert/embeddings/word_embeddings", False),
    ("position_embedding/embeddings", "bert/embeddings/position_embeddings", False),
    ("segment_embedding/embeddings", "bert/embeddings/token_type_embeddings", False),
    *_norm("embeddings_layer_norm", "bert/embeddings/LayerNorm"),
    *_dense("embedding_projection", "bert/encoder/embedding_hidden_mapping_in"),
    *_dense(f"{_BLOCK}/query", f"{_LAYER}/attention_1/self/query"),
    *_dense(f"{_BLOCK}/key", f"{_LAYER}/attention_1/self/key"),
    *_dense(f"{_BLOCK}/value", f"{_LAYER}/attention_1/self/value"),
    *_dense(f"{_BLOCK}/attention_output", f"{_LAYER}/attention_1/output/dense"),
    *_norm(f"{_BLOCK}/attention_layer_norm", f"{_LAYER}/LayerNorm"),
    *_dense(f"{_BLOCK}/ffn", f"{_LAYER}/ffn_1/intermediate/dense"),
    *_dense(f"{_BLOCK}/ffn_output", f"{_LAYER}/ffn_1/intermediate/output/dense"),
    *_norm(f"{_BLOCK}/output_layer_norm", f"{_LAYER}/LayerNorm_1"),
    *_dense("pooled_dense", "bert/pooler/dense"),
    *_dense("mlm_head/dense", "cls/predictions/transform/dense"),
    *_norm("mlm_head/layer_norm", "cls/predictions/transform/LayerNorm"),
    ("mlm_head/output_bias", "cls/predictions/output_bias", False),
    ("sop_head/kernel", "cls/seq_relationship/output_weights", True),  # stored [2, H]
    ("sop_head/bias", "cls/seq_relationship/output_bias", False),
    ("classifier/kernel", "output_weights", True),  # run_classifier.py: [num_labels, H]
    ("classifier/bias", "output_bias", False),
]


def _checkpoint_prefix(path: Path) -> Path:
    """The newest `model.ckpt*` prefix in `path` (by the `checkpoint` file or step number)."""
    state = path / "checkpoint"
    if state.is_file():
        latest = import_tf().train.latest_checkpoint(str(path))
        if latest and Path(latest + ".index").is_file():
            return Path(latest)
    indexes = sorted(path.glob(f"{CHECKPOINT_PREFIX}*.index"))
    if not indexes:
        raise ModelError(f"{path}: no {CHECKPOINT_PREFIX}*.index checkpoint found")

    def step(index: Path) -> int:
        match = re.search(r"-(\d+)\.index$", index.name)
        return int(match.group(1)) if match else -1

    return max(indexes, key=step).with_suffix("")


def load_google_dir(path: str | Path) -> LoadedWeights:
    """Read a Google ALBERT directory (TF1 checkpoint + `albert_config.json`)."""
    path = Path(path)
    config = AlbertConfig.from_json(path / CONFIG_FILE)
    prefix = _checkpoint_prefix(path)
    tf = import_tf()
    try:
        reader = tf.train.load_checkpoint(str(prefix))
    except (tf.errors.OpError, ValueError) as exc:
        raise ModelError(f"{prefix}: cannot read TF checkpoint: {' '.join(str(exc).split())}") from None
    available = set(reader.get_variable_to_shape_map())
    rows = expand_table(GOOGLE_TABLE, config)
    tensors = {external: reader.get_tensor(external) for _, external, _ in rows if external in available}
    weights = to_canonical(tensors, rows)
    if config.embedding_size == config.hidden_size and "embedding_projection/kernel" not in weights:
        # modeling.py skips embedding_hidden_mapping_in when E == H: use the identity.
        weights["embedding_projection/kernel"] = np.eye(config.hidden_size, dtype=np.float32)
        weights["embedding_projection/bias"] = np.zeros(config.hidden_size, dtype=np.float32)
    return LoadedWeights(
        config=config,
        weights=weights,
        format="google",
        path=path,
        source_names={canonical: external for canonical, external, _ in rows},
        tokenizer=find_tokenizer(path),
        source_config=config.to_dict(),
    )


def save_google_checkpoint(model_or_parts, path: str | Path, config: AlbertConfig | None = None) -> Path:
    """Write `albert_config.json` + a TF1 `model.ckpt` with Google's variable names.

    Uses `tf.compat.v1` variables and `Saver` so the names are exactly those of
    google-research/albert (a `tf.train.Checkpoint` would add object paths).
    Returns the checkpoint prefix.
    """
    weights, found_config = collect_weights(model_or_parts)
    config = config or found_config
    if config is None:
        raise ModelError("save_google_checkpoint needs a config for a plain dict of weights")
    tensors = from_canonical(weights, expand_table(GOOGLE_TABLE, config))
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    config.to_json(path / CONFIG_FILE)

    tf = import_tf()
    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        feeds, variables = {}, {}
        for name, array in tensors.items():
            # Placeholders keep large arrays out of the GraphDef (2 GB limit).
            placeholder = v1.placeholder(tf.as_dtype(array.dtype), shape=array.shape)
            variables[name] = v1.Variable(placeholder, name=name, trainable=False)
            feeds[placeholder] = array
        saver = v1.train.Saver(var_list=variables)
        with v1.Session(graph=graph) as session:
            session.run(v1.variables_initializer(list(variables.values())), feed_dict=feeds)
            prefix = saver.save(session, str(path / CHECKPOINT_PREFIX), write_meta_graph=False)
    return Path(prefix)
