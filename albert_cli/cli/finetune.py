"""`albert finetune`: train a text classifier and write a model directory."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer

from albert_cli.cli.options import (
    InputFormatOpt,
    LabelColumnOpt,
    OldInputFormatOpt,
    SkipBadRowsOpt,
    TextColumnOpt,
    TextPairColumnOpt,
    input_format,
)


def finetune(
    train: str = typer.Argument(..., help="Training data: CSV, TSV, JSONL or fastText-style text ('-' for stdin)."),
    output: Path = typer.Option(..., "--output", "-o", help="Model directory to write (a TensorFlow SavedModel)."),
    dev: Optional[str] = typer.Option(None, "--dev", help="Dev data for evaluation, best-model selection and early stopping."),
    dev_split: Optional[float] = typer.Option(None, "--dev-split", help="Hold out this fraction of TRAIN as dev (e.g. 0.1)."),
    init: Optional[str] = typer.Option(
        None, "--init", help="Start from a pretrained model: our model directory, a Google ALBERT checkpoint or an HF directory."
    ),
    config: Optional[str] = typer.Option(
        None, "--config", help="Shape of a new model (without --init): preset tiny|small|base|large or a JSON file."
    ),
    tokenizer: Optional[Path] = typer.Option(
        None, "--tokenizer", help="SentencePiece model (from `albert tokenize train`) for a new model [default: train one]."
    ),
    task: str = typer.Option("single_label", "--task", help="single_label, multi_label or regression."),
    multi_label: bool = typer.Option(False, "--multi-label", help="Same as --task multi_label ('a|b' labels in CSV, lists in JSONL)."),
    fmt: Optional[str] = InputFormatOpt,
    old_fmt: Optional[str] = OldInputFormatOpt,
    text_column: str = TextColumnOpt,
    text_pair_column: Optional[str] = TextPairColumnOpt,
    label_column: str = LabelColumnOpt,
    epochs: Optional[float] = typer.Option(
        None, "--epochs", help="Training epochs [default: 8 from scratch (at most 1,500 steps), 3 with --init]."
    ),
    batch_size: int = typer.Option(32, "--batch-size", help="Examples per training step."),
    learning_rate: Optional[float] = typer.Option(
        None, "--learning-rate", "--lr", help="Peak learning rate [default: 5e-4 from scratch, 3e-5 with --init]."
    ),
    warmup_ratio: float = typer.Option(0.1, "--warmup-ratio", help="Fraction of steps for linear warm-up."),
    weight_decay: float = typer.Option(0.01, "--weight-decay", help="AdamW weight decay (not on LayerNorm and biases)."),
    dropout: Optional[float] = typer.Option(None, "--dropout", help="Dropout rate [default: the model config's]."),
    pooling: Optional[str] = typer.Option(
        None, "--pooling", help="Classifier input: pooler (the published tanh pooler on [CLS]) or mean (mean of the "
        "token vectors) [default: mean from scratch; with --init, the model's own, else pooler]."
    ),
    bow: Optional[bool] = typer.Option(
        None, "--bow/--no-bow", help="Train a linear bag-of-n-grams model (hashed words and word pairs, as fastText) "
        "beside ALBERT, each with its own loss; predictions mix their logits, ALBERT's share picked on --dev "
        "[default: on from scratch; with --init, the model's own, else off].", show_default=False,
    ),
    max_seq_length: Optional[int] = typer.Option(
        None, "--max-seq-length", help="Tokens per example [default: 99th percentile of the data, at most 512 with --init, 128 from scratch]."
    ),
    windows: Optional[bool] = typer.Option(
        None, "--windows/--no-windows", help="Read a text longer than --max-seq-length as overlapping windows, "
        "pooled into one document vector (single texts) [default: on when more than 1% of the training texts "
        "are longer].", show_default=False,
    ),
    window_stride: Optional[int] = typer.Option(
        None, "--window-stride", help="Pieces from one window to the next [default: 3/4 of a window]."
    ),
    max_windows: Optional[int] = typer.Option(
        None, "--max-windows", help="The most windows read per text (memory: batch x windows x length tokens); "
        "pieces past them are not read [default: enough for 95% of the training texts, at most 16]."
    ),
    window_pooling: Optional[str] = typer.Option(
        None, "--window-pooling", help="How window vectors make the document's: mean or max [default: mean]."
    ),
    vocab_size: Optional[int] = typer.Option(
        None, "--vocab-size", help="SentencePiece vocabulary size for a new model [default: 8000, less if the data is small]."
    ),
    seed: int = typer.Option(42, "--seed", help="Random seed (data order, initialisation, dropout)."),
    eval_every: Optional[int] = typer.Option(None, "--eval-every", help="Evaluate on dev every N steps [default: each epoch]."),
    patience: Optional[int] = typer.Option(None, "--patience", help="Stop after N evaluations without improvement."),
    metric: Optional[str] = typer.Option(
        None, "--metric", help="Dev metric that picks the best model: accuracy, macro_f1, micro_f1, weighted_f1 (single-label); "
        "micro_f1, macro_f1, subset_accuracy (multi-label); mse, mae, pearson, spearman (regression) "
        "[default: accuracy, micro_f1, mse]."
    ),
    class_weights: Optional[str] = typer.Option(None, "--class-weights", help="'balanced' to weight classes by inverse frequency."),
    save_every: Optional[int] = typer.Option(None, "--save-every", help="Checkpoint every N steps [default: each epoch]."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="Stop after N steps."),
    tapt_steps: int = typer.Option(
        0, "--tapt-steps", help="First run N steps of ALBERT's pretraining objective (masked LM + sentence order) "
        "on the training texts (task-adaptive pretraining), then fine-tune.",
    ),
    unlabeled: Optional[List[str]] = typer.Option(
        None, "--unlabeled", help="More texts for --tapt-steps (and for a new vocabulary): text (one per line), "
        "CSV/TSV or JSONL (--text-column). Repeatable.", show_default=False,
    ),
    tapt_learning_rate: Optional[float] = typer.Option(
        None, "--tapt-learning-rate", help="LAMB rate for --tapt-steps [default: 1e-3 from scratch, "
        "1.76e-3*sqrt(batch/4096) with --init].",
    ),
    ema: Optional[float] = typer.Option(
        None, "--ema", help="Evaluate on dev and save a moving average of the weights with this momentum (0: off, "
        "the last weights) [default: 0.995 from scratch, 0 with --init].",
    ),
    skip_bad_rows: bool = SkipBadRowsOpt,
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing OUTPUT directory."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run from its last checkpoint."),
    keep_checkpoints: bool = typer.Option(
        False, "--keep-checkpoints/--no-keep-checkpoints", help="Keep the resumable training state (OUTPUT/checkpoints: "
        "weights, optimizer and loop state) in the finished model [default: dropped; the model serves without it]."
    ),
    jit: bool = typer.Option(False, "--jit/--no-jit", help="XLA-compile the training step (compiles once per length bucket)."),
    precision: str = typer.Option(
        "fp32", "--precision", help="fp32, bf16 (bfloat16 matmuls: about 1.5x faster on CPUs with AVX512_BF16/AMX) or auto (bf16 where native)."
    ),
    deterministic: bool = typer.Option(
        True, "--deterministic/--no-deterministic", help="TensorFlow op determinism (same seed, same model)."
    ),
) -> None:
    """Fine-tune ALBERT on labelled text and write a model directory (a SavedModel that serves raw text).

    Without --init, trains a SentencePiece vocabulary and a small ALBERT from scratch.
    With --tapt-steps N, first adapts the model to the task's texts with ALBERT's own pretraining objective.
    """
    from albert_cli.training.finetune.options import FinetuneOptions
    from albert_cli.training.finetune.run import run_finetune

    opts = FinetuneOptions(
        train=train, output=str(output), dev=dev, dev_split=dev_split, init=init, config=config, tokenizer=str(tokenizer) if tokenizer else None,
        task="multi_label" if multi_label else task, format=input_format(fmt, old_fmt), text_column=text_column,
        text_pair_column=text_pair_column, label_column=label_column, epochs=epochs, batch_size=batch_size,
        learning_rate=learning_rate, warmup_ratio=warmup_ratio, weight_decay=weight_decay, dropout=dropout, pooling=pooling, bow=bow,
        max_seq_length=max_seq_length, vocab_size=vocab_size, seed=seed, eval_every=eval_every, patience=patience,
        metric=metric, class_weights=class_weights, save_every=save_every, skip_bad_rows=skip_bad_rows,
        overwrite=overwrite, resume=resume, keep_checkpoints=keep_checkpoints, deterministic=deterministic, max_steps=max_steps, jit=jit, precision=precision,
        tapt_steps=tapt_steps, unlabeled=tuple(unlabeled or []), tapt_learning_rate=tapt_learning_rate, ema=ema,
        windows=windows, window_stride=window_stride, max_windows=max_windows, window_pooling=window_pooling,
    )
    result = run_finetune(opts)
    from albert_cli.console import info

    info(f"[green]wrote[/green] {output}")
    summary = {"output": str(output), **{k: v for k, v in result.items() if k != "dev_metrics"}}
    if result.get("dev_metrics"):
        summary["dev"] = {k: v for k, v in result["dev_metrics"].items() if isinstance(v, (int, float))}
    sys.stdout.write(json.dumps(summary, ensure_ascii=False) + "\n")  # paths stay readable (UTF-8)
