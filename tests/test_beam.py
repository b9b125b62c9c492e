"""`albert predict --runner`: the Apache Beam pipeline on the DirectRunner with 2 worker processes, compared line
for line with `albert predict` on the same files (real subprocesses, a micro model trained here)."""

from __future__ import annotations

import csv
import json
import random
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import FIXTURES, ROOT, assert_clean_error, run_albert
from test_export import run_parallel

pytest.importorskip("apache_beam", reason="the beam extra is not installed (pip install -e '.[beam]')")

MICRO = ["--config", FIXTURES / "old_model_dirs/data/micro_config.json", "--vocab-size", "300",
         "--max-seq-length", "32", "--max-steps", "8"]
TWO_WORKERS = ["--pipeline-option", "direct_num_workers=2", "--pipeline-option", "direct_running_mode=multi_processing"]
RECORD = ["--all-scores", "--top-k", "2", "--batch-size", "8"]  # several length groups in each of Beam's batches
SHARD = re.compile(r"-(\d{5})-of-(\d{5})\.jsonl$")


def news_texts() -> list[str]:
    with open(ROOT / "sample_data/news.csv", newline="", encoding="utf-8") as f:
        return [row["text"] for row in csv.DictReader(f)]


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("beam") / "model"
    res = run_albert("finetune", ROOT / "sample_data/news.csv", "-o", out, *MICRO)
    assert res.returncode == 0, res.stderr
    return out


def write_lines(path: Path, n: int, rng: random.Random, texts: list[str]) -> Path:
    """`n` lines: news texts cut to 1..60 words (many lengths), with empty, blank, non-UTF-8 and NUL lines, a
    CRLF ending and a BOM on the first line."""
    lines = [b"\xef\xbb\xbf" + texts[0].encode()]
    for i in range(1, n):
        r = rng.random()
        if r < 0.02:
            lines.append(b"")
        elif r < 0.03:
            lines.append(b"   \t ")
        elif r < 0.045:
            lines.append(b"caf\xe9 in Latin-1 " + str(i).encode())
        elif r < 0.06:
            lines.append(b"a NUL \x00 byte")
        else:
            words = rng.choice(texts).split()
            lines.append(" ".join(words[: rng.randint(1, 60)]).encode() + (b"\r" if r > 0.99 else b""))
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


@pytest.fixture(scope="module")
def inputs(model) -> dict:
    d = model.parent / "in"
    d.mkdir()
    rng, texts = random.Random(7), news_texts()
    files = [write_lines(d / f"part-{k}.txt", n, rng, texts) for k, n in enumerate((1300, 1000, 700))]
    rows = [("id", "text")] + [(f"doc-{i:04d}", "" if i % 101 == 17 else rng.choice(texts)) for i in range(600)]
    table = d / "docs.csv"
    with open(table, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)
    return {"dir": d, "files": files, "csv": table, "rows": rows[1:]}


def read_shards(prefix: Path, summary: dict) -> list[dict]:
    shards = sorted(prefix.parent.glob(prefix.name + "-*.jsonl"))
    assert [str(s) for s in shards] == summary["shards"]
    counts = {SHARD.search(s.name).group(2) for s in shards}
    assert counts == {f"{len(shards):05d}"}, [s.name for s in shards]
    assert not list(prefix.parent.glob("beam-temp-*"))
    return [json.loads(line) for s in shards for line in s.read_text(encoding="utf-8").splitlines()]


def run_pipeline(model, prefix, *args) -> dict:
    res = run_albert("predict", model, *args, "--runner", "DirectRunner", "-o", prefix, *TWO_WORKERS, *RECORD)
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr and "albert: error" not in res.stderr, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


def assert_same_record(got: dict, want: dict) -> None:
    """`albert predict`'s record: errors exactly, labels identical, probabilities within 1e-6."""
    if "error" in want:
        assert got == want
        return
    assert sorted(got) == sorted(want)
    assert got["label"] == want["label"]
    assert [t["label"] for t in got["top_k"]] == [t["label"] for t in want["top_k"]]
    labels = sorted(want["probabilities"])
    np.testing.assert_allclose([got["probabilities"][k] for k in labels],
                               [want["probabilities"][k] for k in labels], atol=1e-6, rtol=0)
    assert abs(got["score"] - want["score"]) <= 1e-6


@pytest.fixture(scope="module")
def text_run(model, inputs) -> dict:
    prefix = inputs["dir"].parent / "out" / "lines"
    summary = run_pipeline(model, prefix, inputs["dir"] / "part-*.txt")
    return {"summary": summary, "records": read_shards(prefix, summary)}


def test_text_files_equal_albert_predict_line_for_line(model, inputs, text_run):
    results = run_parallel(*[("predict", model, f, *RECORD) for f in inputs["files"]])
    by_origin: dict = {}
    for rec in text_run["records"]:
        key = (rec.pop("source"), rec["line"] if "error" in rec else rec.pop("line"))
        assert key not in by_origin, f"duplicated: {key}"
        by_origin[key] = rec
    total = errors = 0
    for path, res in zip(inputs["files"], results):
        assert res.returncode == 0, res.stderr
        want = [json.loads(line) for line in res.stdout.splitlines()]
        assert len(want) == len(path.read_bytes().splitlines())
        for lineno, expected in enumerate(want, start=1):
            assert_same_record(by_origin.pop((str(path), lineno)), expected)
        total += len(want)
        errors += sum("error" in r for r in want)
    assert not by_origin, f"records of no input line: {list(by_origin)[:3]}"
    assert errors > 100  # the empty, blank, non-UTF-8 and NUL lines are all there, as error records
    summary = text_run["summary"]
    assert (summary["files"], summary["examples"], summary["errors"]) == (3, total - errors, errors)


def test_the_model_loads_once_per_worker_process(text_run):
    assert 1 <= text_run["summary"]["model_loads"] <= 2, text_run["summary"]


def test_csv_with_id_column_equals_albert_predict(model, inputs):
    prefix = inputs["dir"].parent / "out" / "docs"
    summary = run_pipeline(model, prefix, inputs["csv"], "--id-column", "id")
    records = read_shards(prefix, summary)
    ids = [rec["id"] for rec in records]
    assert sorted(ids) == [doc_id for doc_id, _ in inputs["rows"]]  # every row once, none twice
    res = run_albert("predict", model, inputs["csv"], "--skip-bad-rows", *RECORD)  # predict skips the empty rows
    assert res.returncode == 0, res.stderr
    want = iter(json.loads(line) for line in res.stdout.splitlines())
    source = str(inputs["csv"])
    for row, (doc_id, text) in enumerate(inputs["rows"], start=1):
        rec = records[ids.index(doc_id)]
        assert (rec.pop("source"), rec.pop("row"), rec.pop("id")) == (source, row, doc_id)
        if not text:
            assert rec == {"error": "empty text in column 'text'"}
        else:
            assert_same_record(rec, next(want))
    assert next(want, None) is None
    assert (summary["examples"], summary["errors"]) == (594, 6)


def test_one_line_errors_before_the_pipeline_starts(model, inputs, tmp_path):
    prefix = tmp_path / "p"
    txt = inputs["files"][0]
    cases = [
        (("predict", tmp_path / "nope", txt), 1, "nope"),
        (("predict", model, tmp_path / "none-*.txt"), 1, "no such file"),
        (("predict", model, inputs["dir"]), 1, "is a directory"),
        (("predict", model, txt, "--id-column", "id"), 2, "--id-column applies to CSV/TSV/JSONL"),
        (("predict", model, inputs["csv"], "--id-column", "doc"), 1, "no column 'doc'"),
        (("predict", model, txt, "--pipeline-option", "direct_num_wrkers=2"), 2, "direct_num_wrkers"),
        (("predict", model, txt, "--format", "tsv"), 2, "jsonl"),
        (("predict", model, "-"), 2, "not stdin"),
    ]
    for args, code, needle in cases:
        res = run_albert(*args, "--runner", "DirectRunner", "-o", prefix)
        assert_clean_error(res, code, needle)
        assert res.stdout == "" and not list(tmp_path.iterdir()), args
    assert_clean_error(run_albert("predict", model, txt, "--runner", "NoSuchRunner", "-o", prefix), 2, "not a Beam runner")
    assert_clean_error(run_albert("predict", model, txt, "-o", prefix), 2, "--runner")
    assert_clean_error(run_albert("predict", model, txt, txt), 2, "--runner")


def test_earlier_shards_are_not_mixed_with_new_ones(model, inputs, tmp_path):
    (tmp_path / "p-00000-of-00003.jsonl").write_text("{}\n")
    res = run_albert("predict", model, inputs["files"][0], "--runner", "DirectRunner", "-o", tmp_path / "p")
    assert_clean_error(res, 2, "p-00000-of-00003.jsonl")


def test_without_the_extra_one_line_names_it(model, inputs, tmp_path):
    stub = tmp_path / "stub" / "apache_beam"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text("raise ImportError('No module named apache_beam')\n")
    args = ("predict", model, inputs["files"][0])
    res = run_albert(*args, "--runner", "DirectRunner", "-o", tmp_path / "p", env={"PYTHONPATH": str(stub.parent)})
    assert_clean_error(res, 2, "pip install 'albert-cli[beam]'")
    plain = run_albert(*args, env={"PYTHONPATH": str(stub.parent)})  # plain predict never imports Beam
    assert plain.returncode == 0, plain.stderr
    assert len(plain.stdout.splitlines()) == 1300


def test_a_model_directory_on_another_file_system_is_copied_whole(model):
    """What a worker does with `gs://BUCKET/model` (here through Beam's local file system: no bucket here)."""
    from albert_cli.inference.beam import copy_dir

    copy = Path(copy_dir(str(model)))
    try:
        want = {p.relative_to(model): p.read_bytes() for p in model.rglob("*") if p.is_file()}
        got = {p.relative_to(copy): p.read_bytes() for p in copy.rglob("*") if p.is_file()}
        assert "saved_model.pb" in {str(p) for p in got} and got == want
    finally:
        shutil.rmtree(copy)
