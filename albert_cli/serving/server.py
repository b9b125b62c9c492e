"""Run ``albert serve``: load every model, bind the socket, serve with uvicorn until SIGTERM/SIGINT.

Models load and answer a warm-up batch before the port is bound (as TensorFlow Serving waits for its models), so
a client that can connect gets answers. Once listening, one JSON line goes to stdout
(``{"event": "serving", "url": ..., "models": {name: version}}``); logs go to stderr.

SIGTERM or SIGINT stops accepting connections, answers every request in flight, stops the batchers and returns
(exit code 0); a second SIGINT stops at once.
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import sys

from albert_cli.errors import AlbertError, UsageError
from albert_cli.serving.options import ServeOptions

INSTALL_HINT = "pip install 'albert-cli[serve]'"


def require_serve_extra() -> None:
    """A one-line `UsageError` naming the install command when the HTTP stack is missing."""
    missing = []
    for module in ("starlette", "uvicorn", "prometheus_client"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise UsageError(f"albert serve needs {', '.join(missing)}: install them with {INSTALL_HINT}")


def log(line: str) -> None:
    print(f"albert serve: {line}", file=sys.stderr, flush=True)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on (host, port), or a one-line `AlbertError` (exit 1)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, _, _, _, address = infos[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        raise AlbertError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None
    sock.setblocking(False)
    return sock


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def load_models(options: ServeOptions, metrics) -> dict:
    """Every `ServedModel`, its first version loaded and warmed up (blocking)."""
    from albert_cli.serving.batching import BatchSettings
    from albert_cli.serving.models import ServedModel

    batching = BatchSettings(options.max_batch_size, options.batch_timeout_micros / 1e6)
    models = {}
    for name, source in options.models:
        models[name] = ServedModel(
            name, source, options.batch_size, batching, log,
            on_batch=lambda model, n: metrics.batch_size.labels(model).observe(n),
            on_version=lambda model, v: metrics.version.labels(model).set(v),
        )
    for model in models.values():
        model.load_first()
    return models


def run_server(options: ServeOptions) -> None:
    """Serve until SIGTERM/SIGINT (see the module docstring)."""
    require_serve_extra()
    import uvicorn

    from albert_cli.serving.app import Metrics, build_app

    metrics = Metrics()
    models = load_models(options, metrics)
    sock = bind(options.host, options.port)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        for model in models.values():
            await model.start(options.poll_seconds)
        served = {name: model.current.number for name, model in models.items()}
        print(json.dumps({"event": "serving", "url": _url(sock), "models": served}), flush=True)
        log(f"serving {', '.join(f'{n} (version {v})' for n, v in served.items())} on {_url(sock)}")
        yield
        for model in models.values():
            await model.stop()

    app = build_app(models, metrics, max_request_bytes=options.max_request_bytes, token=options.token,
                    access_log=options.access_log, lifespan=lifespan)
    config = uvicorn.Config(
        app, lifespan="on", access_log=False, log_level="warning", timeout_graceful_shutdown=None,
        loop="uvloop" if _has("uvloop") else "asyncio", http="httptools" if _has("httptools") else "h11",
        timeout_keep_alive=30,
    )
    server = uvicorn.Server(config)
    # uvicorn takes SIGINT/SIGTERM while it serves and raises the signal again once it has stopped: by then the
    # requests in flight are answered, so that second delivery is ignored and the command exits 0.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: None)
    server.run(sockets=[sock])
    log("stopped")


def _has(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True
