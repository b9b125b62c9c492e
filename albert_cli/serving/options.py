"""``albert serve``'s settings: `ServeOptions`, checked once (one-line errors, before TensorFlow loads)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from albert_cli.errors import DataError, UsageError
from albert_cli.inference.base import check_batch_size
from albert_cli.serving.sources import ModelSource, default_name, open_source

NAME = re.compile(r"^[A-Za-z0-9._-]+$")  # a path segment of /v1/models/{name}


@dataclass(frozen=True)
class ServeOptions:
    """Every setting of ``albert serve``.

    Args:
        models: (name, source) pairs.
        host, port: where to listen (port 0: a free port).
        poll_seconds: how often version folders are looked for (0: never).
        max_batch_size, batch_timeout_micros: request batching (TensorFlow Serving's parameters).
        batch_size: texts per inference batch inside a merged batch.
        max_request_bytes: the largest request body.
        token: bearer token, or None.
        access_log: one line per request on stderr.
    """

    models: tuple[tuple[str, ModelSource], ...]
    host: str = "127.0.0.1"
    port: int = 8501
    poll_seconds: float = 1.0
    max_batch_size: int = 64
    batch_timeout_micros: int = 2000
    batch_size: int = 32
    max_request_bytes: int = 10 * 1024 * 1024
    token: str | None = None
    access_log: bool = True


def read_token(path) -> str:
    """The bearer token in `path` (one line, surrounding whitespace dropped), or a one-line error."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read the token file ({getattr(exc, 'strerror', None) or exc})") from None
    token = text.strip()
    if not token:
        raise DataError(f"{path}: the token file is empty")
    if any(c.isspace() for c in token) or not token.isprintable():
        raise DataError(f"{path}: the token must be one line of printable characters without spaces")
    return token


def _named(models: list[str], names: list[str]) -> tuple[tuple[str, ModelSource], ...]:
    if len(names) > len(models):
        raise UsageError(f"--name given {len(names)} times for {len(models)} MODEL(s): one per MODEL, in order")
    sources = [open_source(m) for m in models]
    chosen = list(names) + [default_name(s) for s in sources[len(names):]]
    for name in chosen:
        if not NAME.match(name):
            raise UsageError(f"--name '{name}': use letters, digits, '.', '_' and '-' (it is a URL path segment)")
    seen = set()
    for name, model in zip(chosen, models):
        if name in seen:
            raise UsageError(f"two models are named '{name}'; give each MODEL its own --name")
        seen.add(name)
    return tuple(zip(chosen, sources))


def make_serve_options(models: list[str], names: list[str], *, host: str, port: int, poll_seconds: float,
                       max_batch_size: int, batch_timeout_micros: int, batch_size: int, max_request_bytes: int,
                       token_file: str | None, access_log: bool) -> ServeOptions:
    """`ServeOptions` from the command line, every value checked."""
    if not 0 <= port <= 65535:
        raise UsageError(f"--port must be between 0 and 65535, got {port}")
    if poll_seconds < 0:
        raise UsageError(f"--poll-seconds must be 0 or more, got {poll_seconds}")
    if max_batch_size < 1:
        raise UsageError(f"--max-batch-size must be at least 1, got {max_batch_size}")
    if batch_timeout_micros < 0:
        raise UsageError(f"--batch-timeout-micros must be 0 or more, got {batch_timeout_micros}")
    if max_request_bytes < 1:
        raise UsageError(f"--max-request-bytes must be positive, got {max_request_bytes}")
    check_batch_size(batch_size)
    return ServeOptions(
        models=_named(models, names), host=host, port=port, poll_seconds=poll_seconds, max_batch_size=max_batch_size,
        batch_timeout_micros=batch_timeout_micros, batch_size=batch_size, max_request_bytes=max_request_bytes,
        token=read_token(token_file) if token_file is not None else None, access_log=access_log,
    )
