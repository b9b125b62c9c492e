"""AlbertConfig, AlbertBackbone and heads: structure, serialisation, backends."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys

import keras
import numpy as np
import pytest

from albert_cli.errors import ModelError
from albert_cli.model import (
    AlbertBackbone,
    AlbertClassifier,
    AlbertConfig,
    AlbertPretrainer,
    logits_to_probabilities,
)
from conftest import FIXTURES, ROOT

TINY = AlbertConfig(vocab_size=50, embedding_size=8, hidden_size=16, num_hidden_layers=4, num_hidden_groups=2,
                    inner_group_num=2, num_attention_heads=2, intermediate_size=24, max_position_embeddings=20,
                    hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
HAS_JAX = importlib.util.find_spec("jax") is not None


def inputs(batch=2, seq=6, seed=0):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, seq + 1, size=batch)
    lengths[0] = seq
    mask = (np.arange(seq)[None, :] < lengths[:, None]).astype("int32")
    return {
        "token_ids": (rng.integers(1, TINY.vocab_size, size=(batch, seq)) * mask).astype("int32"),
        "segment_ids": (rng.integers(0, 2, size=(batch, seq)) * mask).astype("int32"),
        "padding_mask": mask,
    }


@pytest.fixture(scope="module")
def backbone():
    keras.utils.set_random_seed(0)
    return AlbertBackbone(TINY)


# ---------------------------------------------------------------- config
def test_presets_match_published_shapes():
    base, xxl = AlbertConfig.preset("base"), AlbertConfig.preset("xxlarge")
    assert (base.num_hidden_layers, base.hidden_size, base.num_attention_heads, base.intermediate_size) == (
        12, 768, 12, 3072)
    assert (xxl.num_hidden_layers, xxl.hidden_size, xxl.num_attention_heads, xxl.intermediate_size) == (
        12, 4096, 64, 16384)
    assert AlbertConfig.preset("large").num_hidden_layers == 24
    assert AlbertConfig.preset("xlarge").hidden_size == 2048
    for name in ("tiny", "small", "base", "large", "xlarge", "xxlarge"):
        AlbertConfig.preset(name).validate()
    with pytest.raises(ModelError, match="unknown preset"):
        AlbertConfig.preset("huge")


@pytest.mark.parametrize(
    "changes, needle",
    [
        ({"num_hidden_layers": 5, "num_hidden_groups": 2}, "not divisible by num_hidden_groups"),
        ({"hidden_size": 30, "num_attention_heads": 4}, "not divisible by num_attention_heads"),
        ({"hidden_size": 0}, "hidden_size must be a positive integer"),
        ({"vocab_size": -3}, "vocab_size must be a positive integer"),
        ({"hidden_act": "swish"}, "unknown hidden_act 'swish'"),
        ({"down_scale_factor": 2}, "down_scale_factor"),
    ],
)
def test_validate_errors_are_one_line(changes, needle):
    with pytest.raises(ModelError) as info:
        AlbertConfig(**{**TINY.to_dict(), **changes}).validate()
    assert needle in info.value.message and "\n" not in info.value.message


def test_json_round_trip_and_format_detection(tmp_path):
    TINY.to_json(tmp_path / "albert_config.json")
    assert AlbertConfig.from_json(tmp_path / "albert_config.json") == TINY
    hf = TINY.to_hf_dict(architectures=["AlbertForPreTraining"])
    assert hf["model_type"] == "albert" and hf["hidden_act"] == "gelu_new" and hf["layer_norm_eps"] == 1e-12
    # Google "gelu" is exported as HF "gelu_new": the same tanh approximation.
    assert AlbertConfig.from_dict(hf) == AlbertConfig(**{**TINY.to_dict(), "hidden_act": "gelu_new"})
    # HF "gelu" is the exact erf GELU; Google "gelu" is the tanh approximation.
    assert AlbertConfig.from_dict({**hf, "hidden_act": "gelu"}).hidden_act == "gelu_exact"
    assert AlbertConfig.from_dict({**TINY.to_dict(), "hidden_act": "gelu"}).hidden_act == "gelu"
    assert AlbertConfig(hidden_act="gelu_exact").to_hf_dict()["hidden_act"] == "gelu"
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ModelError, match="bad.json"):
        AlbertConfig.from_json(tmp_path / "bad.json")
    (tmp_path / "bert.json").write_text(json.dumps({**hf, "model_type": "bert"}))
    with pytest.raises(ModelError, match="expected 'albert'"):
        AlbertConfig.from_json(tmp_path / "bert.json")


# -------------------------------------------------------------- backbone
def test_backbone_structure(backbone):
    names = {layer.name for layer in backbone.layers}
    assert {"token_embedding", "position_embedding", "segment_embedding", "embeddings_layer_norm",
            "embedding_projection", "group_0_inner_0", "group_0_inner_1", "group_1_inner_0",
            "group_1_inner_1", "pooled_dense"} <= names
    paths = [v.path for v in backbone.weights]
    assert len(paths) == len(set(paths))
    assert "group_1_inner_1/ffn_output/kernel" in paths
    # 2 groups x 2 inner blocks shared by 4 layers: 4 blocks of 16 variables.
    assert len([p for p in paths if p.startswith("group_")]) == 4 * 16


@pytest.mark.parametrize("batch, seq", [(1, 3), (3, 9)])
def test_backbone_dynamic_shapes(backbone, batch, seq):
    out = backbone(inputs(batch, seq), training=False)
    assert tuple(out["sequence_output"].shape) == (batch, seq, 16)
    assert tuple(out["pooled_output"].shape) == (batch, 16)


def test_padding_does_not_change_real_tokens(backbone):
    x = inputs(1, 5)
    padded = {k: np.pad(v, ((0, 0), (0, 3))) for k, v in x.items()}
    short = np.asarray(backbone(x)["sequence_output"])
    long = np.asarray(backbone(padded)["sequence_output"])
    np.testing.assert_allclose(long[:, :5], short, atol=1e-5)


def test_extra_input_keys_are_ignored(backbone):
    x = inputs()
    plain = np.asarray(backbone(x)["sequence_output"])
    extra = np.asarray(backbone({**x, "mask_positions": np.zeros((2, 1), "int32")})["sequence_output"])
    np.testing.assert_array_equal(plain, extra)


def test_dropout_only_in_training(backbone):
    x = inputs()
    a, b = (np.asarray(backbone(x, training=False)["pooled_output"]) for _ in range(2))
    np.testing.assert_array_equal(a, b)
    c = np.asarray(backbone(x, training=True)["pooled_output"])
    assert np.abs(a - c).max() > 0


def test_attention_paths_agree(backbone):
    """Fused `dot_product_attention` (inference) == explicit softmax path (used with dropout)."""
    block = backbone.get_layer("group_0_inner_0")
    x = np.random.default_rng(1).normal(size=(2, 6, 16)).astype("float32")
    mask = inputs()["padding_mask"]
    fused = np.asarray(block._attention(x, mask, training=False))
    rate, block.attention_probs_dropout.rate = block.attention_probs_dropout.rate, 0.0
    block.attention_dropout_rate = 1e-9  # take the explicit branch with (effectively) no dropout
    try:
        explicit = np.asarray(block._attention(x, mask, training=True))
    finally:
        block.attention_probs_dropout.rate, block.attention_dropout_rate = rate, rate
    np.testing.assert_allclose(fused, explicit, atol=1e-5)


def test_backbone_config_round_trip(backbone):
    clone = AlbertBackbone.from_config(backbone.get_config())
    assert clone.config == TINY
    clone.set_weights(backbone.get_weights())
    x = inputs()
    np.testing.assert_allclose(np.asarray(clone(x)["pooled_output"]), np.asarray(backbone(x)["pooled_output"]),
                               atol=1e-6)


# ----------------------------------------------------------------- heads
def test_classifier_and_probabilities(backbone, tmp_path):
    model = AlbertClassifier(backbone, num_labels=3, task="multi_label")
    x = inputs()
    logits = np.asarray(model(x))
    assert logits.shape == (2, 3)
    np.testing.assert_allclose(np.asarray(model.probabilities(logits)), 1 / (1 + np.exp(-logits)), rtol=1e-5)
    soft = np.asarray(logits_to_probabilities(logits, "single_label"))
    np.testing.assert_allclose(soft.sum(-1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(np.asarray(logits_to_probabilities(logits, "regression")), logits)
    model.save(tmp_path / "clf.keras")
    restored = keras.models.load_model(tmp_path / "clf.keras")
    assert restored.task == "multi_label" and restored.num_labels == 3
    np.testing.assert_allclose(np.asarray(restored(x)), logits, atol=1e-6)
    with pytest.raises(ValueError, match="unknown task"):
        AlbertClassifier(backbone, num_labels=2, task="ranking")


def test_mean_pooling_classifier_is_the_masked_token_mean(tmp_path):
    """pooling="mean": logits = mean of sequence_output over real tokens @ kernel + bias; padding has no effect;
    the unused tanh pooler is frozen; the HF directory says AlbertModel and round-trips the head."""
    from albert_cli.weights.hf import load_hf_dir, save_hf_dir

    keras.utils.set_random_seed(1)
    model = AlbertClassifier(AlbertBackbone(TINY), num_labels=3, pooling="mean")
    x = inputs(batch=3, seq=7, seed=2)
    logits = np.asarray(model(x, training=False))
    seq = np.asarray(model.backbone(x, training=False)["sequence_output"])
    mask = x["padding_mask"][..., None].astype("float32")
    kernel, bias = (np.asarray(v) for v in model.get_layer("classifier").weights)
    expected = ((seq * mask).sum(1) / mask.sum(1)) @ kernel + bias
    np.testing.assert_allclose(logits, expected, atol=1e-5)
    padded = {k: np.pad(v, ((0, 0), (0, 4))) for k, v in x.items()}  # four more padding positions
    np.testing.assert_allclose(np.asarray(model(padded, training=False)), logits, atol=1e-5)
    trainable = {v.path for v in model.trainable_variables}
    assert "classifier/kernel" in trainable and not any(p.startswith("pooled_dense") for p in trainable)
    assert AlbertClassifier.from_config(model.get_config()).pooling == "mean"
    with pytest.raises(ValueError, match="unknown pooling"):
        AlbertClassifier(AlbertBackbone(TINY), num_labels=2, pooling="max")

    save_hf_dir(model, tmp_path, TINY)
    hf = json.loads((tmp_path / "config.json").read_text())
    assert hf["architectures"] == ["AlbertModel"] and hf["albert_cli_pooling"] == "mean"
    from safetensors.numpy import load_file

    names = set(load_file(str(tmp_path / "model.safetensors")))
    assert {"mean_pooling_classifier.weight", "mean_pooling_classifier.bias"} <= names
    assert "classifier.weight" not in names and not any(n.startswith("albert.") for n in names)
    loaded = load_hf_dir(tmp_path)
    assert loaded.heads == {"classifier"}
    np.testing.assert_array_equal(loaded.weights["classifier/kernel"], kernel)
    np.testing.assert_array_equal(loaded.weights["classifier/bias"], bias)


def test_pretrainer_outputs_and_tied_decoder(backbone):
    model = AlbertPretrainer(backbone)
    x = inputs()
    x["mask_positions"] = np.array([[1, 2], [0, 4]], dtype="int32")
    out = model(x)
    assert tuple(out["mlm_logits"].shape) == (2, 2, TINY.vocab_size)
    assert tuple(out["sop_logits"].shape) == (2, 2)
    paths = {v.path for v in model.weights}
    assert {"mlm_head/dense/kernel", "mlm_head/layer_norm/gamma", "mlm_head/output_bias",
            "sop_head/kernel", "sop_head/bias"} <= paths
    assert not any("decoder" in p for p in paths)  # decoder is the tied token embedding
    clone = AlbertPretrainer.from_config(model.get_config())
    assert len(clone.weights) == len(model.weights)


# -------------------------------------------------------------- backends
def test_model_package_has_no_tensorflow_imports():
    for path in sorted((ROOT / "albert_cli" / "model").glob("*.py")):
        if path.name == "optimizers.py":  # owned by another module
            continue
        source = path.read_text()
        assert not re.search(r"^\s*(import|from)\s+tensorflow", source, re.M), path
        assert not re.search(r"\btf\.", source), path


def _run_with_backend(backend: str, code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3", "JAX_PLATFORMS": "cpu",
           "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=300)


@pytest.mark.skipif(not HAS_JAX, reason="jax is not installed")
def test_import_without_tensorflow_under_jax():
    res = _run_with_backend("jax", "import sys, albert_cli.model, albert_cli.weights.hf\n"
                                   "assert 'tensorflow' not in sys.modules, 'tensorflow imported'\nprint('ok')")
    assert res.returncode == 0 and "ok" in res.stdout, res.stderr[-2000:]


@pytest.mark.skipif(not HAS_JAX, reason="jax is not installed")
def test_jax_backend_forward():
    """HF fixture weights under the JAX backend reproduce the HF reference outputs."""
    code = f"""
import sys
import numpy as np
import keras
from albert_cli.model import AlbertPretrainer
from albert_cli.weights import apply_to, build_backbone, load_hf_dir
assert keras.backend.backend() == "jax"
exp = np.load({str(FIXTURES / 'tiny_albert' / 'expected.npz')!r}, allow_pickle=False)
loaded = load_hf_dir({str(FIXTURES / 'tiny_albert' / 'hf')!r})
backbone = build_backbone(loaded)
model = AlbertPretrainer(backbone)
apply_to(model, loaded)
x = {{k: exp[k] for k in ("token_ids", "segment_ids", "padding_mask")}}
b, s = exp["token_ids"].shape
x["mask_positions"] = np.tile(np.arange(s, dtype="int32"), (b, 1))
out, seq = model(x), backbone(x)
for got, key in ((seq["sequence_output"], "sequence_output"), (seq["pooled_output"], "pooled_output"),
                 (out["mlm_logits"], "mlm_logits"), (out["sop_logits"], "sop_logits")):
    diff = float(np.abs(np.asarray(got) - exp[key]).max())
    assert diff <= 1e-5, (key, diff)
assert "tensorflow" not in sys.modules
print("ok")
"""
    res = _run_with_backend("jax", code)
    assert res.returncode == 0 and "ok" in res.stdout, res.stderr[-2000:]
