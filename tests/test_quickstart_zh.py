"""README.md's 中文 quick start, run line by line as written, and the vocabulary that the text cannot support:
`tokenize train` shrinks it with a warning, as `finetune` does (issue 22)."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from albert_cli.text.spm import SentencePieceTokenizer, fitting_vocab_size
from conftest import ROOT, run_albert, write_two_class_csv

SHRINK = re.compile(r"warning: .*supports at most ([\d,]+) pieces, fewer than the ([\d,]+) asked for: using ([\d,]+)")
CI_STEPS = "12"  # the full quick start trains for minutes; ALBERT_FULL_QUICKSTART=1 runs it as written


def zh_section() -> list[str]:
    """The lines of the sh block of README.md's 中文 section, comments dropped."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## 中文快速上手"):]
    block = section[section.index("```sh\n") + 6:]
    block = block[:block.index("```")]
    return [line.rstrip() for line in block.splitlines() if line.strip()]


def command_of(line: str) -> str:
    return re.split(r"\s+#\s", line, maxsplit=1)[0].strip()


def shrink_warning(stderr: str) -> tuple[int, int, int]:
    """(supported, asked, used) from the one shrink warning."""
    found = SHRINK.findall(stderr)
    assert len(found) == 1, stderr
    return tuple(int(n.replace(",", "")) for n in found[0])


def labels_of(path: Path) -> list[str]:
    with open(path, encoding="utf-8", newline="") as f:
        return [row["label"] for row in csv.DictReader(f)]


def test_sample_is_small_credited_and_held_out():
    train, test = ROOT / "sample_data" / "reviews_zh.csv", ROOT / "sample_data" / "reviews_zh_test.csv"
    assert train.stat().st_size + test.stat().st_size < 1_000_000
    credits = (ROOT / "sample_data" / "README.md").read_text(encoding="utf-8")
    assert "`reviews_zh.csv`" in credits and "`reviews_zh_test.csv`" in credits and "ChnSentiCorp" in credits

    def texts(path):
        with open(path, encoding="utf-8", newline="") as f:
            return {row["text"] for row in csv.DictReader(f)}

    assert not texts(train) & texts(test)
    assert set(labels_of(test)) == set(labels_of(train))


@pytest.mark.parametrize("case", ["chinese-400-rows", "two-english-lines"])
def test_tokenize_train_shrinks_a_vocabulary_the_text_cannot_support(tmp_path, case):
    if case == "chinese-400-rows":  # the report: 400 rows, --vocab-size 8000
        lines = (ROOT / "sample_data" / "reviews_zh.csv").read_text(encoding="utf-8").splitlines()[:401]
        data, asked = tmp_path / "评论.csv", 8000
        data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    else:
        data, asked = tmp_path / "small.txt", 30000
        data.write_text("hello world\nsecond line\n", encoding="utf-8")
    res = run_albert("tokenize", "train", data.name, "-o", "zh", "--vocab-size", asked, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    supported, said_asked, used = shrink_warning(res.stderr)
    assert said_asked == asked and used == fitting_vocab_size(supported) < asked
    tok = SentencePieceTokenizer.from_file(tmp_path / "zh.model")
    assert tok.vocab_size == used
    assert json.loads((tmp_path / "zh.json").read_text(encoding="utf-8"))["training"]["vocab_size"] == used
    assert f"({used:,} pieces" in res.stderr and f"({asked:,} pieces" not in res.stderr  # the last line too
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([data.name, "zh.json", "zh.model", "zh.vocab"])


def test_finetune_shrinks_an_explicit_vocab_size_as_tokenize_train_does(tmp_path):
    write_two_class_csv(tmp_path)
    tok = run_albert("tokenize", "train", "d.csv", "-o", "spm", "--vocab-size", 30000, "--seed", 42, cwd=tmp_path)
    assert tok.returncode == 0, tok.stderr
    ft = run_albert("finetune", "d.csv", "-o", "m", "--config", "tiny", "--max-steps", "1", "--vocab-size", 30000,
                    "--seed", 42, cwd=tmp_path)
    assert ft.returncode == 0, ft.stderr
    assert shrink_warning(ft.stderr) == shrink_warning(tok.stderr)  # one function decides for both
    config = json.loads((tmp_path / "m" / "assets" / "config.json").read_text())
    assert config["vocab_size"] == shrink_warning(tok.stderr)[2]


def run_line(command: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONIOENCODING="utf-8", TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("ALBERT_DEBUG", None)
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])  # what activate does
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=1800)


@pytest.mark.slow
def test_readme_chinese_quick_start_runs_as_written(tmp_path):
    lines = zh_section()
    assert lines[0].startswith("make quickstart-zh") and command_of(lines[1]) == ". .venv/bin/activate"
    assert "quickstart-zh:" in (ROOT / "Makefile").read_text(encoding="utf-8")
    shutil.copytree(ROOT / "sample_data", tmp_path / "sample_data")
    full = os.environ.get("ALBERT_FULL_QUICKSTART") == "1"
    outputs = []
    for line in lines[2:]:
        command = command_of(line)
        if " finetune " in command and not full:
            command += f" --max-steps {CI_STEPS}"
        res = run_line(command, tmp_path)
        assert res.returncode == 0, (command, res.stderr)
        outputs.append((command, line, res))
    (tok_cmd, _, _), (ft_cmd, _, _), (_, predict_line, predicted), (ev_cmd, _, evaluated) = outputs
    prefix = re.search(r"-o (\S+)", tok_cmd).group(1)
    model_dir = re.search(r"-o (\S+)", ft_cmd).group(1)
    assert f"--tokenizer {prefix}.model" in ft_cmd  # the next line uses the vocabulary the first one made
    made = (tmp_path / f"{prefix}.model").read_bytes()
    assert (tmp_path / model_dir / "assets" / "spiece.model").read_bytes() == made
    train_csv = tmp_path / ft_cmd.split()[2]
    answer = json.loads(predicted.stdout)
    assert answer["label"] in set(labels_of(train_csv)) and 0.5 <= answer["score"] <= 1
    if full:  # the README promises this label for its example sentence
        assert answer["label"] == re.search(r'"label": "(\w+)"', predict_line).group(1)
    test_csv = tmp_path / ev_cmd.split()[-1]
    assert f"{len(labels_of(test_csv))} examples" in evaluated.stdout + evaluated.stderr
    assert "accuracy" in evaluated.stdout
