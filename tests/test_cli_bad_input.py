"""Every bad input to the dataset readers, through the real `albert` command: exit code, one line, no traceback.

`albert finetune` reads its data before TensorFlow loads, so these are quick.
"""

from __future__ import annotations

import pytest

from conftest import FIXTURES, assert_clean_error, run_albert

CASES = [
    # id, file name, content, extra args, needles
    ("empty-file", "empty.csv", b"", [], ["empty.csv", "empty"]),
    ("header-only", "header.csv", b"text,label\n", [], ["header.csv", "header only"]),
    ("missing-column", "cols.csv", b"body,label\nx,a\ny,b\n", [], ["no column 'text'", "'body'"]),
    ("wrong-delimiter", "semi.csv", b"text;label\nx;a\ny;b\n", [], ["no column 'text'", "semicolon"]),
    ("undecodable", "latin1.csv", "text,label\nok,a\ncafé,b\n".encode("latin-1"), [], ["latin1.csv", "line 3", "UTF-8"]),
    ("empty-text", "nan.csv", b"text,label\nx,a\n,b\ny,a\n", [], ["nan.csv", "row 2", "empty text"]),
    ("missing-label", "nolab.csv", b"text,label\nx,a\ny,\nz,b\n", [], ["row 2", "missing label"]),
    ("labels-all-empty", "nolabels.csv", b"text,label\nx,\ny,\n", [], ["empty in every row"]),
    ("single-class", "one.csv", b"text,label\nx,a\ny,a\n", [], ["one.csv", "only 1 class"]),
    ("bad-json", "bad.jsonl", b'{"text": "a", "label": "x"}\n{"text": \n', [], ["bad.jsonl", "line 2", "invalid JSON"]),
    ("json-text-not-string", "num.jsonl", b'{"text": 5, "label": "x"}\n{"text": "b", "label": "y"}\n', [], ["line 1", "not a string"]),
    ("utf16-no-bom-binary", "bin.txt", b"\x00\x01\x02\xff\xfe garbage\n", [], ["bin.txt"]),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_training_file(tmp_path, case):
    _, name, content, extra, needles = case
    f = tmp_path / name
    f.write_bytes(content)
    out = tmp_path / "out"
    res = run_albert("finetune", f, "-o", out, *extra)
    assert_clean_error(res, 1, *needles)
    assert not out.exists() and not (tmp_path / "out.partial").exists()


def test_missing_file(tmp_path):
    res = run_albert("finetune", tmp_path / "nope.csv", "-o", tmp_path / "out")
    assert_clean_error(res, 1, "nope.csv", "no such file")


def test_directory_as_file(tmp_path):
    res = run_albert("finetune", tmp_path, "-o", tmp_path / "out")
    assert_clean_error(res, 1, "is a directory")


def test_skip_bad_rows_counts_and_continues_to_validation(tmp_path):
    f = tmp_path / "d.csv"
    f.write_bytes(b"text,label\nx,a\n,b\n")  # after skipping row 2 only one class remains
    res = run_albert("finetune", f, "-o", tmp_path / "out", "--skip-bad-rows")
    assert_clean_error(res, 1, "only 1 class")
    assert "skipped 1 bad row" in res.stderr


def test_stdin_dash(tmp_path):
    res = run_albert("finetune", "-", "--input-format", "csv", "-o", tmp_path / "out", input="text,label\n")
    assert_clean_error(res, 1, "<stdin>", "header only")


def test_bom_is_fine_for_tokenize(tmp_path):
    f = tmp_path / "bom.txt"
    f.write_bytes("\ufeffhello world\nhello world\n".encode("utf-8"))
    res = run_albert("tokenize", "encode", "--model", FIXTURES / "spm" / "tiny.model", f)
    assert res.returncode == 0, res.stderr
    first, second = res.stdout.splitlines()
    assert first == second  # the BOM is not part of the text
