"""Quantized TFLite exports against their SavedModel, for every task type and both languages (issue 22).

    python bench/quantize.py [--only ag_news,chnsenticorp] [--keep DIR] [--out results.jsonl]

For each case, fine-tunes a model with the defaults (the bag-of-n-grams member on), exports it with
``albert export --format tflite`` at ``--quantize none``, ``dynamic``, ``float16`` and ``int8`` (calibrated on
dev; refused for models with the bag of n-grams; ``--min-agreement 0`` so that every export is written and
measured), and compares each export with the
SavedModel on the test texts, through the predictors of ``albert predict``:

* labels kept: the share of test texts with the same labels (multi-label: the same set; regression: a value
  within 1% of the range of the SavedModel's values, the rule of ``albert export``);
* the largest difference of a probability (or value);
* what ``albert export`` itself measured on the texts kept with the model (``export.json``'s ``check``).

Cases: ``ag_news`` (English, 4 topics) and ``chnsenticorp`` (Chinese sentiment) on their full training sets;
``multi_label``, ``pair`` and ``regression`` are built from ag_news and sms_spam (see ``make_case``) and trained
for ``--steps`` steps. The target: ``dynamic`` keeps >= 99% of the labels.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import albert_json, emit, log, markdown_table, shared_data  # noqa: E402

MODES = ("none", "dynamic", "float16", "int8")
CASES = ("ag_news", "chnsenticorp", "multi_label", "pair", "regression")


def _write(frame, path: Path) -> Path:
    frame.to_csv(path, index=False)
    return path


def _pairs(frame, seed: int):
    """ag_news as a pair task: two headlines, 'same' topic or 'different' (half each)."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    other = frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    same = rng.random(len(frame)) < 0.5
    by_label = {k: g.reset_index(drop=True) for k, g in frame.groupby("label")}
    second = [by_label[l].text[rng.integers(len(by_label[l]))] if s else o
              for l, s, o in zip(frame.label, same, other.text)]
    labels = ["same" if s or l == ol else "different" for s, l, ol in zip(same, frame.label, other.label)]
    return pd.DataFrame({"text": frame.text, "text_pair": second, "label": labels})


def _multi(frame, seed: int):
    """ag_news as a multi-label task: two headlines joined, labelled with both topics ('a|b')."""
    import pandas as pd

    other = frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    labels = ["|".join(sorted({a, b})) for a, b in zip(frame.label, other.label)]
    return pd.DataFrame({"text": frame.text + " " + other.text, "label": labels})


def make_case(case: str, data: Path, work: Path) -> tuple[dict, list]:
    """Train/dev/test files of `case` in `work`, and the extra `albert finetune` options it needs."""
    import pandas as pd

    if case in ("ag_news", "chnsenticorp"):
        return {s: data / case / f"{s}.csv" for s in ("train", "dev", "test")}, []
    source = data / ("sms_spam" if case == "regression" else "ag_news")
    files, extra = {}, []
    for split, n in (("train", 2000), ("dev", 300), ("test", 760)):
        frame = pd.read_csv(source / f"{split}.csv").head(n).reset_index(drop=True)
        if case == "pair":
            frame, extra = _pairs(frame, 1), ["--text-pair-column", "text_pair"]
        elif case == "multi_label":
            frame, extra = _multi(frame, 1), ["--task", "multi_label"]
        else:  # spam as a value: 1.0 spam, 0.0 ham
            frame = frame.assign(label=(frame.label == "spam").astype(float))
            extra = ["--task", "regression"]
        files[split] = _write(frame, work / f"{case}-{split}.csv")
    return files, extra


def _outputs(model: Path, texts, pairs):
    from albert_cli.inference.predict import make_predictor

    out = make_predictor(model).predict(texts, pairs)
    return out.get("value", out.get("probabilities")), out.get("label")


def compare(model: Path, export: Path, test: Path, pair: bool) -> dict:
    import pandas as pd

    frame = pd.read_csv(test)
    texts = frame.text.astype(str).tolist()
    pairs = frame.text_pair.astype(str).tolist() if pair else None
    (want, labels_w), (got, labels_g) = _outputs(model, texts, pairs), _outputs(export, texts, pairs)
    if labels_w is None:  # regression: the rule of albert export
        spread = max(float(want.max() - want.min()), 1e-6)
        kept = float(np.mean(np.abs(got - want) <= 0.01 * spread))
    else:
        kept = float(np.mean(labels_w == labels_g))
    return {"test_texts": len(texts), "labels_kept": round(kept, 4), "max_abs_diff": float(np.abs(got - want).max())}


def run_case(case: str, data: Path, work: Path, steps: int, out) -> list[dict]:
    files, extra = make_case(case, data, work)
    model = work / f"{case}-model"
    if not (model / "saved_model.pb").is_file():
        log(f"{case}: fine-tuning with the defaults")
        limit = [] if case in ("ag_news", "chnsenticorp") else ["--max-steps", steps]
        albert_json("finetune", files["train"], "--dev", files["dev"], "-o", model, *extra, *limit, "--overwrite")
    rows = []
    bag = json.loads((model / "assets" / "albert_cli.json").read_text("utf-8")).get("bow_buckets", 0)
    for mode in [m for m in MODES if not (bag and m == "int8")]:  # export refuses int8 with the bag
        target = work / f"{case}-{mode}"
        cal = ["--calibration", files["dev"]] if mode == "int8" else []
        summary = albert_json("export", model, "-o", target, "--quantize", mode, "--min-agreement", "0",
                              *cal, "--overwrite")
        check = summary.get("check") or {}
        record = {"case": case, "quantize": mode, "tflite_mb": round(summary["tflite_bytes"] / 1e6, 2),
                  "export_check": check.get("label_agreement"),
                  **compare(model, target, files["test"], "--text-pair-column" in extra)}
        log(f"{case} {mode}: {record}")
        emit(record, *([out] if out else []))
        rows.append(record)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default=",".join(CASES), help="comma-separated cases")
    ap.add_argument("--steps", type=int, default=400, help="fine-tuning steps of the built cases")
    ap.add_argument("--keep", type=Path, default=None, help="work directory (models are reused)")
    ap.add_argument("--out", type=argparse.FileType("a"), default=None)
    args = ap.parse_args()
    data = shared_data()
    if data is None:
        sys.exit("bench/quantize.py: ../shared/data is not present")
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-quantize-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for case in args.only.split(","):
        rows += run_case(case, data, work, args.steps, args.out)
    print(markdown_table(["case", "quantize", "MB", "labels kept (test)", "max |diff|", "export check"],
                         [[r["case"], r["quantize"], r["tflite_mb"], r["labels_kept"], r["max_abs_diff"],
                           r["export_check"]] for r in rows], right=(2, 3, 4, 5)), file=sys.stderr)


if __name__ == "__main__":
    main()
