"""`albert predict --runner DirectRunner` (Apache Beam, 1 and 2 worker processes) against `albert predict` on the
same lines, in one run.

    .venv/bin/python bench/beam.py                                   # 50,000 ag_news lines, /tmp/bq/ag_news-model
    .venv/bin/python bench/beam.py --model DIR --lines 5000 --files 4
    .venv/bin/python bench/beam.py --out /tmp/beam.jsonl             # also keep the JSON lines

Needs the `beam` extra. The lines are the ag_news texts (train, dev, test; whitespace collapsed) repeated in order
until there are `--lines`; `albert predict` reads them as one file, the pipeline as `--files` files of equal size
(the same lines, in the same order). Each command first runs on `--startup-lines` lines (200: mostly start-up),
then on all of them; the difference gives the throughput after start-up. Each system is one command timed from start to exit, so start-up counts:
TensorFlow's import and the model's load (for the pipeline: on the launcher, which checks the model, and on each
worker process), and Beam's own. One JSON line per system on stdout (`texts_per_s`, `wall_s`, `ratio` to
`albert predict`), then a check that the pipeline's records carry `albert predict`'s labels, and a markdown table
on stderr.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import Timer, albert_command, emit, log, markdown_table, shared_data  # noqa: E402

DEFAULT_MODEL = "/tmp/bq/ag_news-model"


def ag_news_lines(n: int) -> list[str]:
    data = shared_data()
    if data is None:
        sys.exit("bench/beam.py: ../shared/data is absent")
    texts = []
    for split in ("train", "dev", "test"):
        with open(data / "ag_news" / f"{split}.csv", newline="", encoding="utf-8") as f:
            texts += [" ".join(row["text"].split()) for row in csv.DictReader(f)]
    return [texts[i % len(texts)] for i in range(n)]


def write_inputs(lines: list[str], files: int, work: Path) -> tuple[Path, list[Path]]:
    work.mkdir(parents=True, exist_ok=True)
    whole = work / "all.txt"
    whole.write_text("\n".join(lines) + "\n", encoding="utf-8")
    size = -(-len(lines) // files)
    parts = []
    for k in range(files):
        part = work / "parts" / f"part-{k:03d}.txt"
        part.parent.mkdir(parents=True, exist_ok=True)
        part.write_text("\n".join(lines[k * size:(k + 1) * size]) + "\n", encoding="utf-8")
        parts.append(part)
    return whole, parts


def timed(args: list, stdout=subprocess.DEVNULL) -> float:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    with Timer() as t:
        proc = subprocess.run(albert_command() + [str(a) for a in args], stdout=stdout, stderr=subprocess.PIPE,
                              text=True, env=env)
    if proc.returncode != 0:
        sys.exit(f"albert {' '.join(map(str, args[:3]))} ... failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return t.seconds


def pipeline_labels(prefix: Path, parts: list[Path]) -> list:
    """The labels of the pipeline's records, in input order (parts in order, lines in order)."""
    offsets = {str(p): k for k, p in enumerate(parts)}
    size = len(parts[0].read_text(encoding="utf-8").splitlines())
    found = {}
    for shard in prefix.parent.glob(prefix.name + "-*-of-*.jsonl"):
        for line in shard.read_text(encoding="utf-8").splitlines():
            rec = json.loads(line)
            found[offsets[rec["source"]] * size + rec["line"] - 1] = rec.get("label")
    return [found.get(i) for i in range(max(found) + 1)] if found else []


def commands(model, whole: Path, parts: list[Path], batch_size: int, work: Path, tag: str) -> dict:
    """The three commands over the same lines: `albert predict` on one file, the pipeline with 1 and 2 workers."""
    beam = ["--runner", "DirectRunner", "--batch-size", batch_size, "--pipeline-option",
            "direct_running_mode=multi_processing"]
    return {
        ("albert predict", 1): ["predict", model, whole, "--batch-size", batch_size],
        **{("DirectRunner", w): ["predict", model, *parts, *beam, "-o", work / f"{tag}-beam-{w}" / "p",
                                 "--pipeline-option", f"direct_num_workers={w}"] for w in (1, 2)},
    }


def run(model: str, lines: int, files: int, batch_size: int, work: Path, out, startup_lines: int) -> list[dict]:
    """Each command on `startup_lines` lines (mostly start-up), then on `lines`; the difference of the two is
    the throughput after start-up."""
    texts = ag_news_lines(lines)
    small = commands(model, *write_inputs(texts[:startup_lines], files, work / "small"), batch_size, work, "small")
    whole, parts = write_inputs(texts, files, work)
    full = commands(model, whole, parts, batch_size, work, "full")
    start = {}
    for key, args in small.items():
        log(f"{key[0]} ({key[1]} worker(s)) over {startup_lines} lines ...")
        start[key] = timed(args)
    rows, want, base = [], None, None
    for key, args in full.items():
        log(f"{key[0]} ({key[1]} worker(s)) over {lines} lines ...")
        if key[0] == "albert predict":
            with open(work / "predict.jsonl", "w", encoding="utf-8") as f:
                seconds = base = timed(args, stdout=f)
            want = [json.loads(ln).get("label") for ln in (work / "predict.jsonl").read_text("utf-8").splitlines()]
            check = {}
        else:
            seconds = timed(args)
            got = pipeline_labels(work / f"full-beam-{key[1]}" / "p", parts)
            check = {"records": len(got), "labels_as_predict": sum(a == b for a, b in zip(got, want))}
        record = {"system": key[0], "workers": key[1], "lines": lines, "wall_s": round(seconds, 2),
                  "texts_per_s": round(lines / seconds, 1), "ratio": round(base / seconds, 3),
                  f"wall_s_{startup_lines}_lines": round(start[key], 2),
                  "after_startup_texts_per_s": round((lines - startup_lines) / max(1e-9, seconds - start[key]), 1),
                  **check}
        emit(record, *out)
        rows.append(record)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=DEFAULT_MODEL, help="model directory [default: %(default)s]")
    ap.add_argument("--lines", type=int, default=50_000, help="input lines [default: %(default)s]")
    ap.add_argument("--files", type=int, default=8, help="input files of the pipeline [default: %(default)s]")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--startup-lines", type=int, default=200,
                    help="lines of the short runs that measure start-up [default: %(default)s]")
    ap.add_argument("--keep", help="keep the inputs and outputs in this folder [default: a temporary one]")
    ap.add_argument("--out", help="also append the JSON lines to this file")
    args = ap.parse_args()
    if not os.path.isdir(args.model):
        sys.exit(f"bench/beam.py: {args.model}: no such model directory (train one with bench/quantize.py --keep "
                 f"/tmp/bq, or pass --model)")
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-beam-"))
    if args.keep and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    out = [open(args.out, "a", encoding="utf-8")] if args.out else []
    try:
        rows = run(args.model, args.lines, args.files, args.batch_size, work, out, args.startup_lines)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    short = f"wall_s_{args.startup_lines}_lines"
    log(markdown_table(["system", "workers", "wall s", "texts/s", "ratio to predict", f"wall s, {args.startup_lines} lines",
                        "texts/s after start-up", "labels as predict"],
                       [[r["system"], r["workers"], r["wall_s"], r["texts_per_s"], r["ratio"], r[short],
                         r["after_startup_texts_per_s"], r.get("labels_as_predict", "-")] for r in rows],
                       right=(1, 2, 3, 4, 5, 6, 7)))
    load = re.sub(r"\s+", " ", open("/proc/loadavg").read().strip()) if os.path.exists("/proc/loadavg") else "-"
    log(f"load average at the end: {load}")


if __name__ == "__main__":
    main()
