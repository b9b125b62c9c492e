"""Long documents (issue 20): what reading a text as windows costs against truncating it, in time and memory.

    .venv/bin/python bench/long_documents.py [--rounds 3] [--keep DIR] [--out results.jsonl]
    .venv/bin/python bench/long_documents.py --model-windowed W --model-truncated T   # reuse two models

Trains two small models on ``../shared/data/movie_reviews/train.csv`` (reviews of about 700 words) with the same
seed and default from-scratch shape (128 tokens): ``albert finetune --windows --max-steps 2`` (windowed) and the
same with ``--no-windows`` (truncated). Two steps are enough: throughput and memory do not depend on how well a
model is trained. Then, each measurement one fresh ``albert predict`` process, as a user runs it:

* throughput: ``albert predict MODEL test.csv --text-column text`` for each model, interleaved (the order swaps
  every round), ``--rounds`` times. Start-up (imports, loading the SavedModel) is separated by also predicting
  one short text in the same round; net seconds = whole run - that run, median over the rounds. Reported as
  documents/s and tokens/s, where tokens are the ones the model actually reads, counted with its own tokenizer:
  truncated ``min(pieces + 2, 128)``, windowed every token of every window ([CLS]/[SEP] of each included);
  the ratios are windowed / truncated.
* memory: peak RSS of the process (``ru_maxrss`` of that child, from ``os.wait4``) on (a) the test split, both
  models; on the windowed model, (b) one 3,000-word text and (c) one 100,000-character text, both built from
  test reviews, against (d) one short line. A windowed model reads at most ``max_windows`` windows of a text,
  so its memory is bounded by batch x max_windows x 128 tokens whatever the text's length.

One JSON line per measurement on stdout (and ``--out``), a markdown table on stderr. The 1-minute load average
before and after the runs is in every line: on a shared machine, read the ratios (measured in the same rounds),
not the absolute rates.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import albert_command, albert_json, emit, log, markdown_table, shared_data  # noqa: E402

MODELS = ("windowed", "truncated")
SHORT_TEXT = "a quiet , well acted film that never quite finds its story ."
LONG_WORDS = 3_000
LONG_CHARS = 100_000


# --- data -----------------------------------------------------------------------------------------------------


def read_texts(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8") as f:
        return [row["text"] for row in csv.DictReader(f)]


def one_line(text: str) -> str:
    """Whitespace runs (newlines included) as one space: a plain-text input line is one text."""
    return re.sub(r"\s+", " ", text).strip()


def long_texts(texts: list[str]) -> dict[str, str]:
    """One text of `LONG_WORDS` words and one of `LONG_CHARS` characters, made of test reviews in order."""
    words, i = [], 0
    while len(words) < LONG_WORDS or sum(map(len, words)) + len(words) < LONG_CHARS:
        words.extend(one_line(texts[i % len(texts)]).split())
        i += 1
    chars = " ".join(words)[:LONG_CHARS].rsplit(" ", 1)[0]  # cut on a word boundary
    return {"3000_words": " ".join(words[:LONG_WORDS]), "100k_chars": chars}


def write_line(path: Path, text: str) -> Path:
    path.write_text(one_line(text) + "\n", encoding="utf-8")
    return path


# --- models and the tokens they read ----------------------------------------------------------------------------


def train_models(train: Path, work: Path, steps: int, seed: int) -> dict[str, Path]:
    models = {"windowed": work / "windowed", "truncated": work / "truncated"}
    for name, flag in (("windowed", "--windows"), ("truncated", "--no-windows")):
        if (models[name] / "saved_model.pb").is_file():
            log(f"reusing {models[name]}")
            continue
        log(f"albert finetune {flag} --max-steps {steps} -> {models[name]}")
        albert_json("finetune", train, "-o", models[name], flag, "--max-steps", steps, "--seed", seed, "--overwrite")
    return models


def token_counts(model: Path, texts: list[str]) -> dict:
    """Tokens the model reads for `texts` (windows: all windows' tokens), its windows and geometry."""
    from albert_cli.artifacts.modeldir import open_model_dir
    from albert_cli.text.tokenizers import tokenizer_for_model_dir
    from albert_cli.text.windows import WindowSpec, split_windows

    path, meta = open_model_dir(model)
    tok = tokenizer_for_model_dir(path, meta)
    length = int(meta.max_seq_length)
    spec = WindowSpec.from_dict(meta.windows)
    ids = [tok.encode(t) for t in texts]
    pieces = [len(i) for i in ids]
    if spec is None:
        tokens = [min(p + 2, length) for p in pieces]
        windows = [1] * len(texts)
    else:
        split = [split_windows(i, length, spec, tok.cls_id, tok.sep_id) for i in ids]
        tokens = [sum(map(len, w)) for w in split]
        windows = [len(w) for w in split]
    return {"max_seq_length": length, "windows_spec": spec.to_dict() if spec else None, "pieces": sum(pieces),
            "tokens": sum(tokens), "windows": sum(windows),
            "share_longer": round(sum(p > length - 2 for p in pieces) / len(texts), 3)}


# --- one measured `albert predict` ------------------------------------------------------------------------------


def run_predict(model: Path, source: Path, expect: int, batch_size: int) -> dict:
    """Run ``albert predict MODEL SOURCE`` in a fresh process: wall seconds and that process's peak RSS."""
    argv = albert_command() + ["predict", str(model), str(source), "--format", "label", "--batch-size",
                               str(batch_size)]
    if source.suffix == ".csv":
        argv += ["--text-column", "text"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, env=env)
        # wait4, not wait: it gives this child's own rusage (RUSAGE_CHILDREN is the maximum over all children).
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        answered = sum(1 for _ in out)
        err.seek(0)
        last = err.read().strip().splitlines()[-1:]
    if proc.returncode != 0 or answered != expect:
        raise RuntimeError(f"albert predict {model.name} {source.name}: exit {proc.returncode}, "
                           f"{answered} of {expect} answers; {last}")
    return {"seconds": seconds, "peak_mib": usage.ru_maxrss / 1024}  # ru_maxrss is in KiB on Linux


def median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


# --- the benchmark ----------------------------------------------------------------------------------------------


def measure(models: dict[str, Path], inputs: dict[str, tuple[Path, int]], rounds: int, batch_size: int) -> dict:
    """Every (model, input) run `rounds` times, the models interleaved and their order swapped each round."""
    cases = [(m, "test") for m in MODELS] + [(m, "short") for m in MODELS]
    cases += [("windowed", "3000_words"), ("windowed", "100k_chars")]
    runs: dict[tuple[str, str], list[dict]] = {c: [] for c in cases}
    for r in range(rounds):
        order = MODELS if r % 2 == 0 else MODELS[::-1]
        for model in order:
            for name in ("short", "test", "3000_words", "100k_chars"):
                if (model, name) not in runs:
                    continue
                path, n = inputs[name]
                result = run_predict(models[model], path, n, batch_size)
                runs[(model, name)].append(result)
                log(f"round {r + 1}/{rounds}: {model} {name}: {result['seconds']:.1f}s, "
                    f"{result['peak_mib']:.0f} MiB")
    return runs


def throughput_records(runs: dict, counts: dict, docs: int, rounds: int) -> dict[str, dict]:
    out = {}
    for model in MODELS:
        full, short = runs[(model, "test")], runs[(model, "short")]
        net = statistics.median(f["seconds"] - s["seconds"] for f, s in zip(full, short))
        out[model] = {"bench": "long_documents", "measure": "throughput", "model": model, "input": "test",
                      "docs": docs, **counts[model], "rounds": rounds,
                      "seconds_whole": round(median(full, "seconds"), 2),
                      "seconds_startup": round(median(short, "seconds"), 2), "seconds_net": round(net, 2),
                      "docs_per_s_whole": round(docs / median(full, "seconds"), 2),
                      "docs_per_s": round(docs / net, 2), "tokens_per_s": round(counts[model]["tokens"] / net, 1)}
    w, t = out["windowed"], out["truncated"]
    for key in ("docs_per_s", "tokens_per_s", "docs_per_s_whole"):
        w[f"ratio_{key}"] = round(w[key] / t[key], 3)
    return out


def memory_records(runs: dict) -> list[dict]:
    base = median(runs[("windowed", "short")], "peak_mib")
    out = []
    for (model, name), results in runs.items():
        peaks = [r["peak_mib"] for r in results]
        out.append({"bench": "long_documents", "measure": "peak_rss", "model": model, "input": name,
                    "peak_mib": round(statistics.median(peaks), 1), "peak_mib_min": round(min(peaks), 1),
                    "peak_mib_max": round(max(peaks), 1),
                    "ratio_to_short_windowed": round(statistics.median(peaks) / base, 3), "rounds": len(results)})
    return out


def print_tables(throughput: dict[str, dict], memory: list[dict]) -> None:
    rows = [[m, r["docs"], f"{r['tokens']:,}", f"{r['windows']:,}", f"{r['seconds_whole']:.1f}",
             f"{r['docs_per_s_whole']:.1f}", f"{r['seconds_startup']:.1f}", f"{r['seconds_net']:.1f}",
             f"{r['docs_per_s']:.1f}", f"{r['tokens_per_s']:,.0f}"] for m, r in throughput.items()]
    w = throughput["windowed"]
    rows.append(["windowed / truncated", "", "", "", "", f"{w['ratio_docs_per_s_whole']:.3f}", "", "",
                 f"{w['ratio_docs_per_s']:.3f}", f"{w['ratio_tokens_per_s']:.3f}"])
    log(markdown_table(["model", "docs", "tokens read", "windows", "s whole", "docs/s whole", "s start-up", "s net",
                        "docs/s net", "tokens/s net"], rows, right=range(1, 10)))
    log("")
    rows = [[r["model"], r["input"], f"{r['peak_mib']:.0f}", f"{r['peak_mib_min']:.0f}-{r['peak_mib_max']:.0f}",
             f"{r['ratio_to_short_windowed']:.2f}"] for r in memory]
    log(markdown_table(["model", "input", "peak RSS MiB", "min-max", "/ short (windowed)"], rows, right=(2, 3, 4)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3, help="repeats of every measurement (median)")
    ap.add_argument("--steps", type=int, default=2, help="training steps of each model")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--batch-size", type=int, default=32, help="albert predict --batch-size (its default)")
    ap.add_argument("--keep", type=Path, default=None, help="work directory to keep (models, inputs); reused")
    ap.add_argument("--model-windowed", type=Path, default=None)
    ap.add_argument("--model-truncated", type=Path, default=None)
    ap.add_argument("--out", type=argparse.FileType("a"), default=None)
    args = ap.parse_args()
    data = shared_data()
    reviews = data / "movie_reviews" if data else None
    if reviews is None or not all((reviews / f"{s}.csv").is_file() for s in ("train", "test")):
        log("bench/long_documents.py: ../shared/data/movie_reviews/{train,test}.csv is not present; skipped")
        return
    if (args.model_windowed is None) != (args.model_truncated is None):
        sys.exit("bench/long_documents.py: give both --model-windowed and --model-truncated, or neither")
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-long-documents-"))
    work.mkdir(parents=True, exist_ok=True)
    if args.model_windowed:
        models = {"windowed": args.model_windowed, "truncated": args.model_truncated}
    else:
        models = train_models(reviews / "train.csv", work, args.steps, args.seed)

    test_csv = reviews / "test.csv"
    texts = read_texts(test_csv)
    longs = long_texts(texts)
    inputs = {"test": (test_csv, len(texts)), "short": (write_line(work / "short.txt", SHORT_TEXT), 1)}
    inputs.update({name: (write_line(work / f"{name}.txt", text), 1) for name, text in longs.items()})
    counts = {m: token_counts(models[m], texts) for m in MODELS}
    long_counts = {name: token_counts(models["windowed"], [text]) for name, text in longs.items()}
    if counts["windowed"]["windows_spec"] is None or counts["truncated"]["windows_spec"] is not None:
        sys.exit(f"bench/long_documents.py: {models['windowed']} must have windows and "
                 f"{models['truncated']} must not")
    log(f"test split: {len(texts)} texts; windowed reads {counts['windowed']['windows']} windows")

    load_before = round(os.getloadavg()[0], 2)
    runs = measure(models, inputs, args.rounds, args.batch_size)
    throughput = throughput_records(runs, counts, len(texts), args.rounds)
    memory = memory_records(runs)
    load = {"load_avg_1min_before": load_before, "load_avg_1min_after": round(os.getloadavg()[0], 2)}
    extra = [args.out] if args.out else []
    for record in [*throughput.values(), *memory]:
        record.update(load)
        if record.get("input") in long_counts:
            record.update(characters=len(longs[record["input"]]), **long_counts[record["input"]])
        emit(record, *extra)
    print_tables(throughput, memory)


if __name__ == "__main__":
    main()
