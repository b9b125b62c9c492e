"""Accuracy benchmark: albert-cli against two classic baselines on the shared datasets.

    python bench/accuracy.py [--quick] [--datasets ag_news,trec,...] [--albert-args "..."]
                             [--only SYSTEM,...] [--tapt-steps N] [--pretrained [LANG=]DIR]
                             [--out results.jsonl]

Systems, for each dataset in <repo>/../shared/data/<name>/{train,dev,test}.csv:

  tfidf_lr   scikit-learn TF-IDF + logistic regression. English: word 1-2-grams
             plus char_wb 2-5-grams; Chinese (no word segmenter here): char
             1-3-grams. Sublinear tf. C picked from C_GRID by dev accuracy; the
             model trained on train with that C is scored on test.
  fasttext   fastText supervised, 25 epochs, wordNgrams 2, dim 100, one thread
             (deterministic), lr picked from LR_GRID by dev accuracy. Text is
             lowercased and split into words and punctuation; Chinese into single
             characters. Skipped, with the reason, if `fasttext` is not importable.
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

--only takes system names and the groups baselines, albert_all (the four
albert systems) and all, comma-separated. --albert-args go to every albert
system's `finetune`.

wall_s is the whole cost of a system on a dataset: for the baselines, fitting
(including the dev grid search) and predicting; for the albert systems,
finetune (with TAPT when there is one) + evaluate.
Language is detected from the training text (mostly CJK characters -> "zh").

Output: one JSON line per (dataset, system) on stdout, and to --out if given;
progress and the markdown tables on stderr.
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

import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_union

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Timer, albert_command, emit, fmt, log, markdown_table, shared_data  # noqa: E402

DATASETS = ["ag_news", "trec", "sms_spam", "chnsenticorp"]
SYSTEMS = ["tfidf_lr", "fasttext", "albert", "albert_no_bow", "albert_tapt", "albert_pretrained"]
BASELINES = ["tfidf_lr", "fasttext"]
ALBERT_SYSTEMS = ["albert", "albert_no_bow", "albert_tapt", "albert_pretrained"]
GROUPS = {"all": SYSTEMS, "baselines": BASELINES, "albert_all": ALBERT_SYSTEMS}
TAPT_STEPS = 1000
QUICK_TRAIN_ROWS = 1000
QUICK_EVAL_ROWS = 300  # test, and dev (used for tuning / early stopping)
C_GRID = (1.0, 4.0, 16.0)
LR_GRID = (0.25, 0.5, 1.0)


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


# ---------------------------------------------------------------------------- data


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


def load_dataset(folder: Path, quick: bool, seed: int, workdir: Path) -> Dataset:
    files = {split: folder / f"{split}.csv" for split in ("train", "dev", "test")}
    frames = {split: read_split(path) for split, path in files.items()}
    if quick:
        sizes = {"train": QUICK_TRAIN_ROWS, "dev": QUICK_EVAL_ROWS, "test": QUICK_EVAL_ROWS}
        for split, rows in sizes.items():
            frames[split] = subsample(frames[split], rows, seed)
            files[split] = workdir / f"{folder.name}-{split}.csv"
            frames[split].to_csv(files[split], index=False)
    return Dataset(folder.name, detect_lang(frames["train"]["text"]), **frames, files=files)


def scores(gold: pd.Series, pred) -> dict[str, float]:
    return {
        "accuracy": float(accuracy_score(gold, pred)),
        "macro_f1": float(f1_score(gold, pred, average="macro")),
    }


# ---------------------------------------------------------------------------- TF-IDF + LR


def tfidf_features(lang: str):
    if lang == "zh":
        return TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True)
    return make_union(
        TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True),
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True),
    )


def run_tfidf_lr(ds: Dataset, workdir: Path, args: argparse.Namespace) -> dict:
    features = tfidf_features(ds.lang)
    x_train = features.fit_transform(ds.train["text"])
    x_dev = features.transform(ds.dev["text"])
    best = None  # (dev accuracy, C, classifier); ties keep the smaller C
    for c in C_GRID:
        clf = LogisticRegression(C=c, max_iter=2000).fit(x_train, ds.train["label"])
        dev_acc = accuracy_score(ds.dev["label"], clf.predict(x_dev))
        if best is None or dev_acc > best[0]:
            best = (dev_acc, c, clf)
    dev_acc, c, clf = best
    pred = clf.predict(features.transform(ds.test["text"]))
    return scores(ds.test["label"], pred) | {"params": {"C": c, "dev_accuracy": round(dev_acc, 4)}}


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
        result = {"accuracy": float(report["accuracy"]), "macro_f1": float(report["macro_f1"])}
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
    "fasttext": run_fasttext,
    "albert": run_albert,
    "albert_no_bow": run_albert_no_bow,
    "albert_tapt": run_albert_tapt,
    "albert_pretrained": run_albert_pretrained,
}


# ---------------------------------------------------------------------------- report


def print_tables(records: list[dict]) -> None:
    detail = [
        [r["dataset"], r["system"], r.get("accuracy"), r.get("macro_f1"), fmt(r.get("wall_s"), 1),
         r["train_rows"], r["test_rows"], shorten(r.get("skipped", ""), 100)]
        for r in records
    ]  # fmt: skip
    log("\n" + markdown_table(
        ["dataset", "system", "accuracy", "macro-F1", "wall s", "train", "test", "note"], detail, right=(2, 3, 4, 5, 6)
    ))  # fmt: skip

    albert_columns = [s for s in ALBERT_SYSTEMS if any(r["system"] == s for r in records)]
    summary = []
    for name in dict.fromkeys(r["dataset"] for r in records):
        acc = {r["system"]: r.get("accuracy") for r in records if r["dataset"] == name}
        base = [(acc[s], s) for s in BASELINES if acc.get(s) is not None]
        ours = [(acc[s], s) for s in albert_columns if acc.get(s) is not None]
        best_acc, best_sys = max(base) if base else (None, None)
        gap = None
        if base and ours:
            top, top_sys = max(ours)
            gap = f"{100 * (top - best_acc):+.1f} pts ({top_sys})"
        best = f"{fmt(best_acc)} ({best_sys})" if best_sys else "-"
        summary.append([name, acc.get("tfidf_lr"), acc.get("fasttext"), best, *[acc.get(s) for s in albert_columns], gap])
    log("\nTest accuracy; gap = best albert system - best baseline.\n")
    headers = ["dataset", "tfidf_lr", "fasttext", "best baseline", *albert_columns, "gap"]
    log(markdown_table(headers, summary, right=(1, 2, *range(4, 4 + len(albert_columns) + 1))))


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
                folder = data / name
                if not all((folder / f"{s}.csv").is_file() for s in ("train", "dev", "test")):
                    log(f"[{name}] skipped: {folder}/{{train,dev,test}}.csv not found")
                    continue
                ds = load_dataset(folder, args.quick, args.seed, workdir)
                for system in systems:
                    log(f"[{name}] {system}: {len(ds.train)} train / {len(ds.test)} test rows, lang={ds.lang}")
                    record = {"dataset": name, "system": system, "accuracy": None, "macro_f1": None,
                              "wall_s": None, "train_rows": len(ds.train), "test_rows": len(ds.test)}  # fmt: skip
                    try:
                        with Timer() as t:
                            result = RUNNERS[system](ds, workdir, args)
                        record |= result | {"wall_s": round(t.seconds, 2)}
                        log(f"[{name}] {system}: accuracy {record['accuracy']:.4f}, "
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
