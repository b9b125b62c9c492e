"""Model directories written by the code before the issue-17 redesign (commit e1acf10) still work.

`tests/fixtures/old_model_dirs/<name>/model.tar.xz` holds a model directory made by that old code, next to what the
old code printed for it (`predict.jsonl`, `evaluate.json`, `embed.jsonl`); README.md there says how they were made.
The current `albert` must read each directory and print the same labels and, within 1e-5, the same numbers, and
`albert finetune --init` must continue from it.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from conftest import FIXTURES, run_albert

OLD = FIXTURES / "old_model_dirs"
DATA = OLD / "data"
NAMES = ["single_label", "multi_label_pooler"]
TASK_ARGS = {"single_label": [], "multi_label_pooler": ["--multi-label"]}  # finetune --init does not inherit the task
TOL = 1e-5


@pytest.fixture(scope="module", params=NAMES)
def old_model(request, tmp_path_factory) -> tuple[str, Path]:
    """(name, the extracted model directory) in a temporary directory, so no command can touch the fixture."""
    name = request.param
    dest = tmp_path_factory.mktemp(name)
    with tarfile.open(OLD / name / "model.tar.xz", "r:xz") as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, filter="data")
        else:  # Python < 3.11.4
            tar.extractall(dest)
    return name, dest / "model"


def _jsonl(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _ok(res) -> str:
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_predict_matches_old_output(old_model):
    name, model = old_model
    got = _jsonl(_ok(run_albert("predict", model, DATA / "texts.txt", "--all-scores")))
    want = _jsonl((OLD / name / "predict.jsonl").read_text(encoding="utf-8"))
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert set(g) == set(w), (g, w)
        if "error" in w:
            assert g == w
            continue
        assert g["label"] == w["label"] and g.get("labels") == w.get("labels"), (g, w)
        assert g["score"] == pytest.approx(w["score"], abs=TOL)
        assert list(g["probabilities"]) == list(w["probabilities"])
        assert list(g["probabilities"].values()) == pytest.approx(list(w["probabilities"].values()), abs=TOL)


def test_evaluate_matches_old_output(old_model):
    name, model = old_model
    got = json.loads(_ok(run_albert("evaluate", model, DATA / "test.csv", "--json")))
    want = json.loads((OLD / name / "evaluate.json").read_text(encoding="utf-8"))
    for key in ("model", "test"):  # paths: the fixture was made in another directory
        got.pop(key), want.pop(key)
    _assert_same(got, want)


def _assert_same(got, want) -> None:
    """Same keys in the same order, same strings and ints; floats within TOL."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and list(got) == list(want), (got, want)
        for key in want:
            _assert_same(got[key], want[key])
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), (got, want)
        for g, w in zip(got, want):
            _assert_same(g, w)
    elif isinstance(want, float):
        assert got == pytest.approx(want, abs=TOL)
    else:
        assert got == want


def test_embed_matches_old_output(old_model):
    name, model = old_model
    got = _jsonl(_ok(run_albert("embed", model, DATA / "texts.txt")))
    want = _jsonl((OLD / name / "embed.jsonl").read_text(encoding="utf-8"))
    assert len(got) == len(want)
    for g, w in zip(got, want):
        if "error" in w:
            assert g == w
            continue
        # embed prints 6 significant digits: a last-digit flip is up to 5e-6 on values near 1
        np.testing.assert_allclose(g["embedding"], w["embedding"], rtol=TOL, atol=TOL)


def test_finetune_init_from_old_model(old_model, tmp_path):
    name, model = old_model
    out = tmp_path / "continued"
    _ok(run_albert("finetune", DATA / "train.csv", "--init", model, "-o", out, "--max-steps", "2",
                   *TASK_ARGS[name]))
    labels = set(json.loads((model / "assets" / "albert_cli.json").read_text(encoding="utf-8"))["labels"])
    rows = _jsonl(_ok(run_albert("predict", out, DATA / "texts.txt")))
    texts = (DATA / "texts.txt").read_text(encoding="utf-8").splitlines()
    assert len(rows) == len(texts)
    for row, text in zip(rows, texts):
        if not text.strip():
            assert "error" in row
        else:
            assert set(row.get("labels", [row["label"]])) <= labels, row
