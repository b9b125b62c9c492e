"""`albert pretrain`: masked-LM + sentence-order pretraining of ALBERT on raw text."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import List, Optional

import typer

from albert_cli.cli.options import InputFormatOpt, OldInputFormatOpt, TextColumnOpt, input_format


def pretrain(
    corpus: List[str] = typer.Argument(
        ..., help="Corpus files: text (one sentence/paragraph per line, blank line between documents), "
        "CSV/TSV or JSONL (one record per line, see --doc-column).", show_default=False,
    ),
    output: Path = typer.Option(..., "--output", "-o", help="Output directory (an HF ALBERT directory + checkpoints + logs)."),
    tokenizer: Optional[Path] = typer.Option(
        None, "--tokenizer", help="SentencePiece model from `albert tokenize train` (PREFIX.model; PREFIX.json is copied too)."
    ),
    config: Optional[str] = typer.Option(None, "--config", help="Model shape: tiny|small|base|large or a JSON file [default: small]."),
    init: Optional[str] = typer.Option(None, "--init", help="Continue from a model directory (pretrain output, HF or Google)."),
    fmt: Optional[str] = InputFormatOpt,
    old_fmt: Optional[str] = OldInputFormatOpt,
    text_column: str = TextColumnOpt,
    doc_column: Optional[str] = typer.Option(
        None, "--doc-column", help="CSV/JSONL: consecutive rows with the same value form a document [default: one per file]."
    ),
    max_seq_length: int = typer.Option(128, "--max-seq-length", help="Tokens per example (every batch is padded to it)."),
    max_predictions_per_seq: int = typer.Option(20, "--max-predictions-per-seq", help="Masked positions per example."),
    masked_lm_prob: float = typer.Option(0.15, "--masked-lm-prob", help="Share of tokens to mask."),
    short_seq_prob: float = typer.Option(0.1, "--short-seq-prob", help="Probability of a shorter target length."),
    batch_size: int = typer.Option(32, "--batch-size", help="Global batch size (split over workers and replicas)."),
    learning_rate: Optional[float] = typer.Option(
        None, "--learning-rate", "--lr",
        help="Peak learning rate [default: LAMB 1.76e-3*sqrt(batch/4096) (ALBERT's rate, square-root scaled); "
        "AdamW 1e-4*sqrt(batch/256)].",
    ),
    warmup_steps: Optional[int] = typer.Option(None, "--warmup-steps", help="Linear warm-up steps [default: 2.5% of the steps]."),
    decay_steps: Optional[int] = typer.Option(
        None, "--decay-steps", help="Length of the linear decay [default: the step budget; constant with only --max-time]."
    ),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="Stop after N steps (global step, counts resumed steps)."),
    max_time: Optional[str] = typer.Option(None, "--max-time", help="Stop after this long, e.g. 30m, 2h, 1h30m."),
    epochs: Optional[float] = typer.Option(
        None, "--epochs", help="Passes over the corpus (fresh masks each) [default: 1 without --max-steps/--max-time]."
    ),
    save_every: int = typer.Option(1000, "--save-every", help="Checkpoint every N steps (also at the end and on Ctrl-C)."),
    keep_checkpoints: int = typer.Option(2, "--keep-checkpoints", help="Keep the last K checkpoints."),
    log_every: int = typer.Option(10, "--log-every", help="Log metrics (TensorBoard, logs/train.jsonl) every N steps."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run (from OUTPUT.partial) at its last checkpoint."),
    seed: int = typer.Option(12345, "--seed", help="Random seed (masks, document order, initialisation)."),
    optimizer: str = typer.Option("lamb", "--optimizer", help="lamb or adamw."),
    weight_decay: float = typer.Option(0.01, "--weight-decay", help="Weight decay (not on LayerNorm weights and biases)."),
    precision: str = typer.Option("fp32", "--precision", help="fp32, bf16 or fp16 (Keras mixed precision)."),
    jit: bool = typer.Option(False, "--jit", help="XLA-compile the train step (TensorFlow; JAX always compiles)."),
    strategy: str = typer.Option(
        "auto", "--strategy", help="auto|one-device|mirrored|multi-worker|tpu (auto: multi-worker when TF_CONFIG lists >1 workers)."
    ),
    deterministic: bool = typer.Option(False, "--deterministic", help="TensorFlow op determinism (bit-reproducible runs)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing OUTPUT directory."),
    export_google: bool = typer.Option(False, "--export-google", help="Also write a Google TF1 checkpoint to OUTPUT/google."),
) -> None:
    """Pretrain ALBERT (n-gram masked LM + sentence-order prediction, LAMB) on a text corpus.

    Prints one JSON line with the final figures on stdout. KERAS_BACKEND=jax trains with JAX
    (no TensorFlow); TF_CONFIG + --strategy multi-worker trains on several machines.
    """
    from albert_cli.training.pretrain.options import PretrainOptions
    from albert_cli.training.pretrain.run import run_pretrain

    opts = PretrainOptions(
        corpus=list(corpus), output=str(output), tokenizer=str(tokenizer) if tokenizer else None, config=config,
        init=init, format=input_format(fmt, old_fmt), text_column=text_column, doc_column=doc_column,
        max_seq_length=max_seq_length,
        max_predictions_per_seq=max_predictions_per_seq, masked_lm_prob=masked_lm_prob,
        short_seq_prob=short_seq_prob, batch_size=batch_size, learning_rate=learning_rate,
        warmup_steps=warmup_steps, decay_steps=decay_steps, max_steps=max_steps, max_time=max_time, epochs=epochs,
        save_every=save_every, keep_checkpoints=keep_checkpoints, log_every=log_every, resume=resume, seed=seed,
        optimizer=optimizer.lower(), weight_decay=weight_decay, precision=precision.lower(), jit=jit,
        strategy=strategy.lower(), deterministic=deterministic, overwrite=overwrite, export_google=export_google,
    )
    result = run_pretrain(opts)
    from albert_cli.console import info

    if result.get("is_chief", True):
        info(f"[green]wrote[/green] {output}")
    if os.environ.get("ALBERT_ASSERT_NO_TF") == "1" and "tensorflow" in sys.modules:
        from albert_cli.errors import AlbertError

        raise AlbertError("internal check failed: tensorflow was imported on the JAX path")
    sys.stdout.write(json.dumps(result, ensure_ascii=False) + "\n")  # paths stay readable (UTF-8)
