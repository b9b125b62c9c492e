"""Dataset readers: formats, columns, labels, and one-line errors for bad input."""

import json

import pytest

from albert_cli.data.labels import LabelVocab
from albert_cli.data.readers import iter_texts, read_dataset
from albert_cli.errors import DataError


def write(tmp_path, name, content, mode="w"):
    p = tmp_path / name
    if isinstance(content, bytes):
        p.write_bytes(content)
    else:
        p.write_text(content, encoding="utf-8")
    return p


def test_csv_basic_and_int_labels(tmp_path):
    p = write(tmp_path, "d.csv", 'text,label\nhello world,1\n"quoted, with comma",0\n')
    ds = read_dataset(p)
    assert ds.texts == ["hello world", "quoted, with comma"]
    assert ds.labels == ["1", "0"]
    assert ds.rows == [1, 2]


def test_tsv_and_pair_columns(tmp_path):
    p = write(tmp_path, "d.tsv", 'premise\thypothesis\tgold\nA "cat"\tAn animal\tentail\nB\tC\tcontra\n')
    ds = read_dataset(p, text_column="premise", text_pair_column="hypothesis", label_column="gold")
    assert ds.texts == ['A "cat"', "B"]
    assert ds.pairs == ["An animal", "C"]
    assert ds.labels == ["entail", "contra"]


def test_jsonl_multilabel_list_and_csv_pipe(tmp_path):
    p = write(tmp_path, "d.jsonl", '{"text": "a", "label": ["x", "y"]}\n\n{"text": "b", "label": "y"}\n')
    ds = read_dataset(p, label_kind="multi")
    assert ds.labels == [["x", "y"], ["y"]]
    p2 = write(tmp_path, "d.csv", "text,label\na,x|y\nb,y\n")
    assert read_dataset(p2, label_kind="multi").labels == [["x", "y"], ["y"]]


def test_jsonl_int_labels_become_strings(tmp_path):
    p = write(tmp_path, "d.jsonl", '{"text": "a", "label": 3}\n{"text": "b", "label": 10}\n')
    ds = read_dataset(p)
    assert ds.labels == ["3", "10"]
    assert LabelVocab.from_labels(ds.labels).labels == ["3", "10"]


def test_regression_labels(tmp_path):
    p = write(tmp_path, "d.csv", "text,score\na,0.5\nb,3\n")
    assert read_dataset(p, label_column="score", label_kind="regression").labels == [0.5, 3.0]
    p2 = write(tmp_path, "e.csv", "text,score\na,0.5\nb,high\n")
    with pytest.raises(DataError, match=r"row 2.*not a number"):
        read_dataset(p2, label_column="score", label_kind="regression")


def test_fasttext_txt(tmp_path):
    p = write(tmp_path, "d.txt", "__label__pos good film\n__label__neg __label__meh bad\n")
    ds = read_dataset(p)
    assert ds.texts == ["good film", "bad"] and ds.labels == ["pos", "neg"]
    unlabelled = read_dataset(p, label_column=None)
    assert unlabelled.labels is None and unlabelled.texts[0].startswith("__label__pos")


def test_bom_and_utf16_work(tmp_path):
    p = write(tmp_path, "bom.csv", "\ufefftext,label\nx,a\ny,b\n".encode("utf-8"))
    assert read_dataset(p).texts == ["x", "y"]
    p2 = write(tmp_path, "u16.csv", "text,label\nx,a\ny,b\n".encode("utf-16"))
    assert read_dataset(p2).labels == ["a", "b"]


@pytest.mark.parametrize(
    "name,content,kwargs,needles",
    [
        ("empty.csv", "", {}, ["empty.csv", "empty"]),
        ("header.csv", "text,label\n", {}, ["header only"]),
        ("cols.csv", "body,label\nx,a\n", {}, ["no column 'text'", "'body'", "'label'"]),
        ("semi.csv", "text;label\nx;a\n", {}, ["no column 'text'", "semicolon"]),
        ("bad.csv", b"text,label\nok,a\ncaf\xe9,b\n", {}, ["line 3", "UTF-8"]),
        ("nan.csv", "text,label\nx,a\n,b\n", {}, ["row 2", "empty text"]),
        ("nolabel.csv", "text,label\nx,a\ny,\n", {}, ["row 2", "missing label"]),
        ("alllabelsempty.csv", "text,label\nx,\ny,\n", {}, ["empty in every row"]),
        ("bad.jsonl", '{"text": "a", "label": "x"}\n{"text": "b", label}\n', {}, ["line 2", "invalid JSON"]),
        ("nonstr.jsonl", '{"text": 5, "label": "x"}\n', {}, ["line 1", "not a string"]),
        ("list.jsonl", '[1, 2]\n', {}, ["line 1", "JSON object"]),
        ("nul.txt", b"abc\n\x00\x01\x02garbage\n", {"label_column": None}, ["NUL"]),
        ("nolabel.txt", "just text\n", {}, ["line 1", "__label__"]),
    ],
)
def test_bad_input_messages(tmp_path, name, content, kwargs, needles):
    p = write(tmp_path, name, content)
    with pytest.raises(DataError) as info:
        read_dataset(p, **kwargs)
    msg = info.value.message
    assert "\n" not in msg
    assert name in msg
    for needle in needles:
        assert needle.lower() in msg.lower(), (needle, msg)


def test_missing_and_directory(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_dataset(tmp_path / "nope.csv")
    with pytest.raises(DataError, match="is a directory"):
        read_dataset(tmp_path)


def test_skip_bad_rows_counts(tmp_path, capsys):
    p = write(tmp_path, "d.csv", "text,label\nx,a\n,b\n  ,a\ny,b\n")
    ds = read_dataset(p, skip_bad_rows=True)
    assert ds.texts == ["x", "y"] and ds.skipped == 2 and ds.rows == [1, 4]


def test_single_class_refused():
    with pytest.raises(DataError, match="only 1 class"):
        LabelVocab.from_labels(["a", "a"], name="d.csv")


def test_label_vocab_roundtrip(tmp_path):
    v = LabelVocab.from_labels([["b"], ["a", "c"]], multi_label=True)
    assert v.labels == ["a", "b", "c"]
    assert v.encode([["c"], []]).tolist() == [[0, 0, 1], [0, 0, 0]]
    v.save(tmp_path / "l.json")
    assert LabelVocab.load(tmp_path / "l.json") == v
    assert v.unknown([["z", "a"]]) == {"z": 1}


def test_iter_texts_streams_csv_jsonl_txt(tmp_path):
    p = write(tmp_path, "d.csv", 'text,doc\n"multi\nline",1\n,2\nthird,3\n')
    assert list(iter_texts(p)) == ["multi\nline", "third"]
    p2 = write(tmp_path, "d.jsonl", json.dumps({"text": "a"}) + "\n" + json.dumps({"text": "b"}) + "\n")
    assert list(iter_texts(p2)) == ["a", "b"]
    p3 = write(tmp_path, "d.txt", "one\n\ntwo\r\n")
    assert list(iter_texts(p3)) == ["one", "two"]
    with pytest.raises(DataError, match="no column 'body'"):
        list(iter_texts(p, text_column="body"))
