"""Checkpoint import/export: format detection, errors, exact round trips."""

from __future__ import annotations

import builtins
import shutil

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from albert_cli.errors import ModelError
from albert_cli.model import AlbertBackbone, AlbertClassifier, AlbertPretrainer
from albert_cli.weights import (
    apply_to,
    build_backbone,
    detect_format,
    load_google_dir,
    load_hf_dir,
    load_pretrained,
    save_google_checkpoint,
    save_hf_dir,
)
from conftest import FIXTURES

TINY = FIXTURES / "tiny_albert"
QUERY_HF = "albert.encoder.albert_layer_groups.1.albert_layers.0.attention.query.weight"


@pytest.fixture(scope="module")
def loaded():
    return load_pretrained(TINY / "hf")


@pytest.fixture(scope="module")
def x():
    with np.load(TINY / "expected.npz", allow_pickle=False) as data:
        batch, seq = data["token_ids"].shape
        return {"token_ids": data["token_ids"], "segment_ids": data["segment_ids"],
                "padding_mask": data["padding_mask"],
                "mask_positions": np.tile(np.arange(seq, dtype="int32"), (batch, 1))}


def hf_copy(tmp_path, edit):
    """A copy of the HF fixture whose tensors were changed by `edit(dict)`."""
    target = tmp_path / "edited"
    target.mkdir()
    shutil.copy(TINY / "hf" / "config.json", target / "config.json")
    tensors = load_file(str(TINY / "hf" / "model.safetensors"))
    edit(tensors)
    save_file(tensors, str(target / "model.safetensors"))
    return target


def outputs(model, x):
    return {k: np.asarray(v) for k, v in model(x).items()}


# -------------------------------------------------------------- detection
def test_detect_format(tmp_path):
    assert detect_format(TINY / "hf") == "hf"
    assert detect_format(TINY / "google") == "google"
    model_dir = tmp_path / "mine"
    shutil.copytree(TINY / "hf", model_dir / "assets")
    (model_dir / "assets" / "spiece.model").write_bytes(b"sp")
    (model_dir / "assets" / "albert_cli.json").write_text("{}")
    (model_dir / "assets" / "tokenizer_config.json").write_text('{"do_lower_case": false, "keep_accents": true}')
    assert detect_format(model_dir) == "albert_cli"
    loaded = load_pretrained(model_dir)
    assert loaded.format == "albert_cli"
    assert loaded.tokenizer.kind == "sentencepiece"
    assert loaded.tokenizer.path == model_dir / "assets" / "spiece.model"
    assert (loaded.tokenizer.do_lower_case, loaded.tokenizer.keep_accents) == (False, True)


def test_tokenizer_kinds(tmp_path):
    google = tmp_path / "google"
    shutil.copytree(TINY / "google", google)
    assert load_google_dir(google).tokenizer is None
    (google / "vocab_chinese.txt").write_text("[PAD]\n")
    assert load_google_dir(google).tokenizer.kind == "wordpiece"
    (google / "30k-clean.model").write_bytes(b"sp")
    info = load_google_dir(google).tokenizer
    assert info.kind == "sentencepiece" and info.path.name == "30k-clean.model" and info.do_lower_case


@pytest.mark.parametrize(
    "make, needle",
    [
        (lambda p: p / "nope", "does not exist"),
        (lambda p: (p / "f.txt").write_text("x") and p / "f.txt", "is a file"),
        (lambda p: p, "is empty"),
        (lambda p: (p / "README").write_text("x") and p, "not a recognised ALBERT model directory"),
    ],
)
def test_bad_paths(tmp_path, make, needle):
    path = make(tmp_path)
    with pytest.raises(ModelError) as info:
        load_pretrained(path)
    assert needle in info.value.message and str(path) in info.value.message


def test_pickle_only_dir_is_refused(tmp_path):
    shutil.copy(TINY / "hf" / "config.json", tmp_path / "config.json")
    (tmp_path / "pytorch_model.bin").write_bytes(b"\x80\x04not really")
    with pytest.raises(ModelError, match="pickle files are not loaded.*safetensors"):
        load_pretrained(tmp_path)


def test_hub_name_without_huggingface_hub(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    real_import = builtins.__import__

    def no_hub(name, *args, **kwargs):
        if name.startswith("huggingface_hub"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_hub)
    with pytest.raises(ModelError, match="albert-base-v2: .*pass a local directory"):
        load_pretrained("albert-base-v2")


# ------------------------------------------------------ mismatch errors
def test_missing_tensor_is_named(tmp_path):
    path = hf_copy(tmp_path, lambda t: t.pop(QUERY_HF))
    loaded = load_hf_dir(path)
    with pytest.raises(ModelError) as info:
        build_backbone(loaded)
    assert "group_1_inner_0/query/kernel" in info.value.message and QUERY_HF in info.value.message
    assert "missing" in info.value.message


def test_misshaped_tensor_is_named(tmp_path):
    name = "albert.embeddings.position_embeddings.weight"
    path = hf_copy(tmp_path, lambda t: t.__setitem__(name, t[name][:30]))
    with pytest.raises(ModelError) as info:
        build_backbone(load_hf_dir(path))
    assert name in info.value.message and "(30, 16)" in info.value.message


def test_extra_weight_is_named(loaded):
    weights = dict(loaded.weights, **{"group_5_inner_0/query/bias": np.zeros(32, "float32")})
    with pytest.raises(ModelError, match="group_5_inner_0/query/bias has no matching model variable"):
        apply_to(AlbertBackbone(loaded.config), type(loaded)(loaded.config, weights, "hf", loaded.path))


def test_heads_selection(loaded):
    classifier = AlbertClassifier(AlbertBackbone(loaded.config), num_labels=2)
    apply_to(classifier, loaded)  # no classifier weights in a pretraining checkpoint: head stays fresh
    with pytest.raises(ModelError, match="classifier/kernel"):
        apply_to(classifier, loaded, heads=["classifier"])
    with pytest.raises(ModelError, match="no mlm head"):
        apply_to(classifier, loaded, heads=["mlm"])


# ------------------------------------------------------------ round trips
def test_hf_round_trip_is_exact(tmp_path, loaded, x):
    model = AlbertPretrainer(AlbertBackbone(loaded.config))
    apply_to(model, loaded)
    extra = {"albert_cli.label_centroids": np.arange(6, dtype="float32").reshape(2, 3)}
    save_hf_dir(model, tmp_path / "out", extra_tensors=extra)
    again = load_hf_dir(tmp_path / "out")
    assert again.config == loaded.config
    assert again.source_config["architectures"] == ["AlbertForPreTraining"]
    np.testing.assert_array_equal(again.extra_tensors["albert_cli.label_centroids"],
                                  extra["albert_cli.label_centroids"])
    assert set(again.weights) == set(loaded.weights)
    for name, value in loaded.weights.items():
        np.testing.assert_array_equal(again.weights[name], value, err_msg=name)
    # Same tensor names as transformers writes.
    assert set(load_file(str(tmp_path / "out" / "model.safetensors"))) - set(extra) == set(
        load_file(str(TINY / "hf" / "model.safetensors")))
    clone = AlbertPretrainer(AlbertBackbone(again.config))
    apply_to(clone, again)
    for key, value in outputs(model, x).items():
        np.testing.assert_array_equal(outputs(clone, x)[key], value)


def test_hf_round_trip_classifier(tmp_path, x):
    loaded = load_pretrained(TINY / "hf_classifier")
    model = AlbertClassifier(AlbertBackbone(loaded.config), num_labels=3, task="multi_label")
    apply_to(model, loaded)
    save_hf_dir(model, tmp_path / "cls", extra_config={"id2label": {"0": "a", "1": "b", "2": "c"}})
    again = load_hf_dir(tmp_path / "cls")
    assert again.source_config["problem_type"] == "multi_label_classification"
    assert again.source_config["id2label"]["2"] == "c"
    clone = AlbertClassifier(AlbertBackbone(again.config), num_labels=3)
    apply_to(clone, again)
    inputs = {k: v for k, v in x.items() if k != "mask_positions"}
    np.testing.assert_array_equal(np.asarray(clone(inputs)), np.asarray(model(inputs)))


def test_hf_backbone_only_is_saved_without_prefix(tmp_path, loaded):
    save_hf_dir(build_backbone(loaded), tmp_path / "bb")
    names = set(load_file(str(tmp_path / "bb" / "model.safetensors")))
    assert "embeddings.word_embeddings.weight" in names and not any(n.startswith("albert.") for n in names)
    again = load_hf_dir(tmp_path / "bb")
    assert again.heads == set() and again.source_config["architectures"] == ["AlbertModel"]


def test_google_round_trip_is_exact(tmp_path, loaded, x):
    google = load_google_dir(TINY / "google")
    for name, value in loaded.weights.items():  # both fixtures hold the same weights
        np.testing.assert_array_equal(google.weights[name], value, err_msg=name)
    model = AlbertPretrainer(AlbertBackbone(google.config))
    apply_to(model, google)
    prefix = save_google_checkpoint(model, tmp_path / "g")
    assert prefix.name == "model.ckpt"
    again = load_pretrained(tmp_path / "g")
    assert again.format == "google" and again.config == google.config
    assert again.source_names["group_0_inner_1/ffn_output/kernel"] == (
        "bert/encoder/transformer/group_0/inner_group_1/ffn_1/intermediate/output/dense/kernel")
    for name, value in google.weights.items():
        np.testing.assert_array_equal(again.weights[name], value, err_msg=name)
    clone = AlbertPretrainer(AlbertBackbone(again.config))
    apply_to(clone, again)
    for key, value in outputs(model, x).items():
        np.testing.assert_array_equal(outputs(clone, x)[key], value)
