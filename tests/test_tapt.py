"""`albert finetune --tapt-steps`: task-adaptive pretraining (MLM + SOP) before fine-tuning.

Real `albert` subprocesses with a tiny model; independent runs go in parallel.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import Result, albert_executable, assert_clean_error, run_albert
from test_finetune_chain import make_rows, write_csv

TAPT_STEPS = 4
COMMON = ["--config", "tiny", "--vocab-size", "60", "--batch-size", "16", "--learning-rate", "2e-3",
          "--max-steps", "2", "--seed", "3"]


def start(*args) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "ALBERT_DEBUG"}
    env.update(TF_CPP_MIN_LOG_LEVEL="2", PYTHONIOENCODING="utf-8")
    return subprocess.Popen(albert_executable() + [str(a) for a in args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def finish(proc: subprocess.Popen) -> Result:
    out, err = proc.communicate(timeout=600)
    return Result(proc.returncode, out, err)


def summary(res: Result) -> dict:
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


def weights(model_dir: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(model_dir / "assets" / "model.safetensors"))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("tapt")
    train = write_csv(d / "train.csv", make_rows(120, 11))
    dev = write_csv(d / "dev.csv", make_rows(30, 12))
    unlabeled = d / "unlabeled.jsonl"
    unlabeled.write_text("".join(json.dumps({"text": t}) + "\n" for t, _ in make_rows(40, 13)), encoding="utf-8")
    args = [train, "--dev", dev, *COMMON]
    with_tapt = start("finetune", *args, "-o", d / "tapt", "--tapt-steps", TAPT_STEPS, "--unlabeled", unlabeled)
    without = start("finetune", *args, "-o", d / "plain")
    return {"dir": d, "args": args, "unlabeled": unlabeled, "tapt": finish(with_tapt), "plain": finish(without)}


def test_tapt_runs_and_reports_its_figures(runs):
    s = summary(runs["tapt"])
    assert s["tapt_steps"] == TAPT_STEPS and s["steps"] == 2
    t = s["tapt"]
    assert t["steps"] == TAPT_STEPS
    assert t["documents"] == 120 + 40  # every training text and every unlabeled record is a document
    for key in ("final_mlm_loss", "final_sop_loss", "final_loss"):
        assert math.isfinite(t[key]) and t[key] > 0, t
    assert 0 <= t["final_mlm_accuracy"] <= 1 and 0 <= t["final_sop_accuracy"] <= 1
    assert "task-adaptive pretraining" in runs["tapt"].stderr
    # 4 steps from scratch cannot beat guessing from word frequencies: the run says so
    assert 0 < t["unigram_entropy"] <= math.log(60) and t["final_mlm_loss"] > t["unigram_entropy"] - 0.2
    assert "has not learned from context yet" in runs["tapt"].stderr
    assert summary(runs["plain"])["tapt_steps"] == 0 and "tapt" not in summary(runs["plain"])

    out = runs["dir"] / "tapt"
    meta = json.loads((out / "assets" / "albert_cli.json").read_text())
    assert meta["training"]["tapt_steps"] == TAPT_STEPS and meta["training"]["tapt"]["steps"] == TAPT_STEPS
    log = [json.loads(line) for line in (out / "tapt" / "logs" / "train.jsonl").read_text().splitlines()]
    assert log[0]["step"] == 1 and all(math.isfinite(r["mlm_loss"]) for r in log)
    pre = json.loads((out / "tapt" / "albert_pretrain.json").read_text())
    assert pre["options"]["max_seq_length"] == meta["max_seq_length"]  # TAPT at the fine-tuning length
    assert pre["options"]["vary_instances_per_epoch"] is True
    # only the adapted model and its logs are kept
    assert not (out / "tapt" / "checkpoints").exists()
    assert not (out / "tapt-corpus.txt").exists() and not (out / "tapt-init").exists()
    assert not (runs["dir"] / "tapt.partial").exists()


def test_tapt_changes_the_backbone(runs):
    """Same seed, same data: only TAPT differs, so the backbones differ and nothing else explains it."""
    a, b = weights(runs["dir"] / "tapt"), weights(runs["dir"] / "plain")
    assert a.keys() == b.keys()
    backbone = [k for k in a if "classifier" not in k]
    assert backbone
    changed = [k for k in backbone if not np.array_equal(a[k], b[k])]
    assert len(changed) > len(backbone) // 2, (len(changed), len(backbone))
    # and runs are reproducible: the plain run is not just noise (see test_resume_after_tapt_skips_it)


def test_predict_and_resume_after_tapt_skips_it(runs):
    """A run interrupted after TAPT (its result committed in OUT.partial/tapt/, no fine-tuning checkpoint yet)
    resumes without pretraining again and ends with exactly the uninterrupted run's weights."""
    d = runs["dir"]
    pred = start("predict", d / "tapt", "-", "--format", "label")
    staging = d / "resumed.partial"
    (staging / "assets").mkdir(parents=True)
    for name in ("spiece.model", "spiece.json"):
        shutil.copy2(d / "tapt" / "assets" / name, staging / "assets" / name)
    shutil.copytree(d / "tapt" / "tapt", staging / "tapt")
    resumed = start("finetune", *runs["args"], "-o", d / "resumed", "--tapt-steps", TAPT_STEPS,
                    "--unlabeled", runs["unlabeled"], "--resume")

    out, err = pred.communicate("Football match and a goal\nBank shares and profit\n", timeout=600)
    assert pred.returncode == 0, err
    assert len(out.split()) == 2 and set(out.split()) <= {"sport", "money", "tech"}

    res = finish(resumed)
    s = summary(res)
    assert "already done" in res.stderr and "no fine-tuning checkpoint yet" in res.stderr
    assert "pretraining tensorflow" not in res.stderr  # the pretrainer never started
    assert s["steps"] == 2 and s["tapt"] == summary(runs["tapt"])["tapt"]
    a, r = weights(d / "tapt"), weights(d / "resumed")
    assert all(np.array_equal(a[k], r[k]) for k in a), "resumed run differs from the uninterrupted one"


def test_unlabeled_errors(tmp_path, runs):
    train = runs["dir"] / "train.csv"
    missing = run_albert("finetune", train, "-o", tmp_path / "m", "--tapt-steps", "2", "--unlabeled", tmp_path / "nope.txt")
    assert_clean_error(missing, 1, "nope.txt", "no such file")
    without_steps = run_albert("finetune", train, "-o", tmp_path / "m", "--unlabeled", runs["unlabeled"])
    assert_clean_error(without_steps, 2, "--tapt-steps")
    negative = run_albert("finetune", train, "-o", tmp_path / "m", "--tapt-steps", "-1")
    assert_clean_error(negative, 2, "--tapt-steps")
    assert not (tmp_path / "m").exists() and not (tmp_path / "m.partial").exists()
