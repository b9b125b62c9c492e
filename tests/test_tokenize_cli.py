"""`albert tokenize train|encode` end to end (real subprocesses)."""

from __future__ import annotations

import json
import random
import subprocess
import time

import pytest

from albert_cli.text.spm import SentencePieceTokenizer
from conftest import FIXTURES, albert_executable, assert_clean_error, run_albert

MODEL = FIXTURES / "spm" / "tiny.model"
SPECIALS = ["<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"]


def english_corpus(n=1500, seed=0) -> str:
    rng = random.Random(seed)
    words = (
        "the a market stocks rose fell team won lost game season company shares profit quarter report "
        "government minister election said on monday tuesday new york london city police officials "
        "Café Zürich naïve résumé 1,000 2,500 99"
    ).split()
    syllables = "ka ro mi te sun dra bel po lin ver ast quo ing ed er tion pre con ful ness".split()
    words += ["".join(rng.choice(syllables) for _ in range(rng.randrange(1, 4))) for _ in range(400)]
    words += [w.capitalize() for w in words[:100]]
    return "".join(" ".join(rng.choice(words) for _ in range(rng.randrange(5, 20))) + ".\n" for _ in range(n))


def chinese_corpus(n=1500, seed=0) -> str:
    rng = random.Random(seed)
    chars = "的一是了我不人在他有这个上们来到时大地为子中你说生国年着就那和要她出也得里后自以会家可下而过天去能对小多然于心学么之都好看起发当没成只如事把还用第样道想作种开美总从无情己面最女但现前些所同日手又行意动方期它头经长儿回位分爱老因很给名法间斯知世什两次使身者被高已亲其进此话常与活正感"
    return "".join("".join(rng.choice(chars) for _ in range(rng.randrange(8, 30))) + "。\n" for _ in range(n))


def check_model(prefix, cased=False):
    tok = SentencePieceTokenizer.from_file(str(prefix) + ".model")
    assert [tok.id_to_piece(i) for i in range(5)] == SPECIALS
    assert (tok.pad_id, tok.unk_id, tok.cls_id, tok.sep_id, tok.mask_id) == (0, 1, 2, 3, 4)
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(prefix) + ".model")
    assert sp.bos_id() == -1 and sp.eos_id() == -1
    assert [sp.IdToPiece(i) for i in range(5, 13)] == ["(", ")", '"', "-", ".", "–", "£", "€"]
    meta = json.loads(open(str(prefix) + ".json", encoding="utf-8").read())
    assert meta["normalizer"]["lowercase"] is (not cased)
    assert tok.normalizer.lowercase is (not cased)
    return tok, meta


def test_train_english(tmp_path):
    (tmp_path / "corpus.txt").write_text(english_corpus(), encoding="utf-8")
    res = run_albert("tokenize", "train", tmp_path / "corpus.txt", "-o", tmp_path / "en", "--vocab-size", 120)
    assert res.returncode == 0, res.stderr
    tok, meta = check_model(tmp_path / "en")
    assert tok.vocab_size == 120
    assert meta["training"]["character_coverage"] == 0.99995
    assert meta["training"]["vocab_size"] == 120
    assert "en.model" in res.stderr + res.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.txt", "en.json", "en.model", "en.vocab"]
    assert "".join(tok.tokenize("CAFÉ")) == "▁cafe"


def test_train_cased_csv_records_options(tmp_path):
    rows = ["text,label"] + [f'"{line}",x' for line in english_corpus(800).splitlines()]
    (tmp_path / "data.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    res = run_albert(
        "tokenize", "train", tmp_path / "data.csv", "-o", tmp_path / "cased", "--vocab-size", 150,
        "--cased", "--keep-accents", "--seed", 7, "--input-sentence-size", 500,
    )
    assert res.returncode == 0, res.stderr
    tok, meta = check_model(tmp_path / "cased", cased=True)
    assert meta["normalizer"] == {"lowercase": False, "strip_accents": False, "collapse_whitespace": True}
    assert meta["training"]["sentences"] == 500 and meta["training"]["lines_seen"] == 800
    assert meta["training"]["seed"] == 7
    assert any(p != p.lower() for p in (tok.id_to_piece(i) for i in range(13, tok.vocab_size)))


def test_train_chinese(tmp_path):
    (tmp_path / "zh.txt").write_text(chinese_corpus(), encoding="utf-8")
    res = run_albert("tokenize", "train", tmp_path / "zh.txt", "-o", tmp_path / "zh", "--vocab-size", 300)
    assert res.returncode == 0, res.stderr
    tok, meta = check_model(tmp_path / "zh")
    assert meta["training"]["character_coverage"] == 0.9995  # CJK-heavy
    assert tok.encode("我们的世界")


@pytest.mark.parametrize(
    "setup, args, needles",
    [
        (None, ["missing.txt"], ["missing.txt", "no such file"]),
        ("empty", ["empty.txt"], ["empty.txt", "empty"]),
        ("blank", ["blank.txt"], ["blank.txt", "no text"]),
        # a --vocab-size the text cannot reach shrinks with a warning instead: tests/test_quickstart_zh.py
        ("small", ["small.txt", "--vocab-size", 12], ["--vocab-size", "too small"]),
        ("csv", ["data.csv", "--text-column", "body"], ["data.csv", "body"]),
    ],
)
def test_train_bad_inputs(tmp_path, setup, args, needles):
    files = {
        "empty": ("empty.txt", ""),
        "blank": ("blank.txt", "\n  \n\n"),
        "small": ("small.txt", "hello world\nsecond line\n"),
        "csv": ("data.csv", "text,label\nhello,a\n"),
    }
    if setup:
        name, content = files[setup]
        (tmp_path / name).write_text(content, encoding="utf-8")
    res = run_albert("tokenize", "train", *args, "-o", tmp_path / "out", cwd=tmp_path)
    assert_clean_error(res, 1, *needles)
    assert not list(tmp_path.glob("out.*"))
    assert not list(tmp_path.glob(".out.*"))  # no temp dir left behind


def test_train_usage_errors(tmp_path):
    (tmp_path / "a.txt").write_text("x\n")
    res = run_albert("tokenize", "train", tmp_path / "a.txt", "-o", tmp_path / "o", "--character-coverage", 2)
    assert_clean_error(res, 2, "--character-coverage")
    res = run_albert("tokenize", "train", tmp_path / "a.txt")
    assert res.returncode == 2 and "Traceback" not in res.stderr


def test_encode_errors(tmp_path):
    res = run_albert("tokenize", "encode", "--model", tmp_path / "nope.model", input="hi\n")
    assert_clean_error(res, 1, "nope.model", "no such")
    bad = tmp_path / "bad.model"
    bad.write_text("not a model\n")
    res = run_albert("tokenize", "encode", "--model", bad, input="hi\n")
    assert_clean_error(res, 1, "bad.model", "not a SentencePiece model")
    res = run_albert("tokenize", "encode", "--model", MODEL, input=b"ok\nfine\nbad \xff byte\n")
    assert_clean_error(res, 1, "<stdin>", "line 3", "UTF-8")
    assert res.stdout.count("\n") == 2  # earlier lines were already written
    res = run_albert("tokenize", "encode", "--model", MODEL, tmp_path / "missing.txt")
    assert_clean_error(res, 1, "missing.txt")


def test_encode_streams_line_by_line():
    proc = subprocess.Popen(
        albert_executable() + ["tokenize", "encode", "--model", str(MODEL), "--ids"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        proc.stdin.write("Hello World\n".encode())
        proc.stdin.flush()
        t0 = time.time()
        line = proc.stdout.readline()  # must arrive before stdin is closed
        assert line.strip(), proc.stderr.read()
        assert time.time() - t0 < 30
        tok = SentencePieceTokenizer.from_file(MODEL)
        assert [int(x) for x in line.split()] == tok.encode("Hello World")
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
    assert proc.returncode == 0


def test_encode_quiet_on_closed_stdout():
    proc = subprocess.run(
        " ".join(["yes 'some text 1,000, here' | head -n 20000 |"] + [f"'{a}'" for a in albert_executable()])
        + f" tokenize encode --model '{MODEL}' | head -n 1",
        shell=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0
    assert proc.stdout.count("\n") == 1
    assert proc.stderr == "", proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["chnsenticorp", "ag_news"])
def test_train_on_shared_data(shared_data, tmp_path, dataset):
    # ~14 s (chnsenticorp) and ~4 s (ag_news) on 2 cores: kept in the default run.
    res = run_albert(
        "tokenize", "train", shared_data / dataset / "train.csv", "-o", tmp_path / "tok", "--vocab-size", 8000
    )
    assert res.returncode == 0, res.stderr
    tok, meta = check_model(tmp_path / "tok")
    assert tok.vocab_size == 8000
    expected_coverage = 0.9995 if dataset == "chnsenticorp" else 0.99995
    assert meta["training"]["character_coverage"] == expected_coverage
