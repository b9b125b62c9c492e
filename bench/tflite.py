"""TFLite export benchmark (issue #6, item 4): size, predict throughput and accuracy of `albert export`.

    python bench/tflite.py [--steps 300] [--keep DIR] [--out results.jsonl]

Fine-tunes a model on ``../shared/data/ag_news`` (defaults, ``--max-steps``), exports it with
``albert export --format tflite`` at ``--quantize none`` and ``dynamic``, and for the SavedModel and each
TFLite directory measures, on the 760 ag_news test texts:

* size: the SavedModel's ``variables/`` (its weights) against ``model.tflite``;
* throughput: in-process ``make_predictor(...).predict`` (the code path of ``albert predict``, tokenization
  included), median of 3 passes after one warm-up pass, texts per second;
* accuracy: ``albert evaluate --json`` on test (real subprocesses).

Targets for ``dynamic`` against the fp32 SavedModel: >= 2x faster, <= 1/3 of the size, <= 1 point of accuracy lost.
"""

from __future__ import annotations

import argparse
import functools
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import albert_json, emit, log, markdown_table, median_time, shared_data  # noqa: E402


def size_mb(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=300, help="fine-tuning steps for the model to export")
    ap.add_argument("--keep", type=Path, default=None)
    ap.add_argument("--out", type=argparse.FileType("a"), default=None)
    args = ap.parse_args()
    data = shared_data()
    if data is None:
        sys.exit("bench/tflite.py: ../shared/data is not present")
    ag = data / "ag_news"
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-tflite-"))
    work.mkdir(parents=True, exist_ok=True)
    extra = [args.out] if args.out else []
    model = work / "model"
    if not (model / "saved_model.pb").is_file():
        log(f"fine-tuning ag_news ({args.steps} steps)")
        albert_json("finetune", ag / "train.csv", "--dev", ag / "dev.csv", "-o", model, "--max-steps", args.steps,
                    "--overwrite")
    dirs = {"saved_model": model}
    for q in ("none", "dynamic"):
        dirs[f"tflite_{q}"] = work / f"lite-{q}"
        log(f"albert export --format tflite --quantize {q}")
        albert_json("export", model, "-o", dirs[f"tflite_{q}"], "--format", "tflite", "--quantize", q, "--overwrite")

    import pandas as pd

    texts = pd.read_csv(ag / "test.csv")["text"].astype(str).tolist()
    from albert_cli.inference.predict import make_predictor

    rows, results = [], {}
    for name, path in dirs.items():
        size = size_mb(path / "variables") if name == "saved_model" else size_mb(path / "model.tflite")
        predictor = make_predictor(path, batch_size=32)
        predictor.predict(texts)  # warm-up: graph tracing / interpreter allocation
        _, seconds = median_time(functools.partial(predictor.predict, texts), repeats=3)
        report = albert_json("evaluate", path, ag / "test.csv", "--json")
        r = {"bench": "tflite", "model": name, "size_mb": round(size, 2), "texts_per_s": round(len(texts) / seconds, 1),
             "accuracy": report["accuracy"], "macro_f1": report["macro_f1"], "texts": len(texts)}
        results[name] = r
        emit(r, *extra)
        predictor = None  # free the model before loading the next
    base = results["saved_model"]
    for name, r in results.items():
        rows.append([name, r["size_mb"], round(r["size_mb"] / base["size_mb"], 2), r["texts_per_s"],
                     round(r["texts_per_s"] / base["texts_per_s"], 2), round(r["accuracy"], 4),
                     round(r["accuracy"] - base["accuracy"], 4)])
    dyn = results["tflite_dynamic"]
    summary = {"bench": "tflite", "summary": True,
               "dynamic_speedup": round(dyn["texts_per_s"] / base["texts_per_s"], 2),
               "dynamic_size_ratio": round(dyn["size_mb"] / base["size_mb"], 3),
               "dynamic_accuracy_change": round(dyn["accuracy"] - base["accuracy"], 4)}
    summary["met"] = (summary["dynamic_speedup"] >= 2 and summary["dynamic_size_ratio"] <= 1 / 3
                      and summary["dynamic_accuracy_change"] >= -0.01)
    emit(summary, *extra)
    log("")
    log(markdown_table(["model", "MB", "size ratio", "texts/s", "speed ratio", "test acc", "acc change"], rows,
                       right=[1, 2, 3, 4, 5, 6]))
    log(f"\nwork directory: {work}")


if __name__ == "__main__":
    try:
        main()
    except RuntimeError as exc:  # a failed albert command: one line, no traceback
        sys.exit(f"bench/tflite.py: {exc}")
