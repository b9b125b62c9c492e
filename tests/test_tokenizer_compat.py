"""Our SentencePieceTokenizer (and `albert tokenize encode`) against HF AlbertTokenizer ids.

The expected ids come from tests/fixtures/spm/make_fixture.py (transformers 4.x).
"""

from __future__ import annotations

import json

import pytest

from albert_cli.errors import ModelError
from albert_cli.text.normalize import NormalizerOptions
from albert_cli.text.spm import SentencePieceTokenizer
from conftest import FIXTURES, assert_clean_error, run_albert

SPM = FIXTURES / "spm"
MODEL = SPM / "tiny.model"
EXPECTED = json.loads((SPM / "expected.json").read_text(encoding="utf-8"))
SETTINGS = {
    "default": NormalizerOptions(),
    "cased_keep_accents": NormalizerOptions(lowercase=False, strip_accents=False),
}
CASES = EXPECTED["cases"]


@pytest.fixture(scope="module", params=sorted(SETTINGS))
def setting(request):
    name = request.param
    return name, SentencePieceTokenizer.from_file(MODEL, normalizer=SETTINGS[name])


def test_fixture_exercises_digit_comma_resplit():
    assert EXPECTED["digit_comma_pieces"]
    assert all(n > 0 for n in EXPECTED["strings_changed_by_resplit"].values())
    assert len(CASES) >= 40


def test_ids_and_tokens_match_hf(setting):
    name, tok = setting
    bad = []
    for case in CASES:
        want = case[name]
        if tok.encode(case["text"]) != want["ids"] or tok.tokenize(case["text"]) != want["tokens"]:
            bad.append((case["text"], tok.tokenize(case["text"]), want["tokens"]))
    assert not bad, bad
    assert tok.encode_batch([c["text"] for c in CASES]) == [c[name]["ids"] for c in CASES]


def test_digit_comma_resplit_examples():
    tok = SentencePieceTokenizer.from_file(MODEL)
    pieces = tok.tokenize("paid $2,500, then")
    assert "2," not in pieces and "500," not in pieces
    assert pieces[-2:] == [",", "▁then"]


def test_special_ids_and_vocab():
    tok = SentencePieceTokenizer.from_file(MODEL)
    assert (tok.pad_id, tok.unk_id, tok.cls_id, tok.sep_id, tok.mask_id) == (0, 1, 2, 3, 4)
    assert [tok.id_to_piece(i) for i in range(5)] == ["<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"]
    assert tok.piece_to_id("[MASK]") == 4
    assert tok.piece_to_id("no-such-piece-xyz") == tok.unk_id
    assert tok.vocab_size == 1500 == len(tok)
    assert tok.serialized_model() == MODEL.read_bytes()
    with pytest.raises(IndexError):
        tok.id_to_piece(10**6)


def test_default_normalizer_without_sidecar_is_albert():
    tok = SentencePieceTokenizer.from_file(MODEL)  # no tiny.json next to it
    assert tok.normalizer == NormalizerOptions()


def test_sidecar_sets_normalizer(tmp_path):
    (tmp_path / "m.model").write_bytes(MODEL.read_bytes())
    (tmp_path / "m.json").write_text(json.dumps({"normalizer": {"lowercase": False, "strip_accents": False}}))
    tok = SentencePieceTokenizer.from_file(tmp_path / "m.model")
    assert tok.normalizer == NormalizerOptions(lowercase=False, strip_accents=False)
    case = next(c for c in CASES if c["text"].startswith("MIXED"))
    assert tok.encode(case["text"]) == case["cased_keep_accents"]["ids"]


def test_model_errors(tmp_path):
    with pytest.raises(ModelError, match="no such"):
        SentencePieceTokenizer.from_file(tmp_path / "missing.model")
    junk = tmp_path / "junk.model"
    junk.write_text("hello, I am not a model\n")
    with pytest.raises(ModelError, match="not a SentencePiece model"):
        SentencePieceTokenizer.from_file(junk)


def test_model_without_albert_symbols_errors_clearly(tmp_path):
    import sentencepiece as spm

    lines = ["the quick brown fox jumps over the lazy dog %d" % i for i in range(200)]
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_prefix=str(tmp_path / "plain"), vocab_size=40, minloglevel=2
    )
    tok = SentencePieceTokenizer.from_file(tmp_path / "plain.model")
    assert tok.encode("the fox")  # encoding still works
    with pytest.raises(ModelError, match=r"\[CLS\]"):
        tok.cls_id


# ------------------------------------------------------------------------- the CLI


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_cli_encode_ids_match_hf(name):
    cases = [c for c in CASES if "\n" not in c["text"] and "\r" not in c["text"]]
    flags = [] if name == "default" else ["--cased", "--keep-accents"]
    stdin = "".join(c["text"] + "\n" for c in cases)
    res = run_albert("tokenize", "encode", "--model", MODEL, "--ids", *flags, input=stdin.encode("utf-8"))
    assert res.returncode == 0, res.stderr
    lines = res.stdout.split("\n")
    assert lines[-1] == ""
    got = [[int(x) for x in line.split()] for line in lines[:-1]]
    assert got == [c[name]["ids"] for c in cases]


def test_cli_encode_pieces_from_file(tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("paid $2,500, then\n\nHello World\n", encoding="utf-8")
    res = run_albert("tokenize", "encode", "--model", MODEL, src)
    assert res.returncode == 0, res.stderr
    tok = SentencePieceTokenizer.from_file(MODEL)
    assert res.stdout.split("\n") == [
        " ".join(tok.tokenize("paid $2,500, then")),
        "",
        " ".join(tok.tokenize("Hello World")),
        "",
    ]
