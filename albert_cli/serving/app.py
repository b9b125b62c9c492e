"""The HTTP application: TensorFlow Serving's REST routes on Starlette, a bearer token, an access log, metrics.

Requests are handled on the event loop (parsing, JSON); inference runs in each model version's batcher thread.
`AccessLog` wraps every request: bearer-token check, one log line on stderr, the Prometheus counters. The body
is read with a size limit before anything is parsed, and no request names a file: a model is found by the name
given to ``albert serve``.
"""

from __future__ import annotations

import hmac
import json
import sys
import time
from typing import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from albert_cli.serving import rest
from albert_cli.serving.models import ServedModel
from albert_cli.serving.rest import ApiError

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class Metrics:
    """The server's Prometheus metrics, in a registry of their own."""

    def __init__(self):
        disable_created_metrics()  # no *_created series beside each counter: they double the page for nothing
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("albert_requests", "HTTP requests answered", ["model", "endpoint", "code"], registry=r)
        self.errors = Counter("albert_request_errors", "HTTP requests answered with an error (4xx/5xx)",
                              ["model", "endpoint", "code"], registry=r)
        self.latency = Histogram("albert_request_latency_seconds", "Time from request to answer",
                                 ["model", "endpoint"], buckets=LATENCY_BUCKETS, registry=r)
        self.instances = Counter("albert_predict_instances", "Texts predicted", ["model"], registry=r)
        self.batch_size = Histogram("albert_batch_size", "Texts per merged inference batch", ["model"],
                                    buckets=BATCH_BUCKETS, registry=r)
        self.version = Gauge("albert_model_version", "The model version being served", ["model"], registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _json(body: dict, status: int = 200) -> Response:
    return Response(json.dumps(body, ensure_ascii=False).encode("utf-8"), status, media_type="application/json")


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, or a 413 `ApiError` as soon as it is known to be over `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"request body of {declared} bytes is over the limit of {limit} (--max-request-bytes)")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"request body is over the limit of {limit} bytes (--max-request-bytes)")
        chunks.append(chunk)
    return b"".join(chunks)


class Api:
    """The ``/v1/models/...`` and ``/metrics`` endpoints over the served models."""

    def __init__(self, models: dict[str, ServedModel], metrics: Metrics, max_request_bytes: int):
        self.models, self.metrics, self.max_request_bytes = models, metrics, max_request_bytes

    def _model(self, name: str) -> ServedModel:
        try:
            return self.models[name]
        except KeyError:
            raise rest.not_found(f"Servable not found for request: Latest({name})") from None

    async def models_endpoint(self, request: Request) -> Response:
        try:
            target = rest.parse_path(request.url.path, request.method)
            model = self._model(target.name)
            request.scope["albert"] = (target.name, target.what)
            if target.what == "predict":
                return _json(await self._predict(request, model, target.version))
            if target.what == "metadata":
                version = model.resolve(target.version)
                return _json(rest.metadata(model.name, version.number, version.meta))
            return _json(rest.version_status(model.status(target.version)))
        except ApiError as exc:
            return _json(rest.error_body(exc.message), exc.status)

    async def _predict(self, request: Request, model: ServedModel, number: int | None) -> dict:
        body = await read_body(request, self.max_request_bytes)
        version = model.resolve(number)  # from here to the submit nothing awaits: no swap in between
        meta = version.meta
        parsed = rest.parse_predict(body, meta)
        try:
            outputs = await model.predict(version, parsed.texts, parsed.pairs)
        except ApiError:
            raise
        except Exception as exc:  # noqa: BLE001 - one failed batch is that request's 500, the server goes on
            message = getattr(exc, "message", None) or " ".join(f"{type(exc).__name__}: {exc}".split())[:500]
            raise ApiError(500, message) from None
        self.metrics.instances.labels(model.name).inc(len(parsed.texts))
        return rest.answer(outputs, meta, parsed.rows)

    async def metrics_endpoint(self, request: Request) -> Response:
        request.scope["albert"] = ("", "metrics")
        if request.method not in ("GET", "HEAD"):
            return _json(rest.error_body(f"Malformed request: {request.method} /metrics (use GET)"), 405)
        return Response(self.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    async def not_found_endpoint(self, request: Request) -> Response:
        return _json(rest.error_body(f"Malformed request: {request.method} {request.url.path}"), 404)


class AccessLog:
    """ASGI middleware: the bearer token (if any), one access-log line per request, the request metrics.

    Args:
        app: the Starlette application.
        metrics: `Metrics`.
        token: the expected bearer token, or None for no authentication.
        log: writes one access-log line (None: no access log).
    """

    def __init__(self, app, metrics: Metrics, token: str | None, log: Callable[[str], None] | None):
        self.app, self.metrics, self.log = app, metrics, log
        self.expected = f"Bearer {token}".encode("utf-8") if token is not None else None

    def _authorized(self, scope) -> bool:
        if self.expected is None:
            return True
        given = b""
        for key, value in scope.get("headers", []):
            if key == b"authorization":
                given = value
        return hmac.compare_digest(given, self.expected)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = [500]

        async def send_status(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        if not self._authorized(scope):
            await Response(b'{"error": "Unauthorized"}', 401, {"WWW-Authenticate": "Bearer"},
                           media_type="application/json")(scope, receive, send_status)
        else:
            await self.app(scope, receive, send_status)
        elapsed = time.perf_counter() - started
        model, endpoint = scope.get("albert", ("", "other"))
        code = str(status[0])
        m = self.metrics
        m.requests.labels(model, endpoint, code).inc()
        if status[0] >= 400:
            m.errors.labels(model, endpoint, code).inc()
        m.latency.labels(model, endpoint).observe(elapsed)
        if self.log is not None:
            client = scope.get("client") or ("-", 0)
            self.log(f'{client[0]} "{scope["method"]} {scope["path"]}" {code} {elapsed * 1000:.1f}ms')


def build_app(models: dict[str, ServedModel], metrics: Metrics, *, max_request_bytes: int, token: str | None,
              access_log: bool, lifespan=None):
    """The ASGI application of ``albert serve``."""
    api = Api(models, metrics, max_request_bytes)
    methods = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"]  # the rest is answered in JSON
    app = Starlette(
        routes=[
            Route("/v1/models/{rest:path}", api.models_endpoint, methods=methods),
            Route("/metrics", api.metrics_endpoint, methods=methods),
            Route("/{rest:path}", api.not_found_endpoint, methods=methods),
        ],
        lifespan=lifespan,
    )
    log = (lambda line: print(line, file=sys.stderr, flush=True)) if access_log else None
    return AccessLog(app, metrics, token, log)
