"""Issue 22: every option works for the output at hand or is refused with one line, and the small visible
things (usage metavars, --input-format, unwritable outputs, UTF-8 JSON, help texts), through real `albert`
subprocesses.

Three tiny models are trained once for the module (two at a time): a pair classifier from scratch (mean pooling,
whose tanh pooler is never trained) written to a non-ASCII directory, a pretraining run (non-ASCII directory too)
and a regression model fine-tuned from it with mean pooling (its pooler was trained by sentence order).
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import FIXTURES, assert_clean_error, run_albert, write_csv, write_two_class_csv

WORDS = {"pos": "good fine nice", "neg": "bad poor awful", "mid": "meh okay plain"}
FAST = ["--config", "tiny", "--batch-size", "8", "--max-steps", "2"]


def _pair_rows(n: int = 60) -> list[tuple[str, str, str]]:
    labels = list(WORDS)
    return [(f"{WORDS[labels[i % 3]]} item {i % 7}", f"{WORDS[labels[(i // 3) % 3]]} thing {i % 5}", labels[i % 3])
            for i in range(n)]


def _corpus(path: Path) -> Path:
    lines = []
    for d in range(12):
        lines += [" ".join(["ka", "lo", "mi", "ne", "ru", "sa"][(d + s) % 6] for s in range(7)) + " ." for _ in range(4)]
        lines.append("")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("options")
    pairs = write_csv(d / "pairs.csv", ("premise", "hypothesis", "label"), _pair_rows())
    reg = write_csv(d / "reg.csv", ("text", "score"), [(p, i % 4) for i, (p, _, _) in enumerate(_pair_rows())])
    out = {"dir": d, "pairs": pairs, "reg": reg, "pair_model": d / "情感模型", "pretrained": d / "预训练",
           "reg_model": d / "reg-model"}

    def pair_model():
        return [run_albert("finetune", pairs, "--text-column", "premise", "--text-pair-column", "hypothesis",
                           "-o", out["pair_model"], "--vocab-size", "60", *FAST)]

    def pretrained_then_regression():
        res = run_albert("tokenize", "train", _corpus(d / "corpus.txt"), "-o", d / "spm", "--vocab-size", "30")
        pre = run_albert("pretrain", d / "corpus.txt", "--tokenizer", d / "spm.model", "-o", out["pretrained"],
                         "--config", "tiny", "--max-seq-length", "32", "--max-predictions-per-seq", "5",
                         "--batch-size", "8", "--max-steps", "1")
        if pre.returncode != 0:
            return [res, pre]
        return [res, pre, run_albert("finetune", reg, "--task", "regression", "--label-column", "score",
                                     "--init", out["pretrained"], "--pooling", "mean", "-o", out["reg_model"],
                                     "--batch-size", "8", "--max-steps", "1")]

    with ThreadPoolExecutor(2) as pool:
        jobs = [pool.submit(pair_model), pool.submit(pretrained_then_regression)]
        results = [r for job in jobs for r in job.result()]
    for res in results:
        assert res.returncode == 0, res.stderr
    out["finetune_stdout"], out["pretrain_stdout"] = results[0].stdout, results[2].stdout
    return out


def _jsonl(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines()]


@pytest.fixture(scope="module")
def table_records(models):
    """The pair model's jsonl records for pairs.csv (its two columns), every label ranked in "top_k"."""
    labels = json.loads((models["pair_model"] / "assets" / "albert_cli.json").read_text(encoding="utf-8"))["labels"]
    res = run_albert("predict", models["pair_model"], models["pairs"], "--top-k", len(labels))
    assert res.returncode == 0, res.stderr
    records = _jsonl(res.stdout)
    assert all(len(r["top_k"]) == len(labels) for r in records)
    return records


# ------------------------------------------------------------------ item 4: predict
def test_pair_model_reads_tab_separated_lines_from_stdin(models, table_records):
    rows = _pair_rows()[:6]
    lines = [f"{p}\t{h}" for p, h, _ in rows] + ["no tab at all", "a\tb\tc", "text\t "]
    res = run_albert("predict", models["pair_model"], "-", input="\n".join(lines) + "\n")
    assert res.returncode == 0, res.stderr
    got = _jsonl(res.stdout)
    assert len(got) == len(lines)  # one record per line, in order
    for a, b in zip(got, table_records[:6]):
        assert a["label"] == b["label"] and a["score"] == pytest.approx(b["score"], abs=1e-5)
    assert [r["line"] for r in got[6:]] == [7, 8, 9]
    assert "no tab" in got[6]["error"] and "3 tab-separated fields" in got[7]["error"]
    assert "empty pair" in got[8]["error"]


def test_pair_model_says_how_to_give_pairs_as_plain_text(models, tmp_path):
    """Single texts piped into a pair model: one line with the command that works, not an error per line."""
    res = run_albert("predict", models["pair_model"], "-", input="just one text\nanother\n")
    assert_clean_error(res, 2, "line 1", "no tab", "TEXT<TAB>PAIR", "try: ")
    assert res.stdout == ""
    suggested = res.stderr.split("try: ", 1)[1].strip()  # the command it names works, as written
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    ran = subprocess.run(["bash", "-c", suggested], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert ran.returncode == 0, ran.stderr
    assert set(json.loads(ran.stdout)) >= {"label", "score"}


def test_pair_model_reads_tab_separated_lines_from_text_files(models, table_records, tmp_path):
    """A .txt file of TEXT<TAB>PAIR lines: predict streams it, evaluate reads fastText labels in front."""
    rows = _pair_rows()[:9]
    plain = tmp_path / "pairs.txt"
    plain.write_text("".join(f"{p}\t{h}\n" for p, h, _ in rows), encoding="utf-8")
    res = run_albert("predict", models["pair_model"], plain, "--format", "label")
    assert res.returncode == 0, res.stderr
    expected = [r["label"] for r in table_records[:9]]
    assert res.stdout.split() == expected
    labelled = tmp_path / "labelled.txt"
    labelled.write_text("".join(f"__label__{y} {p}\t{h}\n" for p, h, y in rows), encoding="utf-8")
    ev = run_albert("evaluate", models["pair_model"], labelled, "--json")
    assert ev.returncode == 0, ev.stderr
    assert json.loads(ev.stdout)["num_examples"] == len(rows)
    assert json.loads(ev.stdout)["accuracy"] == pytest.approx(sum(e == y for e, (_, _, y) in zip(expected, rows)) / 9)


@pytest.mark.parametrize("fmt,extra", [("tsv", 0), ("csv", 5)])  # csv: K above the labels, cut to them
def test_top_k_columns_in_tables(models, table_records, fmt, extra):
    """`--top-k` in tsv/csv gives the same K labels and scores as jsonl's "top_k"."""
    shown = len(table_records[0]["top_k"]) - 1 + (1 if extra else 0)
    table = run_albert("predict", models["pair_model"], models["pairs"], "--format", fmt, "--top-k", shown + extra)
    assert table.returncode == 0, table.stderr
    rows = list(csv.reader(table.stdout.splitlines(), delimiter="\t" if fmt == "tsv" else ","))
    assert rows[0][2:] == [f"top{i}_{f}" for i in range(1, shown + 1) for f in ("label", "score")]
    assert len(rows) == len(table_records) + 1
    for row, rec in zip(rows[1:], table_records):
        assert row[2::2] == [t["label"] for t in rec["top_k"][:shown]]
        assert [float(x) for x in row[3::2]] == pytest.approx([t["score"] for t in rec["top_k"][:shown]], abs=1e-6)


REFUSED = [
    # model, extra args, needles
    ("pair_model", ["--format", "label", "--all-scores"], ["--all-scores", "--format label"]),
    ("pair_model", ["--format", "label", "--top-k", "2"], ["--top-k", "--format label"]),
    ("pair_model", ["--threshold", "0.5"], ["--threshold", "multi-label"]),
    ("pair_model", ["-", "--text-column", "premise"], ["--text-column", "plain text", "TEXT<TAB>PAIR"]),
    ("pair_model", ["-", "--skip-bad-rows"], ["--skip-bad-rows", "plain-text", "error record"]),
    ("reg_model", ["--all-scores"], ["--all-scores", "regression"]),
    ("reg_model", ["--top-k", "3"], ["--top-k", "regression"]),
    ("reg_model", ["--format", "tsv", "--all-scores"], ["--all-scores", "regression"]),
    ("reg_model", ["--text-pair-column", "score"], ["--text-pair-column", "single texts"]),
]


@pytest.mark.parametrize("case", REFUSED, ids=[" ".join(c[1]) + f" ({c[0]})" for c in REFUSED])
def test_predict_refuses_options_it_would_ignore(models, case):
    model, extra, needles = case
    data = [] if "-" in extra else [models["pairs" if model == "pair_model" else "reg"]]
    res = run_albert("predict", models[model], *data, *extra, input="a\tb\n")
    assert_clean_error(res, 2, *needles)
    assert res.stdout == ""


def test_evaluate_refuses_options_it_would_ignore(models):
    res = run_albert("evaluate", models["pair_model"], models["pairs"], "--threshold", "0.5")
    assert_clean_error(res, 2, "--threshold", "multi-label")
    res = run_albert("evaluate", models["reg_model"], models["reg"], "--text-pair-column", "text")
    assert_clean_error(res, 2, "--text-pair-column", "single texts")


# ------------------------------------------------------------------ item 4: embed
def test_embed_refuses_an_untrained_pooler(models):
    for pooling in ("pooler", "cls"):
        res = run_albert("embed", models["pair_model"], "--pooling", pooling, input="good fine\nbad poor\n")
        assert_clean_error(res, 2, f"--pooling {pooling}", "never trained", "--pooling mean")
    default = run_albert("embed", models["pair_model"], input="good fine\nbad poor\n")
    assert default.returncode == 0, default.stderr
    assert len(_jsonl(default.stdout)) == 2


def test_embed_keeps_a_pooler_trained_by_pretraining(models):
    """Mean-pooled too, but fine-tuned from a pretraining run: sentence order trained its pooler."""
    meta = json.loads((models["reg_model"] / "assets" / "albert_cli.json").read_text(encoding="utf-8"))
    assert meta["pooling"] == "mean"
    res = run_albert("embed", models["reg_model"], "--pooling", "pooler", input="ka lo mi\nne ru sa\n")
    assert res.returncode == 0, res.stderr
    assert len(_jsonl(res.stdout)) == 2


def test_pooler_trained_follows_the_model_history(models):
    from albert_cli.artifacts.modeldir import ModelMeta, open_model_dir
    from albert_cli.inference.embed import pooler_trained

    scratch = open_model_dir(models["pair_model"])[1]
    assert not pooler_trained(scratch)
    assert pooler_trained(open_model_dir(models["reg_model"])[1])

    def mean(**training):
        return ModelMeta(task="single_label", labels=["a", "b"], normalizer={}, max_seq_length=16, pooling="mean",
                         training=training)

    assert pooler_trained(mean(tapt_steps=10))  # TAPT runs sentence order on the task's texts
    assert not pooler_trained(mean(init=str(models["pair_model"])))  # continued from an untrained pooler
    assert pooler_trained(mean(init=str(models["reg_model"])))
    assert pooler_trained(mean(init=str(models["pretrained"])))  # a pretraining run (HF directory)


# ------------------------------------------------------------------ item 5
def _commands():
    import typer.main

    from albert_cli.cli import app

    root = typer.main.get_command(app)
    for name, cmd in root.commands.items():
        for sub_name, sub in getattr(cmd, "commands", {name: cmd}).items():
            yield ([name] if sub is cmd else [name, sub_name]), sub


def test_usage_names_arguments_in_capitals():
    commands = list(_commands())
    assert len(commands) >= 8
    for words, cmd in commands:
        res = run_albert(*words, "--help")
        assert res.returncode == 0, res.stderr
        usage = res.stdout.splitlines()[0]
        assert "{" not in usage and "}" not in usage, usage
        for param in cmd.params:
            if param.param_type_name == "argument":
                assert param.name.upper() in usage, (usage, param.name)


def test_format_means_output_and_input_format_means_input():
    """One meaning per name: --input-format wherever the option names the input, --format only for outputs."""
    for words, cmd in _commands():
        names = {opt: p for p in cmd.params for opt in getattr(p, "opts", [])}
        reads_formats = any("input format" in (p.help or "").lower() for p in cmd.params if not p.hidden)
        if reads_formats:
            assert "--input-format" in names, words
        if "--format" in names and not names["--format"].hidden:
            assert "input" not in (names["--format"].help or "").lower(), words
    res = run_albert("finetune", "--help")
    assert "--input-format" in res.stdout and not re.search(r"--format\b", res.stdout)


def test_old_format_spelling_still_reads_input_with_a_warning(tmp_path):
    res = run_albert("finetune", "-", "--format", "csv", "-o", tmp_path / "out", input="text,label\n")
    assert_clean_error(res, 1, "<stdin>", "header only")  # read as CSV, as before
    warnings = [line for line in res.stderr.splitlines() if "warning:" in line]
    assert len(warnings) == 1 and "--input-format csv" in warnings[0]
    corpus = tmp_path / "c.data"
    corpus.write_text("text\n" + "".join(f"hello world number {i}\n" for i in range(40)), encoding="utf-8")
    tok = run_albert("tokenize", "train", corpus, "--format", "csv", "-o", tmp_path / "spm", "--vocab-size", "50")
    assert tok.returncode == 0, tok.stderr
    assert "--input-format csv" in tok.stderr and (tmp_path / "spm.model").is_file()
    both = run_albert("finetune", "-", "--format", "csv", "--input-format", "tsv", "-o", tmp_path / "o2", input="x")
    assert_clean_error(both, 2, "--input-format")


def test_unknown_input_format_names_the_option(tmp_path):
    res = run_albert("finetune", write_two_class_csv(tmp_path), "--input-format", "xml", "-o", tmp_path / "out")
    assert_clean_error(res, 2, "--input-format", "xml")


def _unwritable() -> Path:
    """A directory that even root cannot create files in (/proc), or skip."""
    proc = Path("/proc")
    try:
        os.mkdir(proc / "albert-probe")
    except OSError:
        return proc
    os.rmdir(proc / "albert-probe")
    pytest.skip("no directory here refuses new files")


def test_unwritable_output_is_one_usage_line(models, tmp_path):
    target = _unwritable() / "nope"
    train = write_two_class_csv(tmp_path)
    runs = [
        ("finetune", train, "-o", target),
        ("tokenize", "train", train, "-o", target, "--vocab-size", "30"),
        ("pretrain", _corpus(tmp_path / "corpus.txt"), "--tokenizer", FIXTURES / "spm" / "tiny.model", "-o", target),
        ("export", models["pair_model"], "-o", target),
        ("evaluate", models["pair_model"], models["pairs"], "--output", target),
        ("evaluate", models["pair_model"], models["pairs"], "--predictions", target),
    ]
    for args in runs:
        res = run_albert(*args)
        assert_clean_error(res, 2, str(target), "cannot write")


def test_max_seq_length_message_says_the_number(tmp_path):
    """Before the model is known, the bounds; once it is (embed), the model's own number of positions."""
    from albert_cli.text.preprocessor import MAX_SEQUENCE_LENGTH, MIN_SEQUENCE_LENGTH

    res = run_albert("finetune", write_two_class_csv(tmp_path), "-o", tmp_path / "m", "--max-seq-length", 100000)
    assert_clean_error(res, 2, "--max-seq-length", f"between {MIN_SEQUENCE_LENGTH} and {MAX_SEQUENCE_LENGTH}", "100000")
    hf = FIXTURES / "embed_albert" / "hf"
    positions = json.loads((hf / "config.json").read_text(encoding="utf-8"))["max_position_embeddings"]
    res = run_albert("embed", hf, "--max-seq-length", 100000, input="a text\n")
    assert_clean_error(res, 2, "--max-seq-length", "100000", f"model's {positions} positions")


def test_json_summaries_are_utf8(models):
    for stdout, path in ((models["finetune_stdout"], models["pair_model"]),
                         (models["pretrain_stdout"], models["pretrained"])):
        line = stdout.strip().splitlines()[-1]
        assert "\\u" not in line and path.name in line
        assert json.loads(line)["output"] == str(path)


def test_evaluate_help_lists_every_regression_metric():
    from albert_cli.metrics import regression_metrics

    res = run_albert("evaluate", "--help")
    text = " ".join(res.stdout.replace("-\n", "-").split())
    start = text.index("regression:")
    regression = text[start:text.index(")", start)]
    for name in regression_metrics([1.0, 2.0, 3.0], [1.0, 2.5, 2.0]):
        assert name.upper() in regression.upper(), name
