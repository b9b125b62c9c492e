"""Accuracy benchmark: albert-cli against classic baselines on the shared datasets.

    python bench/accuracy.py [--quick] [--datasets ag_news,trec,...] [--albert-args "..."]
                             [--only SYSTEM,...] [--tapt-steps N] [--pretrained [LANG=]DIR]
                             [--out results.jsonl]

Datasets: each NAME is <repo>/../shared/data/NAME/{train,dev,test}.csv (`text,label`),
except NAME_multi, which the bench builds from NAME (default: ag_news, trec,
sms_spam, chnsenticorp, movie_reviews, ag_news_multi):

  movie_reviews  English review sentiment, 2 classes, long documents (~700 words).
  NAME_multi     multi-label, built from NAME's splits, each split on its own,
                 with a fixed seed (the same rows whatever --seed): as many rows
                 as NAME's split, half of them single texts (label: their class)
                 and half pairs of two texts of different classes joined with a
                 space (label: both classes, `a|b`, as albert-cli reads
                 multi-label CSV). Every text of the split is in exactly one
                 pair; a random half of them also stands alone. Written to the
                 bench's temporary directory. Needs no class to hold more than
                 half of a split's rows (ag_news: 4 balanced topics).

Single-label systems (judged on test accuracy):

  tfidf_lr   scikit-learn TF-IDF + logistic regression. English: word 1-2-grams
             plus char_wb 2-5-grams; Chinese (no word segmenter here): char
             1-3-grams. Sublinear tf. C picked from C_GRID by dev accuracy; the
             model trained on train with that C is scored on test.
  tfidf_svm  the same features + a linear SVM (LinearSVC, one-vs-rest), C
             picked from SVM_C_GRID by dev accuracy.
  fasttext   fastText supervised, 25 epochs, wordNgrams 2, dim 100, one thread
             (deterministic), lr picked from LR_GRID by dev accuracy. Text is
             lowercased and split into words and punctuation; Chinese into single
             characters. Skipped, with the reason, if `fasttext` is not importable.

Multi-label systems (judged on test micro-F1; macro-F1 and subset accuracy too):

  tfidf_lr_ovr   the tfidf_lr features + one-vs-rest logistic regression (a
                 label is predicted at probability >= 0.5), C from C_GRID.
  tfidf_svm_ovr  the same features + one-vs-rest LinearSVC (a label is
                 predicted where its decision value is > 0), C from SVM_C_GRID.
                 Both pick C by dev micro-F1 and tune no per-label thresholds.

Single-label baselines are not run on multi-label datasets, nor these on
single-label ones (a log line says so, no row is written).

ALBERT systems (both kinds of dataset; multi-label ones add `--task multi_label`
to finetune, and finetune then tunes per-label thresholds on dev):

  albert     the real CLI, defaults only (no --init):
             `albert finetune TRAIN --dev DEV -o TMP/model [--albert-args]` then
             `albert evaluate TMP/model TEST --json`. A failing command makes the
             row "skipped" with the command's error line.
  albert_no_bow
             the same with `--no-bow`: ALBERT alone, without the linear
             bag-of-n-grams member that the defaults train beside it.
  albert_tapt
             the same plus task-adaptive pretraining: `--tapt-steps N` (bench
             option --tapt-steps, default 1000) of ALBERT's MLM + SOP
             objective on the training texts before fine-tuning.
  albert_pretrained
             the same as albert with `--init DIR`, DIR from --pretrained (our own
             `albert pretrain` output); "skipped" when no --pretrained is given
             for the dataset's language.

--only takes system names and the groups baselines (the five classic systems),
albert_all (the four albert systems) and all, comma-separated. --albert-args go
to every albert system's `finetune`.

wall_s is the whole cost of a system on a dataset: for the baselines, fitting
(including the dev grid search) and predicting; for the albert systems,
finetune (with TAPT when there is one) + evaluate.
Language is detected from the training text (mostly CJK characters -> "zh").

Output: one JSON line per (dataset, system) on stdout, and to --out if given,
with `task`, `metric` (the judged figure's key: accuracy or micro_f1) and the
scores; progress and two markdown tables on stderr. The first has a row per
(dataset, system); the second a row per dataset with the best classic baseline
on the judged figure and the verdict: whether `albert` (the defaults) is at or
above it, and the gap in points (albert - best baseline).
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from textwrap import shorten
from typing import Callable

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import make_union
from sklearn.preprocessing import MultiLabelBinarizer
from sklearn.svm import LinearSVC

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Timer, albert_command, emit, fmt, log, markdown_table, shared_data  # noqa: E402

DATASETS = ["ag_news", "trec", "sms_spam", "chnsenticorp", "movie_reviews", "ag_news_multi"]
SINGLE_LABEL_BASELINES = ["tfidf_lr", "tfidf_svm", "fasttext"]
MULTI_LABEL_BASELINES = ["tfidf_lr_ovr", "tfidf_svm_ovr"]
BASELINES = SINGLE_LABEL_BASELINES + MULTI_LABEL_BASELINES
ALBERT_SYSTEMS = ["albert", "albert_no_bow", "albert_tapt", "albert_pretrained"]
SYSTEMS = BASELINES + ALBERT_SYSTEMS
GROUPS = {"all": SYSTEMS, "baselines": BASELINES, "albert_all": ALBERT_SYSTEMS}
TAPT_STEPS = 1000
QUICK_TRAIN_ROWS = 1000
QUICK_EVAL_ROWS = 300  # test, and dev (used for tuning / early stopping)
C_GRID = (1.0, 4.0, 16.0)  # logistic regression
SVM_C_GRID = (0.1, 0.3, 1.0, 3.0)  # LinearSVC
LR_GRID = (0.25, 0.5, 1.0)  # fastText learning rate
MULTI_SUFFIX = "_multi"  # NAME_multi: the multi-label dataset built from NAME
MULTI_SEED = 0  # fixed, so a NAME_multi dataset has the same rows in every run
LABEL_SEPARATOR = "|"  # how albert-cli splits a multi-label CSV cell (albert_cli.data.readers)


class Skip(Exception):
    """A system cannot run here; the message says why."""


@dataclass
class Dataset:
    name: str
    lang: str  # "en" or "zh"
    train: pd.DataFrame
    dev: pd.DataFrame
    test: pd.DataFrame
    files: dict[str, Path]  # split -> CSV path with exactly these rows (for the CLI)
    multi_label: bool = False  # labels are LABEL_SEPARATOR-joined sets

    @property
    def metric(self) -> str:
        """The judged figure."""
        return "micro_f1" if self.multi_label else "accuracy"

    @property
    def score_keys(self) -> tuple[str, ...]:
        """The figures every system reports on this dataset, the judged one first."""
        return ("micro_f1", "macro_f1", "subset_accuracy") if self.multi_label else ("accuracy", "macro_f1")


# ---------------------------------------------------------------------------- data


SPLITS = ("train", "dev", "test")


def read_split(path: Path) -> pd.DataFrame:
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = {"text", "label"} - set(df.columns)
    if missing:
        raise SystemExit(f"{path}: missing column(s) {', '.join(sorted(missing))}")
    return df[["text", "label"]]


def subsample(df: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    """`rows` rows, stratified by label (plain random if a class is too small)."""
    if len(df) <= rows:
        return df
    try:
        part, _ = train_test_split(df, train_size=rows, stratify=df["label"], random_state=seed)
    except ValueError:
        part = df.sample(n=rows, random_state=seed)
    return part.sort_index().reset_index(drop=True)


def detect_lang(texts: pd.Series) -> str:
    sample = "".join(texts.head(500))
    cjk = sum("\u4e00" <= ch <= "\u9fff" for ch in sample)
    letters = sum(ch.isalpha() for ch in sample)
    return "zh" if letters and cjk / letters > 0.5 else "en"


def has_splits(folder: Path) -> bool:
    return all((folder / f"{split}.csv").is_file() for split in SPLITS)


def split_labels(cell: str) -> list[str]:
    """A multi-label cell as albert-cli reads it: separated, stripped, deduplicated, sorted."""
    return sorted({part.strip() for part in cell.split(LABEL_SEPARATOR) if part.strip()})


def different_label_pairs(labels: np.ndarray, rng: np.random.Generator) -> list[tuple[int, int]]:
    """Random pairs of row indices, every row in one pair (one left out if odd), no pair within one label.

    A random matching, then each same-label pair swaps its second member with another pair where
    the swap leaves both pairs mixed; always possible while no label holds more than half the rows.
    """
    order = rng.permutation(len(labels))
    half = len(order) // 2
    first, second = order[:half].copy(), order[half : 2 * half].copy()
    for i in range(half):
        if labels[first[i]] != labels[second[i]]:
            continue
        for j in rng.permutation(half):
            if labels[second[j]] != labels[first[i]] and labels[first[j]] != labels[second[i]]:
                second[i], second[j] = second[j], second[i]
                break
        else:
            raise ValueError(f"cannot pair label '{labels[first[i]]}' with a different one: it holds over half the rows")
    return list(zip(first.tolist(), second.tolist()))


def multi_label_split(df: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """As many rows as `df`: half pairs of texts of different labels, the rest single texts; shuffled."""
    texts, labels = df["text"].to_numpy(), df["label"].to_numpy()
    pairs = different_label_pairs(labels, rng)
    singles = rng.choice(len(df), size=len(df) - len(pairs), replace=False)
    rows = [(texts[i], labels[i]) for i in singles]
    rows += [(f"{texts[a]} {texts[b]}", LABEL_SEPARATOR.join(sorted((labels[a], labels[b])))) for a, b in pairs]
    out = pd.DataFrame(rows, columns=["text", "label"])
    return out.iloc[rng.permutation(len(out))].reset_index(drop=True)


def build_multi_label(source: Path, out: Path) -> Path:
    """Write the multi-label dataset made from `source`'s splits to out/{train,dev,test}.csv; return `out`."""
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(MULTI_SEED)
    for split in SPLITS:
        df = read_split(source / f"{split}.csv")
        bad = sorted({label for label in df["label"] if LABEL_SEPARATOR in label})
        if bad:
            raise ValueError(f"{source.name}: label(s) containing '{LABEL_SEPARATOR}': {', '.join(bad)}")
        multi_label_split(df, rng).to_csv(out / f"{split}.csv", index=False)
    return out


def find_dataset(name: str, data: Path, workdir: Path) -> tuple[Path, bool]:
    """(folder with NAME's splits, whether it is multi-label); NAME_multi is built from NAME into `workdir`.

    Raises ValueError, with the reason, when there is no such dataset.
    """
    folder = data / name
    if has_splits(folder):
        return folder, False
    source = data / name.removesuffix(MULTI_SUFFIX)
    if name.endswith(MULTI_SUFFIX) and has_splits(source):
        return build_multi_label(source, workdir / name), True
    raise ValueError(f"{folder}/{{train,dev,test}}.csv not found")


def load_dataset(name: str, folder: Path, multi_label: bool, quick: bool, seed: int, workdir: Path) -> Dataset:
    files = {split: folder / f"{split}.csv" for split in SPLITS}
    frames = {split: read_split(path) for split, path in files.items()}
    if quick:
        sizes = {"train": QUICK_TRAIN_ROWS, "dev": QUICK_EVAL_ROWS, "test": QUICK_EVAL_ROWS}
        for split, rows in sizes.items():
            frames[split] = subsample(frames[split], rows, seed)
            files[split] = workdir / f"{name}-{split}.csv"
            frames[split].to_csv(files[split], index=False)
    return Dataset(name, detect_lang(frames["train"]["text"]), **frames, files=files, multi_label=multi_label)


def scores(gold: pd.Series, pred) -> dict[str, float]:
    return {
        "accuracy": float(accuracy_score(gold, pred)),
        "macro_f1": float(f1_score(gold, pred, average="macro")),
    }


def multi_label_scores(gold: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Over 0/1 label matrices, as albert evaluate scores multi-label models."""
    return {
        "micro_f1": float(f1_score(gold, pred, average="micro", zero_division=0)),
        "macro_f1": float(f1_score(gold, pred, average="macro", zero_division=0)),
        "subset_accuracy": float(accuracy_score(gold, pred)),
    }


# ---------------------------------------------------------------------------- TF-IDF + LR / SVM


def tfidf_features(lang: str):
    if lang == "zh":
        return TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True)
    return make_union(
        TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True),
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True),
    )


def logistic_regression(c: float):
    return LogisticRegression(C=c, max_iter=2000)


def linear_svm(c: float):
    return LinearSVC(C=c, dual="auto", max_iter=5000)


def pick_on_dev(make: Callable, grid: tuple, x_train, y_train, x_dev, dev_score: Callable) -> tuple:
    """Fit `make(c)` on train for each c in `grid`: (dev score, c, model) of the best; ties keep the smaller c."""
    best = None
    for c in grid:
        clf = make(c).fit(x_train, y_train)
        score = dev_score(clf.predict(x_dev))
        if best is None or score > best[0]:
            best = (score, c, clf)
    return best


def tfidf_single_label(ds: Dataset, make: Callable, grid: tuple) -> dict:
    features = tfidf_features(ds.lang)
    x_train = features.fit_transform(ds.train["text"])
    x_dev = features.transform(ds.dev["text"])
    dev_acc, c, clf = pick_on_dev(make, grid, x_train, ds.train["label"], x_dev,
                                  lambda pred: accuracy_score(ds.dev["label"], pred))  # fmt: skip
    pred = clf.predict(features.transform(ds.test["text"]))
    return scores(ds.test["label"], pred) | {"params": {"C": c, "dev_accuracy": round(dev_acc, 4)}}


def tfidf_multi_label(ds: Dataset, make: Callable, grid: tuple) -> dict:
    """One binary `make(c)` model per label (one-vs-rest) on the TF-IDF features; C by dev micro-F1."""
    binarizer = MultiLabelBinarizer().fit(ds.train["label"].map(split_labels))

    def targets(df: pd.DataFrame) -> np.ndarray:
        return binarizer.transform(df["label"].map(split_labels))

    features = tfidf_features(ds.lang)
    x_train = features.fit_transform(ds.train["text"])
    x_dev = features.transform(ds.dev["text"])
    y_dev = targets(ds.dev)
    dev_f1, c, clf = pick_on_dev(lambda c: OneVsRestClassifier(make(c)), grid, x_train, targets(ds.train), x_dev,
                                 lambda pred: f1_score(y_dev, pred, average="micro", zero_division=0))  # fmt: skip
    pred = clf.predict(features.transform(ds.test["text"]))
    return multi_label_scores(targets(ds.test), pred) | {"params": {"C": c, "dev_micro_f1": round(dev_f1, 4)}}


def run_tfidf_lr(ds: Dataset, workdir: Path, args: argparse.Namespace) -> dict:
    return tfidf_single_label(ds, logistic_regression, C_GRID)


def run_tfidf_svm(ds: Dataset, workdir: Path, args: argparse.Namespace) -> dict:
    return tfidf_single_label(ds, linear_svm, SVM_C_GRID)


def run_tfidf_lr_ovr(ds: Dataset, workdir: Path, args: argparse.Namespace) -> dict:
    return tfidf_multi_label(ds, logistic_regression, C_GRID)


def run_tfidf_svm_ovr(ds: Dataset, workdir: Path, args: argparse.Namespace) -> dict:
    return tfidf_multi_label(ds, linear_svm, SVM_C_GRID)


# ---------------------------------------------------------------------------- fastText


def fasttext_tokens(text: str, lang: str) -> str:
    text = text.lower()
    if lang == "zh":  # one token per character; latin words and numbers stay whole
        tokens = re.findall(r"[a-z0-9]+|[^\sa-z0-9]", text)
    else:
        tokens = re.findall(r"\w+|[^\w\s]", text)
    return " ".join(tokens)


def run_fasttext(ds: Dataset, workdir: Path, args: argparse.Namespace) -> dict:
    try:
        import fasttext
    except ImportError as exc:
        raise Skip(f"fasttext not importable ({exc}); pip install -r bench/requirements.txt")

    # Labels become indices: fastText labels are whitespace-delimited tokens.
    classes = sorted(ds.train["label"].unique())
    index = {label: i for i, label in enumerate(classes)}
    train_file = workdir / f"{ds.name}-fasttext-train.txt"
    with open(train_file, "w", encoding="utf-8") as f:
        for text, label in zip(ds.train["text"], ds.train["label"]):
            f.write(f"__label__{index[label]} {fasttext_tokens(text, ds.lang)}\n")

    def predict(model, texts: pd.Series) -> list[str]:
        # A list, not one string: fasttext 0.9.2's single-string predict breaks on NumPy 2.
        labels, _ = model.predict([fasttext_tokens(t, ds.lang) for t in texts], k=1)
        return [classes[int(lab[0].removeprefix("__label__"))] for lab in labels]

    best = None  # (dev accuracy, lr, model)
    for lr in LR_GRID:
        model = fasttext.train_supervised(
            input=str(train_file), epoch=25, wordNgrams=2, dim=100, lr=lr,
            minCount=1, thread=1, seed=args.seed, verbose=0,
        )  # fmt: skip
        dev_acc = accuracy_score(ds.dev["label"], predict(model, ds.dev["text"]))
        if best is None or dev_acc > best[0]:
            best = (dev_acc, lr, model)
    dev_acc, lr, model = best
    pred = predict(model, ds.test["text"])
    return scores(ds.test["label"], pred) | {"params": {"lr": lr, "dev_accuracy": round(dev_acc, 4)}}


# ---------------------------------------------------------------------------- albert CLI


def run_cli(args: list[str], capture_stdout: bool = False) -> tuple[int, str, str]:
    """Run `albert ARGS`, streaming its stderr (and stdout unless captured) to our stderr.

    Returns (exit code, captured stdout, tail of stderr).
    """
    cmd = albert_command() + args
    log("$ " + shlex.join(cmd))
    sys.stderr.flush()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE if capture_stdout else sys.stderr, stderr=subprocess.PIPE)
    tail: deque[bytes] = deque(maxlen=64)

    def tee_stderr() -> None:
        for chunk in iter(lambda: proc.stderr.read1(4096), b""):
            sys.stderr.buffer.write(chunk)
            sys.stderr.buffer.flush()
            tail.append(chunk)

    tee = threading.Thread(target=tee_stderr, daemon=True)
    tee.start()
    out = proc.stdout.read() if capture_stdout else b""
    proc.wait()
    tee.join()
    return proc.returncode, out.decode("utf-8", "replace"), b"".join(tail).decode("utf-8", "replace")


def error_line(stderr: str, returncode: int) -> str:
    """The most useful line of a failed command's stderr."""
    lines = [line.strip(" \t│╭╮╰╯─") for line in stderr.splitlines()]
    lines = [line for line in lines if line]
    preferred = [line for line in lines if line.startswith("albert:")]
    line = (preferred or lines or ["(no output)"])[-1]
    return f"exit {returncode}: {line}"


def parse_json_object(stdout: str) -> dict:
    try:
        return json.loads(stdout)
    except json.JSONDecodeError:
        for line in reversed(stdout.splitlines()):
            if line.lstrip().startswith("{"):
                return json.loads(line)
        raise


def finetune_and_evaluate(ds: Dataset, workdir: Path, args: argparse.Namespace, system: str,
                          extra: list[str]) -> dict:
    """`albert finetune` (+ `extra` arguments) then `albert evaluate` on test; test scores and finetune figures."""
    model_dir = workdir / f"{ds.name}-{system}"
    if ds.multi_label:
        extra = ["--task", "multi_label", *extra]
    finetune = ["finetune", str(ds.files["train"]), "--dev", str(ds.files["dev"]), "-o", str(model_dir),
                *extra, *shlex.split(args.albert_args)]  # fmt: skip
    code, out, err = run_cli(finetune, capture_stdout=True)
    if code != 0:
        raise Skip(f"albert finetune failed, {error_line(err, code)}")
    try:
        trained = parse_json_object(out)
    except ValueError:
        trained = {}
    code, out, err = run_cli(["evaluate", str(model_dir), str(ds.files["test"]), "--json"], capture_stdout=True)
    if code != 0:
        raise Skip(f"albert evaluate failed, {error_line(err, code)}")
    try:
        report = parse_json_object(out)
        result = {key: float(report[key]) for key in ds.score_keys}
    except (ValueError, KeyError, TypeError) as exc:
        raise Skip(f"albert evaluate --json: unexpected output ({type(exc).__name__}: {exc}): {out[:200]!r}")
    if report.get("num_examples") not in (None, len(ds.test)):
        log(f"warning: albert evaluate scored {report['num_examples']} examples, test has {len(ds.test)}")
    shutil.rmtree(model_dir, ignore_errors=True)  # a base-size model is ~50 MB; keep the temp dir small
    params = {"albert_args": args.albert_args, "extra_args": shlex.join(extra)}
    params |= {k: trained[k] for k in ("steps", "train_seconds", "best_dev", "tapt") if k in trained}
    return result | {"params": params}


def run_albert(ds: Dataset, workdir: Path, args: argparse.Namespace) -> dict:
    return finetune_and_evaluate(ds, workdir, args, "albert", [])


def run_albert_no_bow(ds: Dataset, workdir: Path, args: argparse.Namespace) -> dict:
    return finetune_and_evaluate(ds, workdir, args, "albert_no_bow", ["--no-bow"])


def run_albert_tapt(ds: Dataset, workdir: Path, args: argparse.Namespace) -> dict:
    return finetune_and_evaluate(ds, workdir, args, "albert_tapt", ["--tapt-steps", str(args.tapt_steps)])


def pretrained_for(lang: str, specs: list[str]) -> str | None:
    """The --pretrained model for a language: `LANG=DIR` for that language, else a plain `DIR`."""
    plain, by_lang = None, {}
    for spec in specs:
        m = re.fullmatch(r"([a-z]{2,3})=(.+)", spec)
        if m:
            by_lang[m.group(1)] = m.group(2)
        else:
            plain = spec
    return by_lang.get(lang, plain)


def run_albert_pretrained(ds: Dataset, workdir: Path, args: argparse.Namespace) -> dict:
    init = pretrained_for(ds.lang, args.pretrained)
    if init is None:
        given = f" for language '{ds.lang}'" if args.pretrained else ""
        raise Skip(f"no pretrained model given{given} (--pretrained [{ds.lang}=]DIR, an `albert pretrain` output)")
    return finetune_and_evaluate(ds, workdir, args, "albert_pretrained", ["--init", init])


RUNNERS: dict[str, Callable[[Dataset, Path, argparse.Namespace], dict]] = {
    "tfidf_lr": run_tfidf_lr,
    "tfidf_svm": run_tfidf_svm,
    "fasttext": run_fasttext,
    "tfidf_lr_ovr": run_tfidf_lr_ovr,
    "tfidf_svm_ovr": run_tfidf_svm_ovr,
    "albert": run_albert,
    "albert_no_bow": run_albert_no_bow,
    "albert_tapt": run_albert_tapt,
    "albert_pretrained": run_albert_pretrained,
}


def applies(system: str, ds: Dataset) -> bool:
    """Whether `system` handles the dataset's kind of labels (the albert systems handle both)."""
    if system in SINGLE_LABEL_BASELINES:
        return not ds.multi_label
    if system in MULTI_LABEL_BASELINES:
        return ds.multi_label
    return True


# ---------------------------------------------------------------------------- report


METRIC_NAMES = {"accuracy": "accuracy", "micro_f1": "micro-F1"}


def print_tables(records: list[dict]) -> None:
    detail = [
        [r["dataset"], r["system"], METRIC_NAMES[r["metric"]], r.get(r["metric"]), r.get("macro_f1"),
         r.get("subset_accuracy"), fmt(r.get("wall_s"), 1), r["train_rows"], r["test_rows"],
         shorten(r.get("skipped", ""), 100)]
        for r in records
    ]  # fmt: skip
    log("\n" + markdown_table(
        ["dataset", "system", "metric", "score", "macro-F1", "subset acc", "wall s", "train", "test", "note"],
        detail, right=(3, 4, 5, 6, 7, 8),
    ))  # fmt: skip

    albert_columns = [s for s in ALBERT_SYSTEMS if any(r["system"] == s for r in records)]
    summary = [summary_row(name, [r for r in records if r["dataset"] == name], albert_columns)
               for name in dict.fromkeys(r["dataset"] for r in records)]  # fmt: skip
    log("\nJudged figure on test (accuracy; micro-F1 for multi-label). Verdict: is `albert` at or above the best "
        "classic baseline; gap = albert - best baseline.\n")
    headers = ["dataset", "metric", "best classic baseline", *albert_columns, "verdict", "gap"]
    n = len(albert_columns)
    log(markdown_table(headers, summary, right=(*range(3, 3 + n), 3 + n + 1)))


def summary_row(name: str, records: list[dict], albert_columns: list[str]) -> list:
    """dataset, metric, best classic baseline, each albert system's figure, verdict for `albert`, its gap."""
    metric = records[0]["metric"]
    figure = {r["system"]: r.get(metric) for r in records}
    base = [(figure[s], s) for s in BASELINES if figure.get(s) is not None]
    best_value, best_system = max(base, key=lambda b: b[0]) if base else (None, None)
    ours = figure.get("albert")
    verdict, gap = "-", None
    if base and ours is not None:
        verdict = "at or above" if ours >= best_value else "below"
        gap = f"{100 * (ours - best_value):+.1f} pts"
    best = f"{fmt(best_value)} ({best_system})" if best_system else "-"
    return [name, METRIC_NAMES[metric], best, *[figure.get(s) for s in albert_columns], verdict, gap]


# ---------------------------------------------------------------------------- main


def parse_systems(text: str) -> list[str]:
    """`--only`: system names and groups, comma-separated, in SYSTEMS order."""
    chosen: set[str] = set()
    for item in (x.strip() for x in text.split(",")):
        if item in GROUPS:
            chosen |= set(GROUPS[item])
        elif item in SYSTEMS:
            chosen.add(item)
        elif item:
            raise argparse.ArgumentTypeError(f"unknown system '{item}' (systems: {', '.join(SYSTEMS)}; "
                                             f"groups: {', '.join(GROUPS)})")
    if not chosen:
        raise argparse.ArgumentTypeError("no system given")
    return [s for s in SYSTEMS if s in chosen]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help=f"subsample train to {QUICK_TRAIN_ROWS} and dev/test to {QUICK_EVAL_ROWS} rows (stratified)")
    p.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated (default: %(default)s)")
    p.add_argument("--albert-args", default="", help='extra arguments for every albert system\'s `finetune`, e.g. "--epochs 1"')
    p.add_argument("--only", default="all", type=parse_systems,
                   help=f"systems to run, comma-separated: {', '.join(SYSTEMS)} or the groups {', '.join(GROUPS)} "
                        "(default: all)")
    p.add_argument("--tapt-steps", type=int, default=TAPT_STEPS,
                   help="albert_tapt: task-adaptive pretraining steps before fine-tuning (default: %(default)s)")
    p.add_argument("--pretrained", action="append", default=[], metavar="[LANG=]DIR",
                   help="albert_pretrained: the model to --init from (an `albert pretrain` output); LANG=DIR "
                        "for one language (en, zh), repeatable. Without it the row is skipped")
    p.add_argument("--out", type=Path, help="also write the JSON lines to this file")
    p.add_argument("--seed", type=int, default=0, help="seed for subsampling and fastText (default: 0)")
    return p.parse_args(argv)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    systems = args.only
    if args.tapt_steps < 1:
        raise SystemExit("--tapt-steps must be at least 1")
    data = shared_data()
    if data is None:
        log("accuracy: ../shared/data not found next to the repository; nothing to benchmark (skipped).")
        return 0

    out = open(args.out, "w", encoding="utf-8") if args.out else None
    records: list[dict] = []
    try:
        with tempfile.TemporaryDirectory(prefix="albert-bench-") as tmp:
            workdir = Path(tmp)
            for name in [d.strip() for d in args.datasets.split(",") if d.strip()]:
                try:
                    folder, multi_label = find_dataset(name, data, workdir)
                except ValueError as exc:
                    log(f"[{name}] skipped: {exc}")
                    continue
                ds = load_dataset(name, folder, multi_label, args.quick, args.seed, workdir)
                task = "multi_label" if ds.multi_label else "single_label"
                for system in systems:
                    if not applies(system, ds):
                        log(f"[{name}] {system}: not run ({task.replace('_', '-')} dataset)")
                        continue
                    log(f"[{name}] {system}: {len(ds.train)} train / {len(ds.test)} test rows, lang={ds.lang}, {task}")
                    record = {"dataset": name, "system": system, "task": task, "metric": ds.metric,
                              **dict.fromkeys(ds.score_keys), "wall_s": None, "train_rows": len(ds.train),
                              "test_rows": len(ds.test)}  # fmt: skip
                    try:
                        with Timer() as t:
                            result = RUNNERS[system](ds, workdir, args)
                        record |= result | {"wall_s": round(t.seconds, 2)}
                        log(f"[{name}] {system}: {ds.metric} {record[ds.metric]:.4f}, "
                            f"macro-F1 {record['macro_f1']:.4f}, {t.seconds:.1f} s")  # fmt: skip
                    except Skip as exc:
                        record["skipped"] = str(exc)
                        log(f"[{name}] {system}: skipped: {exc}")
                    record["quick"] = args.quick
                    emit(record, *([out] if out else []))
                    records.append(record)
    finally:
        if out:
            out.close()
    if records:
        print_tables(records)
    return 0


if __name__ == "__main__":
    sys.exit(main())
