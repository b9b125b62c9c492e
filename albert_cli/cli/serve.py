"""`albert serve`: model directories behind TensorFlow Serving's REST API (needs the `serve` extra)."""

from __future__ import annotations

from typing import List, Optional

import typer

from albert_cli.cli.options import InferencePrecisionOpt, set_inference_precision


def serve(
    model: List[str] = typer.Argument(
        ..., help="Model directory (`albert finetune`'s, or a TFLite one from `albert export`), or a "
        "base path of numeric version folders (news/1, news/2: the highest is served, a new one is swapped in)."
    ),
    names: Optional[List[str]] = typer.Option(
        None, "--name", help="Name in /v1/models/NAME, one per MODEL in order [default: the directory's name]."
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0: every interface)."),
    port: int = typer.Option(8501, "--port", help="Port to listen on (0: a free one; the URL is printed)."),
    poll_seconds: float = typer.Option(
        1.0, "--poll-seconds", help="How often version folders are looked for (0: never)."
    ),
    max_batch_size: int = typer.Option(
        64, "--max-batch-size", help="Most texts in one merged inference batch (1: no batching)."
    ),
    batch_timeout_micros: int = typer.Option(
        2000, "--batch-timeout-micros", help="How long a batch waits for more requests to join it."
    ),
    batch_size: int = typer.Option(32, "--batch-size", help="Texts per inference batch inside a merged batch (length groups)."),
    max_request_bytes: int = typer.Option(
        10 * 1024 * 1024, "--max-request-bytes", help="Largest request body; a larger one gets 413."
    ),
    token_file: Optional[str] = typer.Option(
        None, "--token-file", help="File holding a bearer token: every request must send 'Authorization: Bearer TOKEN'."
    ),
    access_log: bool = typer.Option(True, "--access-log/--no-access-log", help="One line per request on stderr."),
    precision: Optional[str] = InferencePrecisionOpt,
) -> None:
    """Serve models over HTTP with TensorFlow Serving's REST API (POST /v1/models/NAME:predict, GET
    /v1/models/NAME, /v1/models/NAME/metadata, /metrics). Prints one JSON line when listening; SIGTERM or
    Ctrl-C answers the requests in flight, then exits 0."""
    from albert_cli.serving.options import make_serve_options
    from albert_cli.serving.server import require_serve_extra, run_server

    require_serve_extra()
    set_inference_precision(precision)
    options = make_serve_options(
        model, names or [], host=host, port=port, poll_seconds=poll_seconds, max_batch_size=max_batch_size,
        batch_timeout_micros=batch_timeout_micros, batch_size=batch_size, max_request_bytes=max_request_bytes,
        token_file=token_file, access_log=access_log,
    )
    run_server(options)
