"""The training step of this checkout against an earlier commit, side by side in one run.

    .venv/bin/python bench/step_vs_commit.py                      # against e1acf10 (before the one loop)
    .venv/bin/python bench/step_vs_commit.py --base HEAD~3 --rounds 5

Two workloads, each run as a real `albert` command by both versions in turn (the order alternates every round,
so drift on a shared machine hits both):

- finetune: the default model from scratch (mean pooling, bag of n-grams, moving average, deterministic) on the
  first --rows rows of ag_news/train.csv, --finetune-steps steps, no dev set. Seconds per step from the wall
  times of the `loss` scalars in OUT/logs (steps 10 to the last: tracing and start-up excluded).
- pretrain: `albert pretrain --config small`, batch 32, 128 tokens, on en_pretrain/train.csv with one
  SentencePiece model made once; seconds per step from `logs/train.jsonl` (`elapsed`, step 5 to the last).

The base commit is checked out in a git worktree and run with PYTHONPATH pointing at it (same venv). Prints one
JSON line per run and one summary line per workload: median seconds per step of each version and
`speed_ratio` = base / this checkout (> 1: this checkout is faster). See bench/README.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO_ROOT, emit, log, shared_data  # noqa: E402


def worktree(base: str) -> Path:
    """A checkout of `base` next to the temp dir (made once, reused)."""
    sha = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", base], capture_output=True,
                         text=True, check=True).stdout.strip()
    path = Path(tempfile.gettempdir()) / f"albert-base-{sha}"
    if not (path / "albert_cli").is_dir():
        subprocess.run(["git", "-C", str(REPO_ROOT), "worktree", "add", "--detach", "-f", str(path), sha],
                       check=True, capture_output=True)
    return path


def albert(code: Path, args: list, cwd: Path) -> dict:
    """Run `python -m albert_cli ARGS` with the package from `code`; returns its JSON summary line."""
    env = dict(os.environ, PYTHONPATH=str(code), TF_CPP_MIN_LOG_LEVEL="2")
    res = subprocess.run([sys.executable, "-m", "albert_cli", *map(str, args)], cwd=cwd, env=env,
                         capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"albert {' '.join(map(str, args[:2]))} failed with {code}:\n{res.stderr[-3000:]}")
    lines = res.stdout.strip().splitlines()
    return json.loads(lines[-1]) if lines else {}


def loss_wall_times(logdir: Path) -> dict[int, float]:
    """Step -> wall time of the `loss` scalar in a TensorBoard log directory."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    tags = acc.Tags()
    events = acc.Scalars("loss") if "loss" in tags.get("scalars", []) else acc.Tensors("loss")
    return {e.step: e.wall_time for e in events}


def seconds_per_step(times: dict[int, float], first: int) -> float:
    last = max(times)
    return (times[last] - times[first]) / (last - first)


def finetune_once(code: Path, data: Path, work: Path, steps: int) -> float:
    out = work / "ft"
    shutil.rmtree(out, ignore_errors=True)
    albert(code, ["finetune", data, "-o", out, "--max-steps", steps, "--seed", "42"], work)
    return seconds_per_step(loss_wall_times(out / "logs" / "train"), 10)


def pretrain_once(code: Path, corpus: Path, spm: Path, work: Path, steps: int) -> float:
    out = work / "pt"
    shutil.rmtree(out, ignore_errors=True)
    albert(code, ["pretrain", corpus, "--doc-column", "doc", "--tokenizer", spm, "-o", out, "--config", "small",
                  "--max-seq-length", "128", "--batch-size", "32", "--max-steps", steps, "--log-every", "1",
                  "--save-every", steps * 10], work)
    rows = [json.loads(line) for line in (out / "logs" / "train.jsonl").read_text().splitlines()]
    return seconds_per_step({r["step"]: r["elapsed"] for r in rows}, 5)


def prepare(data_root: Path, work: Path, rows: int) -> tuple[Path, Path, Path]:
    """The fine-tuning CSV, the pretraining corpus and its SentencePiece model (made with this checkout)."""
    train = work / "train.csv"
    with open(data_root / "ag_news" / "train.csv", newline="", encoding="utf-8") as f:
        table = list(csv.reader(f))
    with open(train, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(table[: rows + 1])
    corpus = data_root / "en_pretrain" / "train.csv"
    spm = work / "spm"
    if not spm.with_suffix(".model").is_file():
        albert(REPO_ROOT, ["tokenize", "train", corpus, "-o", spm, "--vocab-size", "8000",
                           "--input-sentence-size", "100000"], work)
    return train, corpus, spm.with_suffix(".model")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default="e1acf10", help="the commit to compare with")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--finetune-steps", type=int, default=50)
    ap.add_argument("--pretrain-steps", type=int, default=25)
    ap.add_argument("--only", default="finetune,pretrain")
    args = ap.parse_args()
    data_root = shared_data()
    if data_root is None:
        raise SystemExit("needs ../shared/data (ag_news, en_pretrain)")
    work = Path(tempfile.mkdtemp(prefix="albert-step-vs-commit-"))
    train, corpus, spm = prepare(data_root, work, args.rows)
    versions = {"base": worktree(args.base), "head": REPO_ROOT}
    workloads = {
        "finetune": lambda code: finetune_once(code, train, work, args.finetune_steps),
        "pretrain": lambda code: pretrain_once(code, corpus, spm, work, args.pretrain_steps),
    }
    for name in args.only.split(","):
        seconds: dict[str, list[float]] = {"base": [], "head": []}
        for r in range(args.rounds):
            for version in (("base", "head") if r % 2 == 0 else ("head", "base")):
                s = workloads[name](versions[version])
                seconds[version].append(s)
                emit({"workload": name, "version": version, "round": r, "seconds_per_step": round(s, 4)})
                log(f"{name} {version} round {r}: {s:.3f} s/step")
        base, head = statistics.median(seconds["base"]), statistics.median(seconds["head"])
        emit({"summary": True, "workload": name, "base": args.base, "base_seconds_per_step": round(base, 4),
              "head_seconds_per_step": round(head, 4), "speed_ratio": round(base / head, 3)})
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
