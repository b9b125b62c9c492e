"""Pretraining benchmark: `albert pretrain` throughput and what pretraining buys downstream.

    python bench/pretrain.py [--quick] [--minutes 30] [--batch-size 32] [--seq 128]
                             [--ft-steps N] [--out results.jsonl] [--keep DIR]

1. Trains a SentencePiece vocabulary on ``../shared/data/en_pretrain/train.csv``
   (`text,doc` CSV) and pretrains the ``small`` config on it (``--doc-column doc``)
   for a fixed wall-clock budget (``--max-time``; 30 min, ``--quick`` 3 min).
2. Measures, in the same run and on the same (batch, seq) shape, the training
   step of keras-hub's ``AlbertMaskedLM`` (``AlbertBackbone`` of the same size,
   random weights, plain MLM -- no SOP head -- with ``keras.optimizers.Lamb``).
   Throughput is compared in padded positions/s (batch x seq per step), steady
   state (the first steps, which include tracing, are excluded).
3. Fine-tunes on ``ag_news`` and ``trec`` (`albert finetune ... --init OUT`) and
   from scratch with the same architecture (``--config small``) and the same
   budget (steps, learning rate, sequence length), then reports test accuracy
   (`albert evaluate --json`).

One JSON line per measurement on stdout (and --out), a markdown table on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Timer, albert_json, emit, log, markdown_table, shared_data  # noqa: E402


def steady_positions_per_second(log_file: Path, batch: int, seq: int, skip: int = 10) -> float | None:
    """Padded positions/s between the logged steps after `skip` (from logs/train.jsonl)."""
    rows = [json.loads(line) for line in log_file.read_text().splitlines()]
    rows = [r for r in rows if r["step"] > skip and "elapsed" in r]
    if len(rows) < 2:
        return None
    steps = rows[-1]["step"] - rows[0]["step"]
    return steps * batch * seq / max(rows[-1]["elapsed"] - rows[0]["elapsed"], 1e-9)


def keras_hub_positions_per_second(config: dict, batch: int, seq: int, preds: int, seconds: float,
                                   jit: bool = False) -> float:
    """keras-hub AlbertMaskedLM train steps on random data for ~`seconds` (after 3 warm-up steps)."""
    import keras
    import keras_hub
    import numpy as np

    backbone = keras_hub.models.AlbertBackbone(
        vocabulary_size=config["vocab_size"], num_layers=config["num_hidden_layers"],
        num_heads=config["num_attention_heads"], embedding_dim=config["embedding_size"],
        hidden_dim=config["hidden_size"], intermediate_dim=config["intermediate_size"],
        num_groups=config["num_hidden_groups"], num_inner_repetitions=config["inner_group_num"],
        max_sequence_length=config["max_position_embeddings"],
    )
    model = keras_hub.models.AlbertMaskedLM(backbone, preprocessor=None)
    model.compile(optimizer=keras.optimizers.Lamb(1e-3, global_clipnorm=1.0),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=jit)
    rng = np.random.default_rng(0)
    x = {
        "token_ids": rng.integers(5, config["vocab_size"], (batch, seq)).astype("int32"),
        "segment_ids": np.zeros((batch, seq), "int32"),
        "padding_mask": np.ones((batch, seq), "int32"),
        "mask_positions": np.sort(rng.integers(1, seq, (batch, preds)), axis=1).astype("int32"),
    }
    y = rng.integers(5, config["vocab_size"], (batch, preds)).astype("int32")
    w = np.ones((batch, preds), "float32")
    for _ in range(3):
        model.train_on_batch(x, y, sample_weight=w)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        model.train_on_batch(x, y, sample_weight=w)
        steps += 1
    return steps * batch * seq / (time.perf_counter() - start)


def finetune_accuracy(name: str, data: Path, work: Path, init: Path | None, args) -> dict:
    """Fine-tune (from `init` or from scratch with --config small), evaluate on test."""
    model = work / f"ft-{name}-{'pretrained' if init else 'scratch'}"
    common = ["--dev", data / "dev.csv", "--max-steps", args.ft_steps, "--max-seq-length", args.ft_seq,
              "--batch-size", 32, "--learning-rate", args.ft_lr, "--overwrite"]
    source = ["--init", init] if init else ["--config", "small"]
    with Timer() as t:
        albert_json("finetune", data / "train.csv", "-o", model, *source, *common)
        report = albert_json("evaluate", model, data / "test.csv", "--json")
    return {"dataset": name, "init": "pretrained" if init else "scratch", "test_accuracy": report.get("accuracy"),
            "macro_f1": report.get("macro_f1"), "steps": args.ft_steps, "wall_s": round(t.seconds, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=30.0, help="pretraining budget (wall clock)")
    ap.add_argument("--steps", type=int, default=None,
                    help="pretraining budget in steps instead (--minutes then only caps the run); the learning "
                         "rate decays linearly to 0 over them. Use it on a shared machine: 1,400 steps of the "
                         "default shape take about 30 minutes on two idle cores with --jit")
    ap.add_argument("--quick", action="store_true", help="3-minute pretraining, shorter fine-tuning")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--learning-rate", type=float, default=1e-3, help="pretraining peak LR (LAMB)")
    ap.add_argument("--vocab-size", type=int, default=8000)
    ap.add_argument("--jit", action=argparse.BooleanOptionalAction, default=True,
                    help="XLA-compile the train step, ours and keras-hub's (default: on)")
    ap.add_argument("--ft-steps", type=int, default=None, help="fine-tuning steps [600; quick 150]")
    ap.add_argument("--ft-seq", type=int, default=64)
    ap.add_argument("--ft-lr", type=float, default=2e-4)
    ap.add_argument("--datasets", default="ag_news,trec")
    ap.add_argument("--out", type=argparse.FileType("a"), default=None)
    ap.add_argument("--keep", type=Path, default=None, help="work directory to keep (default: a temp dir)")
    args = ap.parse_args()
    minutes = 3.0 if args.quick else args.minutes
    args.ft_steps = args.ft_steps or (150 if args.quick else 600)
    data = shared_data()
    if data is None:
        sys.exit("bench/pretrain.py: ../shared/data is not present")
    corpus = data / "en_pretrain" / "train.csv"
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-pretrain-"))
    work.mkdir(parents=True, exist_ok=True)
    extra = [args.out] if args.out else []
    rows = []

    log(f"tokenizer: {args.vocab_size} pieces on {corpus}")
    albert_json("tokenize", "train", corpus, "-o", work / "spm", "--vocab-size", args.vocab_size,
                "--input-sentence-size", 200_000)
    out = work / "pretrained"
    budget = f"{args.steps} steps (at most {minutes:g} min)" if args.steps else f"{minutes:g} min"
    log(f"pretraining 'small' for {budget} (batch {args.batch_size}, seq {args.seq})")
    summary = albert_json("pretrain", corpus, "--doc-column", "doc", "--tokenizer", work / "spm.model", "-o", out,
                          "--config", "small", "--max-seq-length", args.seq, "--batch-size", args.batch_size,
                          "--learning-rate", args.learning_rate, "--max-time", f"{minutes * 60:.0f}s",
                          *(["--max-steps", args.steps, "--decay-steps", args.steps] if args.steps
                            else ["--decay-steps", 100_000]), "--warmup-steps", 100, "--log-every", 10,
                          "--save-every", 500, "--overwrite", *(["--jit"] if args.jit else []))
    ours = steady_positions_per_second(out / "logs" / "train.jsonl", args.batch_size, args.seq)
    config = json.loads((out / "albert_pretrain.json").read_text())["config"]
    preds = 20
    log("keras-hub AlbertMaskedLM train step, same shape")
    hub = keras_hub_positions_per_second(config, args.batch_size, args.seq, preds, seconds=30 if args.quick else 60,
                                        jit=args.jit)
    record = {"bench": "pretrain_throughput", "config": "small", "batch": args.batch_size, "seq": args.seq, "jit": args.jit,
              "minutes": minutes, "step_budget": args.steps, "steps": summary["steps"],
              "pretrain_seconds": summary.get("seconds"), "first_loss": summary["first_loss"],
              "final_loss": summary["final_loss"], "final_mlm_accuracy": summary["final_mlm_accuracy"],
              "final_sop_accuracy": summary["final_sop_accuracy"],
              "albert_cli_real_tokens_per_s": summary["tokens_per_second"],
              "albert_cli_positions_per_s": round(ours or 0, 1), "keras_hub_mlm_positions_per_s": round(hub, 1)}
    emit(record, *extra)

    for name in args.datasets.split(","):
        for init in (out, None):
            log(f"fine-tuning {name} from {'the pretrained model' if init else 'scratch'} ({args.ft_steps} steps)")
            try:
                r = finetune_accuracy(name, data / name, work, init, args)
            except RuntimeError as exc:
                r = {"dataset": name, "init": "pretrained" if init else "scratch", "error": str(exc)}
            emit({"bench": "pretrain_finetune", **r}, *extra)
            rows.append([r["dataset"], r["init"], r.get("test_accuracy"), r.get("macro_f1"), r.get("wall_s")])

    log("")
    log(markdown_table(["system", "positions/s (batch x seq)"],
                       [["albert-cli pretrain (MLM+SOP, LAMB)", round(ours or 0)],
                        ["keras-hub AlbertMaskedLM (MLM, Lamb)", round(hub)]], right=[1]))
    log("")
    log(markdown_table(["dataset", "init", "test acc", "macro F1", "wall s"], rows, right=[2, 3, 4]))
    log(f"\nwork directory: {work}")


if __name__ == "__main__":
    main()
