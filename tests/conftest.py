"""Shared test helpers: run the real `albert` command in a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def albert_executable() -> list[str]:
    exe = shutil.which("albert", path=os.path.dirname(sys.executable))
    return [exe] if exe else [sys.executable, "-m", "albert_cli"]


def run_albert(*args, input: str | bytes | None = None, cwd=None, env=None, timeout=600) -> Result:
    """Run `albert ARGS...` as a real subprocess and capture its output."""
    full_env = dict(os.environ)
    full_env.pop("ALBERT_DEBUG", None)
    full_env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    full_env["PYTHONIOENCODING"] = "utf-8"
    if env:
        full_env.update(env)
    binary = isinstance(input, bytes)
    proc = subprocess.run(
        albert_executable() + [str(a) for a in args],
        input=input,
        capture_output=True,
        text=not binary,
        cwd=cwd,
        env=full_env,
        timeout=timeout,
    )
    out, err = proc.stdout, proc.stderr
    if binary:
        out, err = out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
    return Result(proc.returncode, out, err)


def assert_clean_error(res: Result, code: int, *needles: str) -> None:
    """Non-zero exit `code`, a one-line message containing every needle, no traceback."""
    assert res.returncode == code, (res.returncode, res.stderr)
    assert "Traceback" not in res.stderr, res.stderr
    lines = [ln for ln in res.stderr.strip().splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("albert: error:")]
    assert len(errors) == 1, res.stderr
    for needle in needles:
        assert needle.lower() in errors[0].lower(), (needle, errors[0])


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


def write_two_class_csv(directory: Path, name: str = "d.csv") -> Path:
    """60 rows of a trivially separable pos/neg task ("good fine item N" / "bad poor item N") as a CSV."""
    rows = ["text,label"] + [
        f"{'good fine' if i % 2 else 'bad poor'} item {i % 7},{'pos' if i % 2 else 'neg'}" for i in range(60)
    ]
    path = Path(directory) / name
    path.write_text("\n".join(rows) + "\n")
    return path


def write_csv(path: Path, header, rows) -> Path:
    """`rows` under `header` as a UTF-8 CSV at `path`."""
    import csv

    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return Path(path)


def model_meta(model_dir: Path) -> dict:
    """A model directory's `assets/albert_cli.json`."""
    return json.loads((Path(model_dir) / "assets" / "albert_cli.json").read_text())


def mean_pooled(model_dir: Path, texts: list[str]):
    """Recomputed from a model directory's assets: its weights (`LoadedWeights`), the encoded `texts` (one batch,
    padded to a multiple of 8) and the mean of the backbone's token vectors over the real tokens."""
    import numpy as np

    from albert_cli.text.tokenizers import tokenizer_for_pretrained
    from albert_cli.text.preprocessor import Preprocessor, pad_batch
    from albert_cli.weights import build_backbone, load_pretrained

    loaded = load_pretrained(model_dir)
    x = pad_batch(Preprocessor(tokenizer_for_pretrained(loaded), 32).encode(texts), np.arange(len(texts)), 8,
                  len(texts))
    seq = np.asarray(build_backbone(loaded)(x, training=False)["sequence_output"])
    mask = x["padding_mask"][..., None].astype("float32")
    return loaded, x, (seq * mask).sum(1) / mask.sum(1)


def assert_served(predict_stdout: str, logits, labels: list[str]) -> None:
    """`predict --all-scores` lines carry softmax(`logits`): the argmax label and every probability (1e-4)."""
    import numpy as np

    served = [json.loads(line) for line in predict_stdout.splitlines()]
    assert len(served) == len(logits)
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    for row, p in zip(served, probs):
        assert row["label"] == labels[int(p.argmax())]
        np.testing.assert_allclose([row["probabilities"][name] for name in labels], p, atol=1e-4)
