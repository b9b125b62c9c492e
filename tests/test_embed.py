"""`albert embed`: parity with HF transformers through HF and Google TF1 directories, pooling,
streaming with per-line errors, our own model directories, WordPiece checkpoints, clean errors.

Reference vectors: tests/fixtures/embed_albert/expected.json, from a random HF
AlbertModel (tests/fixtures/make_embed_fixture.py) whose shape is not that of
tests/fixtures/tiny_albert.
"""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from conftest import FIXTURES, Result, assert_clean_error, run_albert

EMBED = FIXTURES / "embed_albert"
ATOL = 1e-4
KEYS = {"pooler": "pooler_output", "cls": "cls", "mean": "mean"}


@pytest.fixture(scope="module")
def expected():
    return json.loads((EMBED / "expected.json").read_text(encoding="utf-8"))


def parse(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines()]


# --------------------------------------------------------- real subprocesses (issue 3)
# (source, pooling, how the text is given). Each run pays the TensorFlow import (~7 s), so the
# error cases below run the same CLI entry point in-process.
RUNS = [
    ("hf", "pooler", "file"),
    ("hf", "cls", "stdin"),
    ("google", "pooler", "stdin-with-bad-lines"),
    ("google", "cls", "file"),
]


@pytest.fixture(scope="module")
def cli_runs(expected, tmp_path_factory):
    texts = expected["texts"]
    tmp = tmp_path_factory.mktemp("embed_input")
    text_file = tmp / "texts.txt"
    text_file.write_text("\n".join(texts) + "\n", encoding="utf-8")
    # an empty line after the 2nd text, a whitespace-only line, an invalid UTF-8 line at the end
    lines = [t.encode("utf-8") for t in texts]
    bad = lines[:2] + [b""] + lines[2:5] + [b"   "] + lines[5:] + [b"caf\xe9"]

    def run(spec):
        source, pooling, how = spec
        args = ["embed", EMBED / source, "--pooling", pooling, "--batch-size", "3"]
        if how == "file":
            return run_albert(*args, text_file, timeout=300)
        if how == "stdin":
            return run_albert(*args, "-", input="\n".join(texts) + "\n", timeout=300)
        return run_albert(*args, input=b"\n".join(bad) + b"\n", timeout=300)

    with ThreadPoolExecutor(2) as pool:  # 2 at a time: more only contend for the CPU
        return dict(zip(RUNS, pool.map(run, RUNS)))


@pytest.mark.parametrize("spec", RUNS, ids=["-".join(s) for s in RUNS])
def test_cli_matches_hf_transformers(spec, cli_runs, expected):
    """Issue 3: pooler / cls vectors equal HF pooler_output / last_hidden_state[:, 0] to 1e-4."""
    source, pooling, how = spec
    res = cli_runs[spec]
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    records = parse(res.stdout)
    if how == "stdin-with-bad-lines":
        assert len(records) == len(expected["texts"]) + 3  # one output line per input line
        assert records[2] == {"error": "empty line", "line": 3}
        assert records[6] == {"error": "empty line", "line": 7}
        assert records[-1] == {"error": "not valid UTF-8", "line": len(records)}
        records = [r for r in records if "error" not in r]
    assert all(set(r) == {"embedding"} for r in records)
    got = np.array([r["embedding"] for r in records])
    want = np.array(expected[KEYS[pooling]])
    assert got.shape == want.shape == (len(expected["texts"]), 48)
    assert np.abs(got - want).max() <= ATOL, (source, pooling, np.abs(got - want).max())


def test_closed_stdout_is_quiet():
    """`albert embed ... | head -n 1`: one line, no traceback, and albert itself exits 0 (pipefail)."""
    import subprocess

    from conftest import albert_executable

    cmd = " ".join(f"'{a}'" for a in albert_executable()) + f" embed '{EMBED / 'hf'}' --batch-size 4 | head -n 1"
    proc = subprocess.run(["bash", "-c", "set -o pipefail; " + cmd], input="some text here\n" * 2000,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("\n") == 1 and proc.stdout.startswith('{"embedding": [')
    assert "Traceback" not in proc.stderr and "albert:" not in proc.stderr and "BrokenPipe" not in proc.stderr


def test_cli_rounds_to_six_significant_digits(cli_runs):
    line = cli_runs[("hf", "pooler", "file")].stdout.splitlines()[0]
    numbers = line[line.index("[") + 1 : line.index("]")].split(",")
    assert all(len(n.lstrip("-").replace(".", "").split("e")[0].lstrip("0")) <= 6 for n in numbers), numbers[:5]


# --------------------------------------------------------------------- library
@pytest.fixture(scope="module")
def hf_embedders():
    from albert_cli.inference.embed import Embedder

    return {
        "mean": Embedder(EMBED / "hf", pooling="mean", batch_size=2),
        "mean_normalized": Embedder(EMBED / "hf", pooling="mean", normalize=True),
    }


def test_tokenization_matches_hf_albert_tokenizer(expected):
    from albert_cli.text.tokenizers import tokenizer_for_pretrained
    from albert_cli.weights import load_pretrained

    tok = tokenizer_for_pretrained(load_pretrained(EMBED / "hf"))
    for text, ids in zip(expected["texts"], expected["ids"]):
        assert [tok.cls_id, *tok.encode(text), tok.sep_id] == ids, text


def test_mean_pooling_equals_numpy_masked_mean(hf_embedders, expected):
    from albert_cli.text.packing import pack_batch

    emb = hf_embedders["mean"]
    texts = expected["texts"]
    got = emb.embed(texts)
    assert np.abs(got - np.array(expected["mean"])).max() <= ATOL  # HF, masked mean in torch
    # numpy: mean of the backbone's sequence output over the real tokens of one padded batch
    packed = pack_batch(emb.encode(texts), max_seq_length=64, cls_id=emb.cls_id, sep_id=emb.sep_id, pad_id=emb.pad_id)
    seq = np.asarray(emb.backbone({k: packed[k] for k in packed.keys()})["sequence_output"])
    mask = packed.padding_mask[:, :, None].astype(np.float64)
    want = (seq * mask).sum(1) / mask.sum(1)
    assert np.abs(got - want).max() <= 1e-5


def test_normalize_gives_unit_vectors(hf_embedders, expected):
    raw = hf_embedders["mean"].embed(expected["texts"])
    unit = hf_embedders["mean_normalized"].embed(expected["texts"])
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(unit, raw / np.linalg.norm(raw, axis=1, keepdims=True), atol=1e-5)


def test_order_and_batching_do_not_change_vectors(hf_embedders, expected):
    emb = hf_embedders["mean"]  # batch_size 2: texts of several lengths end up in different batches
    texts = expected["texts"][::-1] + ["x"] * 3
    together = emb.embed(texts)
    alone = np.stack([emb.embed([t])[0] for t in texts])
    assert np.abs(together - alone).max() <= 1e-5


def test_max_seq_length_truncates(expected):
    from albert_cli.inference.embed import Embedder

    emb = Embedder(EMBED / "hf", pooling="cls", max_seq_length=8)
    text = expected["texts"][1]
    ids = emb.encode([text])[0]
    assert len(ids) > 6
    np.testing.assert_allclose(emb.embed([text]), emb.embed_ids([ids[:6]]), atol=1e-6)


def make_own_model_dir(path, normalizer: dict):
    """The part of an albert-cli model directory that `load_pretrained` reads (assets/)."""
    assets = path / "assets"
    assets.mkdir(parents=True)
    for name in ("config.json", "model.safetensors"):
        shutil.copyfile(EMBED / "hf" / name, assets / name)
    shutil.copyfile(FIXTURES / "spm" / "tiny.model", assets / "spiece.model")
    meta = {"format": "albert-cli-model", "format_version": 1, "task": "single_label", "labels": ["a", "b"],
            "normalizer": normalizer, "max_seq_length": 64,
            "tokenizer": {"kind": "sentencepiece", "file": "spiece.model"}}
    (assets / "albert_cli.json").write_text(json.dumps(meta), encoding="utf-8")
    return path


def test_own_model_dir_uses_its_normalizer(tmp_path, expected):
    from albert_cli.inference.embed import Embedder
    from albert_cli.text.normalize import NormalizerOptions
    from albert_cli.text.spm import SentencePieceTokenizer

    default = make_own_model_dir(tmp_path / "default", {"lowercase": True, "strip_accents": True})
    emb = Embedder(default, pooling="pooler")
    assert emb.format == "albert_cli"
    assert np.abs(emb.embed(expected["texts"]) - np.array(expected["pooler_output"])).max() <= ATOL

    cased = {"lowercase": False, "strip_accents": False, "collapse_whitespace": True}
    emb_cased = Embedder(make_own_model_dir(tmp_path / "cased", cased), pooling="pooler")
    assert emb_cased.tokenizer.normalizer == NormalizerOptions(**cased)
    text = "The Café in Zürich"
    ids = SentencePieceTokenizer.from_file(FIXTURES / "spm" / "tiny.model", NormalizerOptions(**cased)).encode(text)
    assert ids != emb.encode([text])[0]
    np.testing.assert_allclose(emb_cased.embed([text]), emb.embed_ids([ids]), atol=1e-6)


def test_wordpiece_checkpoint_uses_bert_tokenizer(tmp_path):
    """An HF directory with vocab.txt (Chinese ALBERT releases) is tokenized with WordPiece."""
    from albert_cli.inference.embed import Embedder
    from albert_cli.model.backbone import AlbertBackbone
    from albert_cli.model.config import AlbertConfig
    from albert_cli.text.wordpiece import WordPieceTokenizer
    from albert_cli.weights import save_hf_dir

    vocab = FIXTURES / "wordpiece" / "vocab.txt"
    config = AlbertConfig(vocab_size=2500, embedding_size=8, hidden_size=16, num_hidden_layers=1,
                          num_attention_heads=2, intermediate_size=32, max_position_embeddings=32)
    save_hf_dir(AlbertBackbone(config), tmp_path)
    shutil.copyfile(vocab, tmp_path / "vocab.txt")
    emb = Embedder(tmp_path, pooling="cls")
    assert isinstance(emb.tokenizer, WordPieceTokenizer)
    wp = WordPieceTokenizer.from_file(vocab)
    texts = ["这家酒店的服务很好", "Hello World!"]
    assert emb.encode(texts) == [wp.encode(t) for t in texts]
    np.testing.assert_allclose(emb.embed(texts), emb.embed_ids([wp.encode(t) for t in texts]), atol=1e-6)


# ----------------------------------------------------------------------- errors
def run_in_process(capsys, *args) -> Result:
    """`albert ARGS` through the real entry point (`albert_cli.cli.main`) in this process."""
    import signal

    from albert_cli.cli import main

    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    capsys.readouterr()
    try:
        with pytest.raises(SystemExit) as exit_info:
            main([str(a) for a in args])
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    out, err = capsys.readouterr()
    return Result(int(exit_info.value.code or 0), out, err)


def test_bad_model_dir_real_process(tmp_path):
    assert_clean_error(run_albert("embed", tmp_path / "missing", input="hi\n"), 1, "does not exist")


def test_bad_model_dirs(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert_clean_error(run_in_process(capsys, "embed", tmp_path / "empty"), 1, "empty")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("hi")
    assert_clean_error(run_in_process(capsys, "embed", tmp_path / "junk"), 1, "not a recognised ALBERT model directory")
    (tmp_path / "file").write_text("x")
    assert_clean_error(run_in_process(capsys, "embed", tmp_path / "file"), 1, "is a file")


def test_tokenizer_larger_than_model_vocab(tmp_path, capsys):
    model = tmp_path / "m"
    shutil.copytree(FIXTURES / "tiny_albert" / "hf", model)  # vocab_size 120
    shutil.copyfile(FIXTURES / "spm" / "tiny.model", model / "spiece.model")  # 1500 pieces
    assert_clean_error(run_in_process(capsys, "embed", model), 1, "1500", "120")


def test_missing_tokenizer_and_bad_options(tmp_path, capsys):
    model = tmp_path / "m"
    shutil.copytree(FIXTURES / "tiny_albert" / "hf", model)
    assert_clean_error(run_in_process(capsys, "embed", model), 1, "no tokenizer")
    assert_clean_error(run_in_process(capsys, "embed", EMBED / "hf", "--pooling", "max"), 2, "--pooling")
    assert_clean_error(run_in_process(capsys, "embed", EMBED / "hf", "--max-seq-length", "100"), 2, "64")
    assert_clean_error(run_in_process(capsys, "embed", EMBED / "hf", "--batch-size", "0"), 2, "--batch-size")
    assert_clean_error(run_in_process(capsys, "embed", EMBED / "hf", tmp_path / "nope.txt"), 1, "nope.txt")
