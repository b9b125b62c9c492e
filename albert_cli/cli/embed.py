"""`albert embed`: sentence vectors for semantic matching and retrieval, one JSON line per input line."""

from __future__ import annotations

from typing import Optional

import typer


def embed(
    model: str = typer.Argument(
        ...,
        help="Any ALBERT checkpoint directory: Google TF1 (albert_config.json + model.ckpt), "
        "Hugging Face (config.json + model.safetensors) or a model written by `albert finetune`.",
    ),
    input: str = typer.Argument("-", help="Text file, one text per line; '-' for stdin."),
    pooling: Optional[str] = typer.Option(
        None, "--pooling", "-p",
        help="pooler: tanh pooler output; cls: [CLS] hidden state; mean: mean over the real tokens "
        "[default: pooler; mean for a model fine-tuned with mean pooling, which refuses pooler and cls unless "
        "it started from pretrained weights (--init) or --tapt-steps].",
    ),
    batch_size: int = typer.Option(32, "--batch-size", help="Texts per batch."),
    max_seq_length: Optional[int] = typer.Option(
        None, "--max-seq-length", help="Longer texts are truncated (default: 512, or the model's max_position_embeddings if smaller)."
    ),
    normalize: bool = typer.Option(
        False, "--normalize/--no-normalize", help="Scale every vector to unit L2 norm (dot product = cosine)."
    ),
) -> None:
    """Embed texts. Prints {"embedding": [...]} per input line, in order (an empty or undecodable
    line gives {"error": ..., "line": N}); output is flushed per batch, so it streams from stdin."""
    import os

    from albert_cli.console import closed_stdout_is_fine
    from albert_cli.data.sources import is_stdin
    from albert_cli.errors import DataError, ModelError
    from albert_cli.inference.embed import Embedder, embed_lines
    from albert_cli.artifacts.modeldir import is_tflite_dir

    if not is_stdin(input):
        if not os.path.exists(input):
            raise DataError(f"{input}: no such file")
        if os.path.isdir(input):
            raise DataError(f"{input}: is a directory, expected a text file")
    if is_tflite_dir(model):
        raise ModelError(
            f"{model}: a TFLite export (model.tflite) has no encoder weights to embed with; "
            "use the model directory it was exported from"
        )
    embedder = Embedder(
        model, pooling=pooling, batch_size=batch_size, max_seq_length=max_seq_length, normalize=normalize
    )
    with closed_stdout_is_fine():
        embed_lines(embedder, input)
