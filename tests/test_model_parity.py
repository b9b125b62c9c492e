"""Numerical parity with HF transformers (reference outputs in expected.npz).

Both import paths (HF safetensors and Google TF1 checkpoint of the same
random weights) must reproduce the PyTorch outputs within 1e-5.
"""

from __future__ import annotations

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from albert_cli.model import AlbertBackbone, AlbertClassifier, AlbertPretrainer
from albert_cli.weights import apply_to, load_pretrained
from conftest import FIXTURES

TINY = FIXTURES / "tiny_albert"
ATOL = 1e-5


@pytest.fixture(scope="module")
def expected():
    with np.load(TINY / "expected.npz", allow_pickle=False) as data:
        return dict(data)


def model_inputs(expected, with_positions=False):
    x = {k: expected[k] for k in ("token_ids", "segment_ids", "padding_mask")}
    if with_positions:
        batch, seq = expected["token_ids"].shape
        x["mask_positions"] = np.tile(np.arange(seq, dtype="int32"), (batch, 1))
    return x


def assert_pretrainer_parity(loaded, expected):
    backbone = AlbertBackbone(loaded.config)
    model = AlbertPretrainer(backbone)
    apply_to(model, loaded)
    base = backbone(model_inputs(expected))
    heads = model(model_inputs(expected, with_positions=True))
    for key, got in (("sequence_output", base["sequence_output"]), ("pooled_output", base["pooled_output"]),
                     ("mlm_logits", heads["mlm_logits"]), ("sop_logits", heads["sop_logits"])):
        diff = np.abs(np.asarray(got) - expected[key]).max()
        assert diff <= ATOL, (loaded.format, key, diff)
    return model


@pytest.mark.parametrize("source", ["hf", "google"])
def test_pretrainer_parity(source, expected):
    loaded = load_pretrained(TINY / source)
    assert loaded.format == source
    assert loaded.heads == {"mlm", "sop"}
    assert_pretrainer_parity(loaded, expected)


def test_hf_file_without_albert_prefix(tmp_path, expected):
    """AlbertModel.save_pretrained writes backbone names without `albert.`."""
    tensors = {name.removeprefix("albert."): t for name, t in load_file(str(TINY / "hf" / "model.safetensors")).items()}
    save_file(tensors, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text((TINY / "hf" / "config.json").read_text())
    assert_pretrainer_parity(load_pretrained(tmp_path), expected)


def test_classifier_parity(expected):
    loaded = load_pretrained(TINY / "hf_classifier")
    assert loaded.heads == {"classifier"}
    model = AlbertClassifier(AlbertBackbone(loaded.config), num_labels=3)
    apply_to(model, loaded)
    diff = np.abs(np.asarray(model(model_inputs(expected))) - expected["classifier_logits"]).max()
    assert diff <= ATOL


def test_mask_positions_gather(expected):
    """MLM logits at chosen positions equal the matching rows of the full output."""
    loaded = load_pretrained(TINY / "hf")
    model = AlbertPretrainer(AlbertBackbone(loaded.config))
    apply_to(model, loaded)
    positions = np.array([[0, 8], [3, 1], [2, 2]], dtype="int32")
    got = np.asarray(model({**model_inputs(expected), "mask_positions": positions})["mlm_logits"])
    want = np.take_along_axis(expected["mlm_logits"], positions[:, :, None], axis=1)
    assert np.abs(got - want).max() <= ATOL
