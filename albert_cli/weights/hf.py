"""Hugging Face ALBERT checkpoints: `config.json` + `model.safetensors`.

Only safetensors are read (via `safetensors.numpy`); pickle-based
`pytorch_model.bin` files are refused. Torch `Linear.weight` is [out, in], so
kernels are transposed. Files of `AlbertModel` lack the `albert.` prefix;
both spellings are accepted and the prefix is written unless only the
backbone is saved (as `AlbertModel.save_pretrained` does).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from albert_cli.errors import ModelError
from albert_cli.model.config import AlbertConfig
from albert_cli.weights.common import (
    POOLING_KEY,
    LoadedWeights,
    Row,
    collect_weights,
    expand_table,
    find_tokenizer,
    from_canonical,
    head_of,
    to_canonical,
)

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
PREFIX = "albert."
# A classifier on the mean of the token vectors (`AlbertClassifier(pooling="mean")`) or with a bag-of-n-grams
# member (`bow_buckets` > 0, tensors `bow.unigram` / `bow.bigram` / `bow.boundaries` / `bow.mix_share`) has no HF class: its directory says
# `AlbertModel` (the backbone loads exactly), records the pooling under POOLING_KEY and stores the head under
# another name, so that `AlbertForSequenceClassification` reports a newly initialised classifier instead of
# silently computing other logits.
CUSTOM_HEADS = {
    pooling: {f"classifier.{p}": f"{prefix}.{p}" for p in ("weight", "bias")}
    for pooling, prefix in (("mean", "mean_pooling_classifier"), ("pooler", "pooler_classifier"))
}


def _linear(ours: str, theirs: str) -> list[Row]:
    return [(f"{ours}/kernel", f"{theirs}.weight", True), (f"{ours}/bias", f"{theirs}.bias", False)]


def _norm(ours: str, theirs: str) -> list[Row]:
    return [(f"{ours}/gamma", f"{theirs}.weight", False), (f"{ours}/beta", f"{theirs}.bias", False)]


_LAYER = "albert.encoder.albert_layer_groups.{g}.albert_layers.{i}"
_BLOCK = "group_{g}_inner_{i}"

# The single canonical <-> HF name table (backbone names carry the `albert.` prefix).
HF_TABLE: list[Row] = [
    ("token_embedding/embeddings", "albert.embeddings.word_embeddings.weight", False),
    ("position_embedding/embeddings", "albert.embeddings.position_embeddings.weight", False),
    ("segment_embedding/embeddings", "albert.embeddings.token_type_embeddings.weight", False),
    *_norm("embeddings_layer_norm", "albert.embeddings.LayerNorm"),
    *_linear("embedding_projection", "albert.encoder.embedding_hidden_mapping_in"),
    *_linear(f"{_BLOCK}/query", f"{_LAYER}.attention.query"),
    *_linear(f"{_BLOCK}/key", f"{_LAYER}.attention.key"),
    *_linear(f"{_BLOCK}/value", f"{_LAYER}.attention.value"),
    *_linear(f"{_BLOCK}/attention_output", f"{_LAYER}.attention.dense"),
    *_norm(f"{_BLOCK}/attention_layer_norm", f"{_LAYER}.attention.LayerNorm"),
    *_linear(f"{_BLOCK}/ffn", f"{_LAYER}.ffn"),
    *_linear(f"{_BLOCK}/ffn_output", f"{_LAYER}.ffn_output"),
    *_norm(f"{_BLOCK}/output_layer_norm", f"{_LAYER}.full_layer_layer_norm"),
    *_linear("pooled_dense", "albert.pooler"),
    *_linear("mlm_head/dense", "predictions.dense"),
    *_norm("mlm_head/layer_norm", "predictions.LayerNorm"),
    ("mlm_head/output_bias", "predictions.bias", False),
    *_linear("sop_head", "sop_classifier.classifier"),
    *_linear("classifier", "classifier"),
    ("bow/unigram", "bow.unigram", False),
    ("bow/bigram", "bow.bigram", False),
    ("bow/boundaries", "bow.boundaries", False),
    ("bow_mix/share", "bow.mix_share", False),
]

# Tensors HF writes that duplicate mapped ones (tied decoder) or are buffers.
_ALIASES = {"predictions.decoder.bias": "predictions.bias"}
_IGNORED = {"predictions.decoder.weight", "albert.embeddings.position_ids"}
_BACKBONE_ROOTS = ("embeddings.", "encoder.", "pooler.")

_PROBLEM_TYPES = {
    "single_label": "single_label_classification",
    "multi_label": "multi_label_classification",
    "regression": "regression",
}


def _read_config(path: Path) -> tuple[AlbertConfig, dict]:
    config_path = path / CONFIG_FILE
    if not config_path.is_file():
        raise ModelError(f"{path}: no {CONFIG_FILE} found (not a Hugging Face model directory)")
    config = AlbertConfig.from_json(config_path)
    return config, json.loads(config_path.read_text(encoding="utf-8"))


def load_hf_dir(path: str | Path, format_name: str = "hf") -> LoadedWeights:
    """Read an HF ALBERT directory (`config.json` + `model.safetensors`).

    `format_name` is recorded in the result ("albert_cli" for our own `assets/`).
    """
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    path = Path(path)
    weights_path = path / WEIGHTS_FILE
    if not weights_path.is_file():
        if (path / "pytorch_model.bin").is_file():
            raise ModelError(
                f"{path}: only pytorch_model.bin found; pickle files are not loaded for safety, "
                f"convert the checkpoint to {WEIGHTS_FILE} (safetensors) first"
            )
        raise ModelError(f"{path}: no {WEIGHTS_FILE} found")
    config, raw_config = _read_config(path)
    try:
        tensors = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(f"{weights_path}: cannot read safetensors file: {exc}") from None

    custom = CUSTOM_HEADS.get(raw_config.get(POOLING_KEY))
    if custom:
        tensors = {theirs: tensors.pop(ours) for theirs, ours in custom.items() if ours in tensors} | tensors
    if not any(name.startswith(PREFIX) for name in tensors):  # AlbertModel saved alone
        tensors = {(PREFIX + n if n.startswith(_BACKBONE_ROOTS) else n): t for n, t in tensors.items()}
    for alias, target in _ALIASES.items():
        if alias in tensors:
            tensors.setdefault(target, tensors[alias])
    rows = expand_table(HF_TABLE, config)
    mapped = {external for _, external, _ in rows}
    extra = {n: t for n, t in tensors.items() if n not in mapped and n not in _ALIASES and n not in _IGNORED}
    return LoadedWeights(
        config=config,
        weights=to_canonical(tensors, rows),
        format=format_name,
        path=path,
        source_names={canonical: external for canonical, external, _ in rows},
        tokenizer=find_tokenizer(path),
        extra_tensors=extra,
        source_config=raw_config,
    )


def save_hf_dir(
    model_or_parts,
    path: str | Path,
    config: AlbertConfig | None = None,
    extra_tensors: dict[str, np.ndarray] | None = None,
    extra_config: dict | None = None,
) -> Path:
    """Write `config.json` + `model.safetensors` loadable by HF transformers.

    `model_or_parts`: an `AlbertBackbone` / `AlbertClassifier` /
    `AlbertPretrainer`, a `LoadedWeights`, or a dict of canonical arrays.
    `extra_tensors` are stored verbatim; `extra_config` is merged into
    config.json (e.g. `id2label`). Returns the directory.
    """
    from safetensors.numpy import save_file

    weights, found_config = collect_weights(model_or_parts)
    config = config or found_config
    if config is None:
        raise ModelError("save_hf_dir needs a config for a plain dict of weights")
    heads = {head_of(name) for name in weights}
    hf_extra = dict(extra_config or {})
    pooling = getattr(model_or_parts, "pooling", "pooler")
    custom = "classifier" in heads and (pooling == "mean" or "bow/bigram" in weights)
    if custom:
        architecture = "AlbertModel"
        hf_extra[POOLING_KEY] = pooling
        hf_extra.setdefault("num_labels", int(weights["classifier/bias"].shape[0]))
    elif "classifier" in heads:
        architecture = "AlbertForSequenceClassification"
        hf_extra.setdefault("num_labels", int(weights["classifier/bias"].shape[0]))
        task = getattr(model_or_parts, "task", None)
        if task:
            hf_extra.setdefault("problem_type", _PROBLEM_TYPES[task])
    elif heads & {"mlm", "sop"}:
        architecture = "AlbertForPreTraining"
    else:
        architecture = "AlbertModel"

    tensors = from_canonical(weights, expand_table(HF_TABLE, config))
    if architecture == "AlbertModel":
        renames = CUSTOM_HEADS[pooling] if custom else {}
        tensors = {renames.get(name, name.removeprefix(PREFIX)): t for name, t in tensors.items()}
    for name, tensor in (extra_tensors or {}).items():
        if name in tensors:
            raise ModelError(f"extra tensor {name} clashes with a model weight")
        tensors[name] = np.ascontiguousarray(tensor)

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    hf_config = config.to_hf_dict(architectures=[architecture], **hf_extra)
    (path / CONFIG_FILE).write_text(json.dumps(hf_config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    save_file(tensors, str(path / WEIGHTS_FILE), metadata={"format": "pt"})
    return path
