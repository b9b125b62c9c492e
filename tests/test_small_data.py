"""Very small training sets and awkward working directories still give a model."""

import json

from conftest import run_albert


def test_tiny_dataset_shrinks_the_vocabulary_and_preset_beats_same_named_directory(tmp_path):
    # 60 rows of a handful of words: SentencePiece supports only a few dozen pieces (< 100).
    rows = ["text,label"] + [
        f"{'good fine' if i % 2 else 'bad poor'} item {i % 7},{'pos' if i % 2 else 'neg'}" for i in range(60)
    ]
    (tmp_path / "d.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "tiny").mkdir()  # a directory named like the preset must not be read as a config file
    res = run_albert("finetune", "d.csv", "-o", "m", "--config", "tiny", "--max-steps", "2", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "supports at most" in res.stderr
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["steps"] == 2
    config = json.loads((tmp_path / "m" / "assets" / "config.json").read_text())
    assert config["num_hidden_layers"] == 2 and config["vocab_size"] < 100


def test_precision_option(tmp_path):
    rows = ["text,label"] + [f"{'good fine' if i % 2 else 'bad poor'} item {i % 7},{'pos' if i % 2 else 'neg'}" for i in range(60)]
    (tmp_path / "d.csv").write_text("\n".join(rows) + "\n")
    bad = run_albert("finetune", "d.csv", "-o", "m", "--config", "tiny", "--precision", "fp64", cwd=tmp_path)
    assert bad.returncode == 2 and "--precision must be one of" in bad.stderr and "Traceback" not in bad.stderr
    assert not (tmp_path / "m").exists()
    res = run_albert("finetune", "d.csv", "-o", "m", "--config", "tiny", "--max-steps", "3", "--precision", "bf16",
                     cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["steps"] == 3 and summary["train_loss"] == summary["train_loss"]  # finite, not NaN
    pred = run_albert("predict", "m", "-", "--precision", "bf16", input="good fine item 3\n", cwd=tmp_path)
    assert pred.returncode == 0 and json.loads(pred.stdout)["label"] in {"pos", "neg"}
    bad = run_albert("predict", "m", "-", "--precision", "int3", input="good\n", cwd=tmp_path)
    assert bad.returncode == 2 and "--precision must be one of" in bad.stderr and "Traceback" not in bad.stderr
