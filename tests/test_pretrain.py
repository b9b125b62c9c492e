"""`albert pretrain` end to end (real subprocesses, tiny config, a few dozen steps)."""

from __future__ import annotations

import json
import importlib.util
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import albert_executable, assert_clean_error, run_albert

STEPS, HALF = 12, 6
# Shared by every run: tiny shapes, one LR schedule (decay over STEPS), warm-up 2.
COMMON = ["--config", "tiny", "--max-seq-length", "32", "--max-predictions-per-seq", "5", "--batch-size", "8",
          "--learning-rate", "5e-3", "--warmup-steps", "2", "--log-every", "1", "--seed", "7"]


def make_corpus(path: Path, docs: int = 40, sentences: int = 5, seed: int = 0) -> Path:
    """A highly repetitive corpus (made-up nouns, ten verbs, one sentence pattern)."""
    rng = random.Random(seed)
    syllables = ["ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "be", "da", "fu", "go", "hi", "ju", "pe", "zo"]
    nouns = ["".join(rng.choice(syllables) for _ in range(rng.randint(2, 3))) for _ in range(60)]
    verbs = ["sees", "likes", "finds", "takes", "wants", "makes", "reads", "builds", "paints", "opens"]
    lines = []
    for _ in range(docs):
        topic = rng.sample(nouns, 4)
        for s in range(sentences):
            lines.append(f"the {topic[s % 4]} {rng.choice(verbs)} a {rng.choice(nouns)} "
                         f"and the {rng.choice(topic)} {rng.choice(verbs)} it .")
        lines.append("")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def read_log(out: Path) -> dict[int, dict]:
    rows = [json.loads(line) for line in (out / "logs" / "train.jsonl").read_text().splitlines()]
    return {r["step"]: r for r in rows}


def final_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def load_safetensors(path: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(path / "model.safetensors"))


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """Corpus + a tokenizer trained with `albert tokenize train`."""
    d = tmp_path_factory.mktemp("pretrain")
    make_corpus(d / "corpus.txt")
    res = run_albert("tokenize", "train", d / "corpus.txt", "-o", d / "spm", "--vocab-size", "80")
    assert res.returncode == 0, res.stderr
    return d


@pytest.fixture(scope="module")
def jax_run(work):
    """The JAX run starts early (in the background) and is collected by its test."""
    if importlib.util.find_spec("jax") is None:
        yield None
        return
    env = dict(os.environ, KERAS_BACKEND="jax", ALBERT_ASSERT_NO_TF="1", TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("ALBERT_DEBUG", None)
    proc = subprocess.Popen(
        albert_executable() + ["pretrain", str(work / "corpus.txt"), "--tokenizer", str(work / "spm.model"),
                               "-o", str(work / "out_jax"), "--max-steps", "8", *COMMON],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    yield proc
    if proc.poll() is None:
        proc.kill()


@pytest.fixture(scope="module")
def full_run(work, jax_run) -> Path:
    """One uninterrupted run of STEPS steps (also exports the Google checkpoint)."""
    out = work / "out_full"
    res = run_albert("pretrain", work / "corpus.txt", "--tokenizer", work / "spm.model", "-o", out,
                     "--max-steps", STEPS, "--deterministic", "--export-google", *COMMON)
    assert res.returncode == 0, res.stderr
    summary = final_json(res.stdout)
    assert summary["steps"] == STEPS
    return out


def test_output_is_an_hf_pretraining_directory(full_run):
    out = full_run
    for name in ("config.json", "model.safetensors", "spiece.model", "spiece.json", "albert_pretrain.json",
                 "tokenizer_config.json"):
        assert (out / name).is_file(), name
    assert any((out / "checkpoints").glob("ckpt-*.safetensors"))
    assert any((out / "logs" / "train").glob("events.out.tfevents.*"))  # TensorBoard
    assert not Path(str(out) + ".partial").exists()
    hf = json.loads((out / "config.json").read_text())
    assert hf["architectures"] == ["AlbertForPreTraining"]
    names = set(load_safetensors(out))
    assert "predictions.bias" in names and "sop_classifier.classifier.weight" in names
    meta = json.loads((out / "albert_pretrain.json").read_text())
    assert meta["steps"] == STEPS and meta["options"]["max_seq_length"] == 32 and meta["tokens"] > 0
    log = read_log(out)
    assert sorted(log) == list(range(1, STEPS + 1))
    for key in ("mlm_loss", "mlm_accuracy", "sop_loss", "sop_accuracy", "learning_rate", "tokens_per_second"):
        assert np.isfinite(log[STEPS][key]), key
    assert log[1]["learning_rate"] < log[2]["learning_rate"]  # warm-up
    assert log[STEPS]["learning_rate"] < log[3]["learning_rate"]  # decay


def test_resume_equals_uninterrupted_run(work, full_run):
    out = work / "out_resumed"
    args = ["pretrain", work / "corpus.txt", "--tokenizer", work / "spm.model", "-o", out, "--deterministic",
            "--decay-steps", STEPS, *COMMON]
    first = run_albert(*args, "--max-steps", HALF)
    assert first.returncode == 0, first.stderr
    assert final_json(first.stdout)["steps"] == HALF
    second = run_albert(*args, "--max-steps", STEPS, "--resume")
    assert second.returncode == 0, second.stderr
    summary = final_json(second.stdout)
    assert summary["steps"] == STEPS and summary["steps_this_run"] == STEPS - HALF

    resumed, straight = read_log(out), read_log(full_run)
    assert sorted(resumed) == list(range(1, STEPS + 1))  # the log continues
    for key in ("loss", "mlm_loss", "sop_loss", "learning_rate"):
        assert resumed[HALF + 1][key] == pytest.approx(straight[HALF + 1][key], rel=1e-4, abs=1e-5), key
    a, b = load_safetensors(out), load_safetensors(full_run)
    assert set(a) == set(b)
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=1e-4, atol=1e-5, err_msg=name)


def test_sigint_saves_a_checkpoint_then_resume_finishes(work):
    out = work / "out_sigint"
    partial = Path(str(out) + ".partial")
    args = [str(work / "corpus.txt"), "--tokenizer", str(work / "spm.model"), "-o", str(out), *COMMON]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("ALBERT_DEBUG", None)
    proc = subprocess.Popen(albert_executable() + ["pretrain", *args, "--max-steps", "100000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    log = partial / "logs" / "train.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if log.is_file() and len(log.read_text().splitlines()) >= 3:
            break
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()[1]
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert "--resume" in err
    ckpts = sorted(partial.glob("checkpoints/ckpt-*.json"))
    assert ckpts, "no checkpoint written on SIGINT"
    saved = json.loads(ckpts[-1].read_text())["step"]
    assert saved >= 3
    assert not out.exists()

    res = run_albert("pretrain", *args, "--resume", "--max-steps", saved + 2)
    assert res.returncode == 0, res.stderr
    assert final_json(res.stdout)["steps"] == saved + 2
    assert (out / "model.safetensors").is_file() and not partial.exists()


def test_google_export_round_trips(full_run):
    pytest.importorskip("tensorflow")
    from albert_cli.model.backbone import AlbertBackbone
    from albert_cli.model.heads import AlbertPretrainer
    from albert_cli.weights import apply_to, load_pretrained

    google, hf = load_pretrained(full_run / "google"), load_pretrained(full_run)
    assert google.format == "google" and hf.format == "hf"
    # same architecture ("gelu" in Google's config is HF's "gelu_new": both the tanh GELU)
    assert {**google.config.to_dict(), "hidden_act": ""} == {**hf.config.to_dict(), "hidden_act": ""}
    assert (full_run / "google" / "checkpoint").read_text().startswith('model_checkpoint_path: "model.ckpt"')
    outputs = []
    for loaded in (google, hf):
        model = AlbertPretrainer(AlbertBackbone(loaded.config))
        apply_to(model, loaded)
        outputs.append(model(_inputs(), training=False))
    for key in ("mlm_logits", "sop_logits"):
        np.testing.assert_allclose(np.asarray(outputs[0][key]), np.asarray(outputs[1][key]), rtol=1e-5, atol=1e-5)


def _inputs(batch: int = 2, seq: int = 16) -> dict:
    rng = np.random.default_rng(0)
    return {
        "token_ids": rng.integers(5, 80, size=(batch, seq)).astype("int32"),
        "segment_ids": np.zeros((batch, seq), "int32"),
        "padding_mask": np.ones((batch, seq), "int32"),
        "mask_positions": np.tile(np.arange(3, dtype="int32"), (batch, 1)),
    }


def test_jax_path_never_imports_tensorflow_and_loads_on_tf(work, jax_run):
    if jax_run is None:
        pytest.skip("jax is not installed")
    _, err = jax_run.communicate(timeout=300)
    assert jax_run.returncode == 0, err
    out = work / "out_jax"
    log = read_log(out)
    assert sorted(log) == list(range(1, 9)) and all(np.isfinite(r["loss"]) for r in log.values())
    assert not (out / "logs" / "train").exists()  # no TensorBoard on JAX
    meta = json.loads((out / "albert_pretrain.json").read_text())
    assert meta["backend"] == "jax" and meta["steps"] == 8

    pytest.importorskip("tensorflow")
    from albert_cli.model.backbone import AlbertBackbone
    from albert_cli.model.heads import AlbertPretrainer
    from albert_cli.weights import apply_to, load_pretrained

    loaded = load_pretrained(out)
    assert loaded.heads == {"mlm", "sop"}
    model = AlbertPretrainer(AlbertBackbone(loaded.config))
    apply_to(model, loaded)
    logits = np.asarray(model(_inputs(), training=False)["mlm_logits"])
    assert np.isfinite(logits).all()


def test_pretrain_init_continues_from_output(work, full_run):
    out = work / "out_init"
    res = run_albert("pretrain", work / "corpus.txt", "-o", out, "--init", full_run, "--max-steps", "2",
                     *[a for a in COMMON if a not in ("--config", "tiny")])
    assert res.returncode == 0, res.stderr
    first = read_log(out)[1]["mlm_loss"]
    assert first < read_log(full_run)[1]["mlm_loss"]  # starts from the trained weights
    assert (out / "spiece.model").read_bytes() == (full_run / "spiece.model").read_bytes()


def test_finetune_accepts_the_output(work, full_run):
    rows = ["text,label"] + [f"the {w} sees a {w} and it is {lab} .,{lab}" for w in ("kalo", "mine", "sati", "vobe")
                             for lab in ("good", "bad")] * 4
    data = work / "labelled.csv"
    data.write_text("\n".join(rows) + "\n")
    res = run_albert("finetune", data, "-o", work / "clf", "--init", full_run, "--max-steps", "2",
                     "--max-seq-length", "32", "--batch-size", "8")
    assert res.returncode == 0, res.stderr
    assert (work / "clf" / "saved_model.pb").is_file()


@pytest.mark.parametrize(
    "case",
    ["missing_tokenizer", "missing_corpus", "zero_seq_length", "existing_output"],
)
def test_bad_inputs_give_clean_errors(work, case, tmp_path):
    corpus, spm, out = work / "corpus.txt", work / "spm.model", tmp_path / "out"
    if case == "missing_tokenizer":
        res = run_albert("pretrain", corpus, "--tokenizer", tmp_path / "nope.model", "-o", out)
        assert_clean_error(res, 1, "nope.model")
    elif case == "missing_corpus":
        res = run_albert("pretrain", tmp_path / "nope.txt", "--tokenizer", spm, "-o", out)
        assert_clean_error(res, 1, "nope.txt")
    elif case == "zero_seq_length":
        res = run_albert("pretrain", corpus, "--tokenizer", spm, "-o", out, "--max-seq-length", "0")
        assert_clean_error(res, 2, "--max-seq-length")
    else:
        out.mkdir()
        (out / "keep.txt").write_text("x")
        res = run_albert("pretrain", corpus, "--tokenizer", spm, "-o", out)
        assert_clean_error(res, 2, "--overwrite")
        assert (out / "keep.txt").read_text() == "x"
    assert "tensorflow" not in res.stderr.lower()
