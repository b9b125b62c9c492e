"""Long documents end to end: a model trained on long texts reads them as windows (the data turns them on), and
predict, evaluate, embed, export (TFLite) and the SavedModel's own signatures all give the document's answer,
for a 3,000-word and a 100,000-character text too."""

import json
import random

import numpy as np
import pytest

from conftest import assert_clean_error, model_meta, run_albert, write_csv

FILLER = "the of and a to in is it that was for on are with as at be this have from or by one had not".split()


def _document(rng: random.Random, label: str, words: int) -> str:
    """Filler words, with the label's word only in the last third: a model that reads the first window alone
    cannot tell the labels apart."""
    body = [rng.choice(FILLER) for _ in range(words)]
    cue = "splendid" if label == "pos" else "dreadful"
    for k in range(3):
        body[words - 1 - rng.randrange(words // 3)] = cue
    return " ".join(body)


@pytest.fixture(scope="module")
def long_model(tmp_path_factory):
    d = tmp_path_factory.mktemp("long")
    rng = random.Random(0)
    rows = [(_document(rng, lab, rng.randint(60, 120)), lab) for lab in ["pos", "neg"] * 40]
    write_csv(d / "train.csv", ["text", "label"], rows[:60])
    write_csv(d / "dev.csv", ["text", "label"], rows[60:])
    res = run_albert("finetune", "train.csv", "--dev", "dev.csv", "-o", "m", "--config", "tiny", "--max-seq-length",
                     "32", "--epochs", "15", "--batch-size", "8", "--vocab-size", "100", cwd=d)
    assert res.returncode == 0, res.stderr
    return d, res


def test_the_data_turns_windows_on_and_the_model_reads_the_end(long_model):
    d, res = long_model
    meta = model_meta(d / "m")
    assert meta["windows"] == {"stride": 22, "max_windows": meta["windows"]["max_windows"], "pooling": "mean"}
    assert 3 <= meta["windows"]["max_windows"] <= 16
    assert "reading them as windows of 32 (stride 22" in res.stderr
    # The label's word sits past the first window, so only a model that reads the windows gets dev right.
    assert json.loads(res.stdout)["best_dev"] >= 0.9


def test_savedmodel_predict_tflite_and_evaluate_agree_on_long_texts(long_model):
    d, _ = long_model
    rng = random.Random(1)
    # The 3,000-word text's cue lies past the windows read (max_windows): it must only go through.
    texts = [_document(rng, "pos", 3000), _document(rng, "neg", 100), ("dreadful " * 12500).strip()[:100_000],
             _document(rng, "pos", 100), "short text"]
    (d / "long.txt").write_text("\n".join(texts) + "\n")
    pred = run_albert("predict", "m", "long.txt", "--all-scores", cwd=d)
    assert pred.returncode == 0, pred.stderr
    served = [json.loads(line) for line in pred.stdout.splitlines()]
    assert len(served) == len(texts)

    # `predict` (the SavedModel's serving_default, windows cut in its graph) equals classify_ids on the windows
    # cut in Python (the TFLite predictor's packer).
    import tensorflow as tf

    from albert_cli.artifacts.modeldir import load_saved_model, open_model_dir
    from albert_cli.inference.lite import Packer

    path, meta = open_model_dir(d / "m")
    packer = Packer(path, meta)
    packed = packer.pack(packer.encode(texts, None))
    assert packed.token_ids.ndim == 3 and packed.token_ids.shape[1] == meta.windows["max_windows"]
    signature = load_saved_model(path).signatures["classify_ids"]
    probs = signature(**{k: tf.constant(packed[k]) for k in ("token_ids", "segment_ids", "padding_mask")})
    probs = probs["probabilities"].numpy()
    labels = meta.labels
    np.testing.assert_allclose([[s["probabilities"][n] for n in labels] for s in served], probs, atol=1e-5)

    lite = run_albert("export", "m", "-o", "lite", cwd=d)
    assert lite.returncode == 0, lite.stderr
    lite_pred = run_albert("predict", "lite", "long.txt", "--all-scores", cwd=d)
    assert lite_pred.returncode == 0, lite_pred.stderr
    lite_probs = [[json.loads(line)["probabilities"][n] for n in labels] for line in lite_pred.stdout.splitlines()]
    np.testing.assert_allclose(lite_probs, probs, atol=1e-4)

    # evaluate reads the same documents as predict: labelled with predict's answers, it scores 1.0.
    write_csv(d / "test.csv", ["text", "label"], [(t, s["label"]) for t, s in zip(texts, served)])
    ev = run_albert("evaluate", "m", "test.csv", "--json", cwd=d)
    assert ev.returncode == 0, ev.stderr
    report = json.loads(ev.stdout)
    assert report["accuracy"] == 1.0 and sum(c["support"] for c in report["per_class"].values()) == len(texts)


def test_embed_pools_the_windows_as_the_classifier(long_model):
    d, _ = long_model
    from albert_cli.inference.embed import Embedder

    rng = random.Random(2)
    texts = [_document(rng, "pos", 200), "short text"]
    emb = Embedder(str(d / "m"))
    got = emb.embed(texts)
    assert emb.windows is not None and got.shape == (2, 128)
    # the document's vector is the mean of its windows' vectors, each window embedded alone
    spec, length = emb.windows
    from albert_cli.text.windows import split_windows

    windows = split_windows(emb.encode([texts[0]])[0], length, spec, emb.cls_id, emb.sep_id)
    np.testing.assert_allclose(got[0], emb._embed_packed([w[1:-1] for w in windows]).mean(0), atol=1e-5)
    cut = Embedder(str(d / "m"), max_seq_length=32)  # --max-seq-length: cut, as for any checkpoint
    assert cut.windows is None and not np.allclose(cut.embed(texts)[0], got[0], atol=1e-3)


def test_no_windows_cuts_as_before_and_bad_options_are_one_line(long_model, tmp_path):
    d, _ = long_model
    res = run_albert("finetune", str(d / "train.csv"), "-o", "cut", "--config", "tiny", "--max-seq-length", "32",
                     "--max-steps", "2", "--vocab-size", "100", "--no-windows", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert model_meta(tmp_path / "cut")["windows"] is None and "windows" not in res.stderr
    for args, needle in [(["--window-stride", "0"], "--window-stride must be at least 1"),
                         (["--window-stride", "40", "--max-seq-length", "32"], "--window-stride must be between 1 and 30"),
                         (["--window-pooling", "sum"], "--window-pooling must be one of mean, max"),
                         (["--no-windows", "--max-windows", "3"], "drop --no-windows")]:
        bad = run_albert("finetune", str(d / "train.csv"), "-o", "bad", "--config", "tiny", "--vocab-size", "100",
                         *args, cwd=tmp_path)
        assert_clean_error(bad, 2, needle)
        assert not (tmp_path / "bad").exists() and not (tmp_path / "bad.partial").exists()
