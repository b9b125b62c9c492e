"""`albert export` checks every TFLite export against the SavedModel on real texts (issue 22, item 1).

The model here has the default bag-of-n-grams member and a real vocabulary (over 1,024 pieces: the size from
which dynamic-range quantization stores a table in int8), the case where `--quantize dynamic` used to lose the
word boundaries and half the labels.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from albert_cli.artifacts.checkset import agreement, read_check_texts, write_check_texts
from albert_cli.artifacts.modeldir import ModelMeta

from conftest import ROOT, assert_clean_error, model_meta, run_albert

NEWS, NEWS_TEST = ROOT / "sample_data" / "news.csv", ROOT / "sample_data" / "news_test.csv"


@pytest.fixture(scope="module")
def bag_model(tmp_path_factory):
    d = tmp_path_factory.mktemp("export_check")
    model = d / "model"
    res = run_albert("finetune", NEWS, "-o", model, "--config", "tiny", "--max-steps", "120", "--dev-split", "0.2")
    assert res.returncode == 0, res.stderr
    return {"dir": d, "model": model}


def _summary(res) -> dict:
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_finetune_keeps_dev_texts_to_check_on(bag_model):
    meta = model_meta(bag_model["model"])
    assert meta["bow_buckets"] > 0 and meta["tokenizer"]["kind"] == "sentencepiece"
    kept = [json.loads(line) for line in (bag_model["model"] / "assets/check_texts.jsonl").read_text("utf-8").splitlines()]
    train_texts = set(pd.read_csv(NEWS).text)
    assert 0 < len(kept) <= 200 and all(row["text"] in train_texts for row in kept)


def test_dynamic_quantization_keeps_the_labels_of_a_bag_model(bag_model):
    """Regression: the bag's word-boundary table went through int8 (1.0 came back as 0.99, cast to 0)."""
    import sentencepiece as spm

    model, out = bag_model["model"], bag_model["dir"] / "dyn"
    assert spm.SentencePieceProcessor(model_file=str(model / "assets/spiece.model")).vocab_size() > 1024
    summary = _summary(run_albert("export", model, "-o", out, "--quantize", "dynamic"))
    assert summary["check"]["source"] == "kept with the model" and summary["check"]["texts"] > 0
    assert summary["check"]["label_agreement"] >= 0.99
    assert json.loads((out / "assets/export.json").read_text("utf-8"))["check"] == summary["check"]
    # on texts it never saw, through `albert predict`, against the SavedModel
    saved = run_albert("predict", model, NEWS_TEST, "--format", "label")
    lite = run_albert("predict", out, NEWS_TEST, "--format", "label")
    assert saved.returncode == 0 and lite.returncode == 0, saved.stderr + lite.stderr
    a, b = saved.stdout.split("\n"), lite.stdout.split("\n")
    assert len(a) == len(b) > 300 and np.mean([x == y for x, y in zip(a, b)]) >= 0.99


def test_int8_is_refused_for_a_bag_model(bag_model):
    """Full int8 quantizes activations, and the bag computes hashed word ids (it crashed on some texts)."""
    out = bag_model["dir"] / "i8"
    res = run_albert("export", bag_model["model"], "-o", out, "--quantize", "int8")
    assert_clean_error(res, 2, "--quantize int8", "bag of n-grams", "--quantize dynamic", "--no-bow")
    assert not out.exists() and not out.with_name("i8.partial").exists()


def test_export_below_min_agreement_is_refused_and_writes_nothing(tmp_path):
    model, out = tmp_path / "plain", tmp_path / "i8"
    res = run_albert("finetune", NEWS, "-o", model, "--config", "tiny", "--max-steps", "60", "--no-bow")
    assert res.returncode == 0, res.stderr
    res = run_albert("export", model, "-o", out, "--quantize", "int8", "--min-agreement", "1")
    # calibrated and checked on the texts kept with the model; full int8 (activations too) moves some of its
    # labels (deterministic: same seed, same texts)
    assert_clean_error(res, 1, "--quantize int8 keeps", "kept with the model", "--min-agreement", "nothing written",
                       "--quantize dynamic")
    assert not out.exists() and not out.with_name("i8.partial").exists()


def test_model_without_kept_texts_needs_calibration(bag_model):
    old = bag_model["dir"] / "old-model"
    shutil.copytree(bag_model["model"], old)
    (old / "assets/check_texts.jsonl").unlink()  # as made before models kept them
    res = run_albert("export", old, "-o", bag_model["dir"] / "old-dyn", "--quantize", "dynamic")
    assert_clean_error(res, 2, "--calibration")
    assert not (bag_model["dir"] / "old-dyn").exists()
    summary = _summary(run_albert("export", old, "-o", bag_model["dir"] / "old-dyn", "--quantize", "dynamic",
                                  "--calibration", NEWS_TEST, "--calibration-size", "50"))
    assert summary["check"]["texts"] == 50 and summary["check"]["source"].endswith("news_test.csv")
    float32 = _summary(run_albert("export", old, "-o", bag_model["dir"] / "old-f32"))  # exact: no texts needed
    assert "check" not in float32 and float32["check_max_abs_diff"] <= 1e-3


def _meta(task, labels=("a", "b", "c"), thresholds=None, pair=False) -> ModelMeta:
    return ModelMeta(task=task, labels=list(labels), normalizer={}, max_seq_length=32, thresholds=thresholds,
                     pair=pair)


def test_agreement_follows_the_serving_rules():
    want = np.array([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.1, 0.2, 0.7], [0.4, 0.35, 0.25]], np.float32)
    got = want.copy()
    got[3] = [0.3, 0.45, 0.25]  # the top label moves on one text of four
    found = agreement(_meta("single_label"), want, got, "test")
    assert found.label_agreement == 0.75 and found.max_abs_diff == pytest.approx(0.1) and found.texts == 4
    # multi-label: the whole set at the tuned thresholds must match; a move below a threshold changes nothing
    meta = _meta("multi_label", thresholds=[0.5, 0.4, 0.6])
    moved = want + np.array([[0.05, 0, 0], [0, 0, 0], [0, 0, -0.2], [0, 0, 0]], np.float32)
    assert agreement(meta, want, moved, "test").label_agreement == 0.75
    values = np.array([0.0, 1.0, 2.0, 10.0], np.float32)  # range 10: within 0.1 agrees
    close = values + np.array([0.05, -0.09, 0.2, 0.0], np.float32)
    assert agreement(_meta("regression", labels=()), values, close, "test").label_agreement == 0.75


def test_check_texts_round_trip(tmp_path):
    texts, pairs = [f"text {i}" for i in range(500)], [f"pair {i}" for i in range(500)]
    assert write_check_texts(tmp_path, texts, pairs, seed=3) == 200
    assert read_check_texts(tmp_path / "elsewhere", _meta("single_label", pair=True)) is None  # none kept
    model = tmp_path / "model"
    (model / "assets").mkdir(parents=True)
    write_check_texts(model / "assets", texts, pairs, seed=3)
    got_texts, got_pairs = read_check_texts(model, _meta("single_label", pair=True))
    assert len(got_texts) == 200 and all(p == t.replace("text", "pair") for t, p in zip(got_texts, got_pairs))
    assert got_texts == sorted(got_texts, key=lambda t: int(t.split()[1]))  # input order kept
    assert read_check_texts(model, _meta("single_label"))[1] is None  # not a pair model: no pairs
