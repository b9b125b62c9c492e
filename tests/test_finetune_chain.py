"""tokenize -> finetune -> predict -> evaluate through real `albert` subprocesses (tiny models)."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import albert_executable, assert_clean_error, run_albert

TOPICS = {
    "sport": ["football", "match", "goal", "team", "coach", "league", "striker", "season"],
    "money": ["bank", "market", "shares", "profit", "investor", "stocks", "trade", "dollar"],
    "tech": ["software", "computer", "chip", "internet", "startup", "robot", "data", "phone"],
}
FILLER = ["the", "a", "today", "said", "new", "after", "report", "week", "big", "on", "with", "in"]


def make_rows(n: int, seed: int) -> list[tuple[str, str]]:
    """A learnable synthetic topic task: each text mixes topic words with shared filler."""
    rng = np.random.default_rng(seed)
    labels = list(TOPICS)
    rows = []
    for i in range(n):
        label = labels[i % len(labels)]
        words = list(rng.choice(TOPICS[label], 3)) + list(rng.choice(FILLER, int(rng.integers(3, 9))))
        rng.shuffle(words)
        rows.append((" ".join(words).capitalize() + ".", label))
    return rows


def write_csv(path: Path, rows, header=("text", "label")) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


FAST = ["--config", "tiny", "--batch-size", "16", "--learning-rate", "2e-3", "--warmup-ratio", "0.05"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny model trained through `albert tokenize train` + `albert finetune`."""
    d = tmp_path_factory.mktemp("chain")
    train = write_csv(d / "train.csv", make_rows(240, 1))
    dev = write_csv(d / "dev.csv", make_rows(45, 2))
    test = write_csv(d / "test.csv", make_rows(60, 3) + [("A football match report.", "weather")])
    corpus = d / "corpus.txt"
    corpus.write_text("\n".join(t for t, _ in make_rows(400, 4)) + "\n", encoding="utf-8")
    res = run_albert("tokenize", "train", corpus, "-o", d / "spm", "--vocab-size", "60")
    assert res.returncode == 0, res.stderr
    out = d / "model"
    res = run_albert("finetune", train, "--dev", dev, "--tokenizer", d / "spm.model", "-o", out, "--epochs", "6", *FAST)
    assert res.returncode == 0, res.stderr
    return {"dir": d, "model": out, "test": test, "train": train, "dev": dev, "finetune": res}


def test_finetune_writes_model_directory(trained):
    out = trained["model"]
    summary = json.loads(trained["finetune"].stdout.strip().splitlines()[-1])
    assert summary["steps"] == 6 * 15
    assert summary["best_dev"] >= 0.8, summary
    for rel in ["saved_model.pb", "variables", "assets/albert_cli.json", "assets/spiece.model", "assets/spiece.json",
                "assets/config.json", "assets/model.safetensors"]:
        assert (out / rel).exists(), rel
    assert any((out / "logs").rglob("events.out.tfevents*")), "no TensorBoard logs"
    assert not (out / "checkpoints").exists(), "the training state is dropped at commit (--keep-checkpoints keeps it)"
    assert not (out.parent / "model.partial").exists()
    meta = json.loads((out / "assets/albert_cli.json").read_text())
    assert meta["labels"] == ["money", "sport", "tech"]
    assert meta["task"] == "single_label" and meta["normalizer"]["lowercase"] is True
    assert meta["metrics"]["accuracy"] == summary["best_dev"]


def test_predict_stdin_one_line_per_input_with_errors(trained):
    lines = ["Football match and a goal", "", "Bank shares and profit", "Robot chip startup"]
    res = run_albert("predict", trained["model"], "-", input="\n".join(lines) + "\n")
    assert res.returncode == 0, res.stderr
    out = [json.loads(l) for l in res.stdout.splitlines()]
    assert len(out) == len(lines)
    assert out[1] == {"error": "empty line", "line": 2}
    assert [o["label"] for o in (out[0], out[2], out[3])] == ["sport", "money", "tech"]
    assert all(0 < o["score"] <= 1 for o in (out[0], out[2], out[3]))


def test_predict_output_formats(trained, tmp_path):
    f = tmp_path / "in.txt"
    f.write_text("goal for the team\nstocks fell\n", encoding="utf-8")
    tsv = run_albert("predict", trained["model"], f, "--format", "tsv", "--all-scores")
    assert tsv.returncode == 0, tsv.stderr
    rows = [l.split("\t") for l in tsv.stdout.splitlines()]
    assert rows[0] == ["label", "score", "p_money", "p_sport", "p_tech"] and len(rows) == 3
    assert abs(sum(float(x) for x in rows[1][2:]) - 1) < 1e-4
    assert [r[0] for r in rows[1:]] == ["sport", "money"]

    # the other formats in-process (same code path after the model call)
    import io

    from albert_cli.data.readers import read_dataset
    from albert_cli.inference.predict import predict_lines, predict_table
    from albert_cli.inference.saved import SavedModelPredictor as Predictor
    from albert_cli.inference.writers import OutputOptions, Writer

    predictor = Predictor(trained["model"])

    def run(opts, source=f, table=False):
        buf = io.StringIO()
        writer = Writer(predictor.meta, opts, stream=buf)
        if table:
            predict_table(predictor, read_dataset(source, label_column=None), writer)
        else:
            predict_lines(predictor, source, writer)
        return buf.getvalue()

    assert run(OutputOptions("label")).splitlines() == ["sport", "money"]
    rec = json.loads(run(OutputOptions("jsonl", top_k=2)).splitlines()[0])
    assert len(rec["top_k"]) == 2 and rec["top_k"][0]["label"] == rec["label"]
    rows = list(csv.reader(run(OutputOptions("csv"), trained["test"], table=True).splitlines()))
    assert rows[0] == ["label", "score"] and len(rows) == 62  # header + 61 rows


def test_predict_closed_stdout_is_quiet(trained, tmp_path):
    big = tmp_path / "big.txt"
    big.write_text("football goal\n" * 3000, encoding="utf-8")
    cmd = " ".join(albert_executable()) + f" predict {trained['model']} {big} | head -1"
    res = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert len(res.stdout.splitlines()) == 1
    assert "Traceback" not in res.stderr and "Error" not in res.stderr


def test_predict_matches_plain_tensorflow_savedmodel(trained):
    """The SavedModel serves raw text in a Python that never imports albert_cli."""
    texts = ["Football match and a goal", "Bank shares and profit", "robot chip", "the week"]
    code = (
        "import json, sys\n"
        "import tensorflow as tf, tensorflow_text\n"
        f"m = tf.saved_model.load({str(trained['model'])!r})\n"
        "f = m.signatures['serving_default']\n"
        f"out = f(text=tf.constant({texts!r}))\n"
        "assert 'albert_cli' not in sys.modules\n"
        "print(json.dumps({'label': [x.decode() for x in out['label'].numpy()],"
        " 'score': out['score'].numpy().tolist(), 'p': out['probabilities'].numpy().tolist()}))\n"
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    plain = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd="/")
    assert plain.returncode == 0, plain.stderr
    ref = json.loads(plain.stdout.strip().splitlines()[-1])
    res = run_albert("predict", trained["model"], "-", "--all-scores", input="\n".join(texts) + "\n")
    ours = [json.loads(l) for l in res.stdout.splitlines()]
    assert [o["label"] for o in ours] == ref["label"]
    np.testing.assert_allclose([o["score"] for o in ours], ref["score"], atol=1e-5)


def test_evaluate_json_report_and_unseen_label(trained, tmp_path):
    preds = tmp_path / "preds.jsonl"
    report_file = tmp_path / "report.json"
    res = run_albert("evaluate", trained["model"], trained["test"], "--json", "--predictions", preds, "--output", report_file)
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["num_examples"] == 61
    assert report["accuracy"] >= 0.8, report
    assert report["unseen_labels"] == {"weather": 1}
    assert "never saw" in res.stderr
    assert set(report["per_class"]) == {"money", "sport", "tech"}
    assert np.asarray(report["confusion_matrix"]).sum() == 60  # the unseen-label row is not in the matrix
    assert json.loads(report_file.read_text()) == report
    rows = [json.loads(l) for l in preds.read_text().splitlines()]
    assert len(rows) == 61 and rows[0]["row"] == 1 and "gold" in rows[0]
    tables = run_albert("evaluate", trained["model"], trained["test"])
    assert tables.returncode == 0 and "confusion matrix" in tables.stdout and "accuracy" in tables.stdout


def test_finetune_init_from_own_model_continues(trained, tmp_path):
    out = tmp_path / "again"
    res = run_albert("finetune", trained["train"], "--init", trained["model"], "-o", out, "--max-steps", "3",
                     "--batch-size", "16")
    assert res.returncode == 0, res.stderr
    assert "classifier head" in res.stderr
    ev = run_albert("evaluate", out, trained["test"], "--json")
    assert json.loads(ev.stdout)["accuracy"] >= 0.8  # 3 tiny steps at 3e-5 keep what was learnt


def test_existing_output_refused_then_overwrite(trained, tmp_path):
    res = run_albert("finetune", trained["train"], "-o", trained["model"], *FAST)
    assert_clean_error(res, 2, "exists", "--overwrite")
    assert (trained["model"] / "saved_model.pb").exists()


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--batch-size", "-4"], "--batch-size"),
        (["--max-seq-length", "0"], "--max-seq-length"),
        (["--learning-rate", "0"], "--learning-rate"),
        (["--max-seq-length", "100000"], "--max-seq-length"),
        (["--dev-split", "0.1", "--dev", "x.csv"], "either --dev or --dev-split"),
    ],
)
def test_out_of_range_options(trained, tmp_path, args, needle):
    res = run_albert("finetune", trained["train"], "-o", tmp_path / "m", *args)
    assert_clean_error(res, 2, needle)
    assert not (tmp_path / "m").exists() and not (tmp_path / "m.partial").exists()


def test_single_class_refused(tmp_path):
    f = write_csv(tmp_path / "one.csv", [("a text", "x"), ("another", "x")])
    res = run_albert("finetune", f, "-o", tmp_path / "m")
    assert_clean_error(res, 1, "one.csv", "only 1 class")
    assert not (tmp_path / "m").exists()


def test_interrupt_saves_checkpoint_and_resume_finishes(tmp_path):
    train = write_csv(tmp_path / "train.csv", make_rows(240, 5))
    out = tmp_path / "m"
    args = [str(train), "-o", str(out), "--epochs", "4", "--save-every", "3", "--vocab-size", "60", *FAST]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.Popen(albert_executable() + ["finetune", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    ckpts = tmp_path / "m.partial" / "checkpoints"
    deadline = time.time() + 240
    while time.time() < deadline and not list(ckpts.glob("ckpt-*.json")) and proc.poll() is None:
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()[1]
    assert list(ckpts.glob("ckpt-*.json")), "no checkpoint appeared"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "--resume" in err
    assert not out.exists(), "an interrupted run must not leave OUT"
    saved = max(int(p.stem.split("-")[1]) for p in ckpts.glob("ckpt-*.json"))
    assert saved < 60
    res = run_albert("finetune", *args, "--resume")
    assert res.returncode == 0, res.stderr
    assert f"resumed at step {saved}" in res.stderr
    assert json.loads(res.stdout.splitlines()[-1])["steps"] == 60
    assert (out / "saved_model.pb").exists() and not (tmp_path / "m.partial").exists()


def test_pair_classification(tmp_path):
    rng = np.random.default_rng(7)
    rows = []
    base = make_rows(200, 8)
    for i, (t, y) in enumerate(base):
        other, y2 = base[int(rng.integers(len(base)))]
        rows.append((t, other, "same" if y == y2 else "different"))
    train = write_csv(tmp_path / "pairs.csv", rows, header=("premise", "hypothesis", "label"))
    out = tmp_path / "pair"
    res = run_albert("finetune", train, "--text-column", "premise", "--text-pair-column", "hypothesis", "-o", out,
                     "--max-steps", "4", "--vocab-size", "60", *FAST)
    assert res.returncode == 0, res.stderr
    meta = json.loads((out / "assets/albert_cli.json").read_text())
    assert meta["pair"] is True and meta["columns"]["text_pair"] == "hypothesis"
    pred = run_albert("predict", out, train, "--format", "label")
    assert pred.returncode == 0, pred.stderr
    assert set(pred.stdout.split()) <= {"same", "different"} and len(pred.stdout.split()) == 200
    txt = run_albert("predict", out, "-", input="just one text\n")
    assert_clean_error(txt, 2, "pair")


def test_multi_label_thresholds_and_regression(tmp_path):
    rows = make_rows(180, 9)
    recs = []
    for i, (t, y) in enumerate(rows):
        labels = [y] + (["long"] if len(t.split()) > 7 else [])
        recs.append(json.dumps({"text": t, "label": labels}))
    (tmp_path / "ml.jsonl").write_text("\n".join(recs[:150]) + "\n", encoding="utf-8")
    (tmp_path / "ml_dev.jsonl").write_text("\n".join(recs[150:]) + "\n", encoding="utf-8")
    out = tmp_path / "ml"
    res = run_albert("finetune", tmp_path / "ml.jsonl", "--multi-label", "--dev", tmp_path / "ml_dev.jsonl", "-o", out,
                     "--epochs", "2", "--vocab-size", "60", *FAST)
    assert res.returncode == 0, res.stderr
    meta = json.loads((out / "assets/albert_cli.json").read_text())
    assert meta["task"] == "multi_label" and len(meta["thresholds"]) == 4
    from albert_cli.inference.saved import SavedModelPredictor as Predictor
    from albert_cli.inference.writers import OutputOptions, format_rows

    predictor = Predictor(out)
    rec = format_rows(predictor.meta, predictor.predict(["football goal team and a long long report today"]),
                      OutputOptions(all_scores=True))[0]
    assert isinstance(rec["labels"], list) and set(rec["probabilities"]) == {"long", "money", "sport", "tech"}
    assert rec["label"] == "|".join(rec["labels"])
    ev = run_albert("evaluate", out, tmp_path / "ml_dev.jsonl", "--json")
    assert ev.returncode == 0, ev.stderr
    assert {"subset_accuracy", "micro_f1", "macro_f1"} <= set(json.loads(ev.stdout))

    reg = write_csv(tmp_path / "reg.csv", [(t, str(len(t.split()))) for t, _ in rows], header=("text", "score"))
    rout = tmp_path / "reg"
    res = run_albert("finetune", reg, "--task", "regression", "--label-column", "score", "-o", rout,
                     "--max-steps", "4", "--vocab-size", "60", *FAST)
    assert res.returncode == 0, res.stderr
    assert Predictor(rout).predict(["a short one"])["value"].shape == (1,)
    ev = run_albert("evaluate", rout, reg, "--json")
    assert {"mse", "pearson", "spearman"} <= set(json.loads(ev.stdout))


def test_init_from_wordpiece_checkpoint(tmp_path):
    """Chinese ALBERT releases use a WordPiece vocab.txt: finetune follows it, in Python and in the graph."""
    import shutil

    from albert_cli.model.backbone import AlbertBackbone
    from albert_cli.model.config import AlbertConfig
    from albert_cli.text.wordpiece import WordPieceTokenizer
    from albert_cli.weights import save_hf_dir
    from conftest import FIXTURES

    ckpt = tmp_path / "zh-albert"
    config = AlbertConfig(vocab_size=2500, embedding_size=16, hidden_size=32, num_hidden_layers=1,
                          num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
    save_hf_dir(AlbertBackbone(config), ckpt)
    shutil.copyfile(FIXTURES / "wordpiece" / "vocab.txt", ckpt / "vocab.txt")
    rows = [("这家酒店的服务很好", "pos"), ("房间很干净", "pos"), ("服务太差了", "neg"), ("不推荐", "neg")] * 10
    train = write_csv(tmp_path / "zh.csv", rows)
    out = tmp_path / "zh-model"
    res = run_albert("finetune", train, "--init", ckpt, "-o", out, "--max-steps", "3", "--batch-size", "8")
    assert res.returncode == 0, res.stderr
    meta = json.loads((out / "assets/albert_cli.json").read_text())
    assert meta["tokenizer"] == {"kind": "wordpiece", "file": "vocab.txt"}
    assert (out / "assets/vocab.txt").is_file()

    from albert_cli.inference.saved import SavedModelPredictor as Predictor

    predictor = Predictor(out)
    texts = ["服务很好", "Hello 世界"]
    served = predictor.predict(texts)
    assert set(l.decode() for l in served["label"]) <= {"pos", "neg"}
    # the graph's tokenizer gives the Python WordPiece ids
    wp = WordPieceTokenizer.from_file(out / "assets/vocab.txt")
    import tensorflow as tf

    ids = predictor._loaded.signatures["classify_ids"]
    packed = [[wp.cls_id, *wp.encode(t), wp.sep_id] for t in texts]
    width = max(map(len, packed))
    token_ids = tf.constant([p + [0] * (width - len(p)) for p in packed], tf.int32)
    mask = tf.cast(token_ids != 0, tf.int32)
    direct = ids(token_ids=token_ids, segment_ids=tf.zeros_like(token_ids), padding_mask=mask)
    np.testing.assert_allclose(direct["probabilities"].numpy(), served["probabilities"], atol=1e-5)
