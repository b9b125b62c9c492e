"""`albert export`: TFLite directories that `albert predict` / `albert evaluate` accept (real subprocesses, tiny model)."""

from __future__ import annotations

import json
import os
import subprocess

import numpy as np
import pytest

from conftest import Result, albert_executable, assert_clean_error, run_albert
from test_finetune_chain import make_rows, write_csv  # its learnable synthetic topic task


def start(*args) -> subprocess.Popen:
    """`albert ARGS` started in the background (the environment of conftest.run_albert)."""
    env = dict(os.environ)
    env.pop("ALBERT_DEBUG", None)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONIOENCODING"] = "utf-8"
    return subprocess.Popen(albert_executable() + [str(a) for a in args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def finish(proc: subprocess.Popen) -> Result:
    out, err = proc.communicate(timeout=600)
    return Result(proc.returncode, out, err)


def run_parallel(*commands) -> list[Result]:
    """Independent commands at once: most of each is TensorFlow's start-up."""
    return [finish(p) for p in [start(*c) for c in commands]]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny finetuned model and its TFLite exports (float32 and dynamic-range int8)."""
    d = tmp_path_factory.mktemp("export")
    train = write_csv(d / "train.csv", make_rows(240, 1))
    corpus = d / "corpus.txt"
    corpus.write_text("\n".join(t for t, _ in make_rows(400, 4)) + "\n", encoding="utf-8")
    res = run_albert("tokenize", "train", corpus, "-o", d / "spm", "--vocab-size", "60")
    assert res.returncode == 0, res.stderr
    model = d / "model"
    res = run_albert("finetune", train, "--tokenizer", d / "spm.model", "-o", model, "--config", "tiny",
                     "--max-steps", "90", "--batch-size", "16", "--learning-rate", "2e-3", "--warmup-ratio", "0.05")
    assert res.returncode == 0, res.stderr
    none, dynamic = d / "lite", d / "lite-dyn"
    results = run_parallel(("export", model, "-o", none, "--format", "tflite"),
                           ("export", model, "-o", dynamic, "--format", "tflite", "--quantize", "dynamic"))
    for r in results:
        assert r.returncode == 0, r.stderr
        assert "Traceback" not in r.stderr and "deprecated" not in r.stderr and "XNNPACK" not in r.stderr, r.stderr
    summaries = [json.loads(r.stdout.strip().splitlines()[-1]) for r in results]
    return {"dir": d, "model": model, "none": none, "dynamic": dynamic, "summaries": summaries}


def test_tflite_directory_layout_and_sizes(exported):
    none, dynamic = exported["none"], exported["dynamic"]
    for out in (none, dynamic):
        assert (out / "model.tflite").is_file()
        assert not (out / "saved_model.pb").exists() and not (out / "variables").exists()
        for name in ("albert_cli.json", "spiece.model", "export.json"):
            assert (out / "assets" / name).is_file(), name
        assert (out / "assets/albert_cli.json").read_bytes() == (exported["model"] / "assets/albert_cli.json").read_bytes()
        assert not out.with_name(out.name + ".partial").exists()
    s_none, s_dyn = exported["summaries"]
    assert (s_none["quantize"], s_dyn["quantize"]) == ("none", "dynamic")
    assert s_none["check_max_abs_diff"] < 1e-4 and s_dyn["check_max_abs_diff"] < 0.05
    size_none, size_dyn = (none / "model.tflite").stat().st_size, (dynamic / "model.tflite").stat().st_size
    assert size_none == s_none["tflite_bytes"]
    assert size_dyn < 0.5 * size_none, (size_dyn, size_none)  # int8 weights: about a third
    variables = sum(p.stat().st_size for p in (exported["model"] / "variables").rglob("*") if p.is_file())
    assert 0.7 * variables < size_none < 1.5 * variables, (size_none, variables)
    meta = json.loads((dynamic / "assets/export.json").read_text())
    assert meta["format"] == "tflite" and meta["output_name"] == "probabilities"


@pytest.fixture(scope="module")
def predictions(exported):
    """`albert predict` on the SavedModel and the float TFLite directory, `albert evaluate` on the dynamic one."""
    d = exported["dir"]
    test_rows = make_rows(60, 3)
    test = write_csv(d / "test.csv", test_rows)
    lines = [t for t, _ in test_rows]
    lines.insert(7, "")  # an empty line: an error record in its place, exit 0
    txt = d / "test.txt"
    txt.write_text("\n".join(lines) + "\n", encoding="utf-8")
    args = ("--all-scores", "--batch-size", "8")  # several length groups, so the order is really restored
    per_row = d / "dynamic-predictions.jsonl"
    saved, none, ev = run_parallel(
        ("predict", exported["model"], txt, *args),
        ("predict", exported["none"], txt, *args),
        ("evaluate", exported["dynamic"], test, "--json", "--predictions", per_row, "--batch-size", "8"),
    )
    for r in (saved, none, ev):
        assert r.returncode == 0, r.stderr
        assert "Traceback" not in r.stderr and "deprecated" not in r.stderr and "XNNPACK" not in r.stderr, r.stderr
    parse = lambda text: [json.loads(l) for l in text.splitlines()]  # noqa: E731
    return {"rows": test_rows, "saved": parse(saved.stdout), "none": parse(none.stdout),
            "report": json.loads(ev.stdout), "dynamic": parse(per_row.read_text(encoding="utf-8"))}


def _split(records):
    good = [r for r in records if "error" not in r]
    labels = [r["label"] for r in good]
    probs = np.array([[r["probabilities"][k] for k in sorted(r["probabilities"])] for r in good])
    return labels, probs


def test_predict_tflite_float_matches_savedmodel(predictions):
    saved, lite = predictions["saved"], predictions["none"]
    assert len(lite) == len(saved) == 61
    assert lite[7] == saved[7] == {"error": "empty line", "line": 8}
    assert [sorted(r) for r in lite] == [sorted(r) for r in saved]  # same output format
    labels_s, probs_s = _split(saved)
    labels_l, probs_l = _split(lite)
    assert labels_l == labels_s
    np.testing.assert_allclose(probs_l, probs_s, atol=1e-5)
    np.testing.assert_allclose([r["score"] for r in lite if "error" not in r], probs_s.max(1), atol=1e-5)
    # the model has learnt the task, so agreeing labels are not agreeing noise
    gold = [label for _, label in predictions["rows"]]
    assert np.mean([a == b for a, b in zip(labels_s, gold)]) >= 0.75


def test_evaluate_tflite_dynamic_range_close_to_savedmodel(predictions):
    report, rows = predictions["report"], predictions["dynamic"]
    assert report["num_examples"] == 60 and report["labels"] == ["money", "sport", "tech"]
    assert np.asarray(report["confusion_matrix"]).sum() == 60
    labels_s, probs_s = _split(predictions["saved"])
    assert [r["row"] for r in rows] == list(range(1, 61))  # data rows, in input order
    labels_d = [r["label"] for r in rows]
    assert np.mean([a == b for a, b in zip(labels_d, labels_s)]) >= 0.95
    scores_d = np.array([r["score"] for r in rows])
    np.testing.assert_allclose(scores_d, probs_s.max(1), atol=0.05)
    assert np.abs(scores_d - probs_s.max(1)).max() > 0  # really a different (quantized) model
    gold = [label for _, label in predictions["rows"]]
    assert report["accuracy"] == pytest.approx(np.mean([a == b for a, b in zip(labels_d, gold)]))
    assert abs(report["accuracy"] - np.mean([a == b for a, b in zip(labels_s, gold)])) <= 0.05


BAD_OPTIONS = [
    (("--format", "saved_model", "--quantize", "dynamic"), ("not supported", "saved_model")),
    (("--format", "onnx"), ("--format",)),
    (("--quantize", "int4"), ("--quantize",)),
    (("--format", "saved_model", "--calibration", "texts.txt"), ("--calibration", "tflite")),
    (("--quantize", "dynamic", "--min-agreement", "1.5"), ("--min-agreement", "between 0 and 1")),
]


def test_bad_options_one_line(exported, tmp_path):
    results = run_parallel(*[("export", exported["model"], "-o", tmp_path / f"out{i}", *args)
                             for i, (args, _) in enumerate(BAD_OPTIONS)])
    for i, (res, (_, needles)) in enumerate(zip(results, BAD_OPTIONS)):
        assert_clean_error(res, 2, *needles)
        assert not (tmp_path / f"out{i}").exists()


def test_existing_output_needs_overwrite(exported):
    target = exported["none"]
    before = (target / "model.tflite").read_bytes()
    res = run_albert("export", exported["model"], "-o", target, "--quantize", "dynamic")
    assert_clean_error(res, 2, "exists", "--overwrite")
    assert (target / "model.tflite").read_bytes() == before


def test_saved_model_copy_overwrites_and_tflite_is_not_a_source(exported):
    out = exported["dir"] / "copy"
    out.mkdir()
    (out / "old.txt").write_text("old")
    res = run_albert("export", exported["model"], "-o", out, "--format", "saved_model", "--overwrite")
    assert res.returncode == 0, res.stderr
    assert (out / "saved_model.pb").read_bytes() == (exported["model"] / "saved_model.pb").read_bytes()
    assert (out / "variables").is_dir() and (out / "assets/model.safetensors").is_file()
    assert not (out / "old.txt").exists() and not (out / "logs").exists() and not (out / "checkpoints").exists()
    again = run_albert("export", exported["none"], "-o", exported["dir"] / "x")
    assert_clean_error(again, 1, "already a TFLite export")
    embed = run_albert("embed", exported["none"], "-", input="hello\n")
    assert_clean_error(embed, 1, "TFLite")


@pytest.mark.parametrize("task", ["single_label", "multi_label", "regression"])
def test_savedmodel_graph_matches_numpy_serving_outputs(task):
    """The SavedModel's in-graph post-processing and `serving_outputs` (what the TFLite predictor applies) agree."""
    from pathlib import Path

    from albert_cli._tf import import_tf
    from albert_cli.artifacts.savedmodel import build_serving_module
    from albert_cli.inference.base import serving_outputs
    from albert_cli.artifacts.modeldir import ModelMeta
    from albert_cli.text.spm import SentencePieceTokenizer

    tf = import_tf()
    labels = ["money", "sport", "tech"] if task != "regression" else []
    meta = ModelMeta(task=task, labels=labels, normalizer={}, max_seq_length=16,
                     thresholds=[0.3, 0.5, 0.7] if task == "multi_label" else None)
    width = 1 if task == "regression" else len(labels)
    table = tf.constant(np.random.default_rng(0).normal(0, 2, (64, width)), tf.float32)

    def model(inputs, training=False):  # logits that depend on each row's second token
        return tf.gather(table, inputs["token_ids"][:, 1])

    tokenizer = SentencePieceTokenizer.from_file(Path(__file__).parent / "fixtures/spm/tiny.model")
    module = build_serving_module(model, tokenizer, meta)
    ids = np.random.default_rng(1).integers(0, 64, (40, 5)).astype(np.int32)
    graph = {k: v.numpy() for k, v in module.classify_ids(ids, np.zeros_like(ids), np.ones_like(ids)).items()}
    ref = serving_outputs(meta, graph["value"] if task == "regression" else graph["probabilities"])
    assert sorted(graph) == sorted(ref)
    for key in ref:
        if ref[key].dtype == object:
            assert list(graph[key]) == list(ref[key]), key
        else:
            np.testing.assert_array_equal(graph[key], ref[key], err_msg=key)
    if task == "multi_label":
        assert {0, 1, 2} <= {int(p.sum()) for p in ref["predicted"]}  # thresholds really exercised
