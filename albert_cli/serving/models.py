"""A served model: its versions, each loaded, warmed up and batched, and the poll that swaps in a new one.

Only the highest version is served, as TensorFlow Serving's default version policy does. A new version folder
is loaded in a background thread and answers a warm-up batch before it takes requests; the old version then
answers what it already holds (its batcher drains) and is dropped. A version that fails to load is reported in
the model's status and skipped; the old one keeps serving.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from albert_cli.artifacts.modeldir import ModelMeta
from albert_cli.errors import AlbertError
from albert_cli.inference.base import BasePredictor
from albert_cli.serving.batching import Batcher, BatchSettings, Retired
from albert_cli.serving.rest import ApiError, not_found
from albert_cli.serving.sources import ModelSource

WARM_UP_TEXT = "warm-up"

# TensorFlow Serving's ModelVersionStatus states
LOADING, AVAILABLE, UNLOADING, END = "LOADING", "AVAILABLE", "UNLOADING", "END"


@dataclass
class Version:
    """One version of a served model and its state (``LOADING``, ``AVAILABLE``, ``UNLOADING``, ``END``)."""

    number: int
    path: Path
    state: str = LOADING
    error: str = ""
    predictor: BasePredictor | None = None
    batcher: Batcher | None = None

    @property
    def meta(self) -> ModelMeta:
        assert self.predictor is not None
        return self.predictor.meta


def load_predictor(path: Path, batch_size: int) -> BasePredictor:
    """The predictor of a version folder, after it answered a warm-up batch (blocking: TensorFlow loads here)."""
    from albert_cli.inference.predict import make_predictor

    predictor = make_predictor(path, batch_size=batch_size)
    predictor.predict([WARM_UP_TEXT], [WARM_UP_TEXT] if predictor.meta.pair else None)
    return predictor


class ServedModel:
    """The versions of one model name and the one that answers.

    Args:
        name: the name in ``/v1/models/{name}``.
        source: its files (`albert_cli.serving.sources.ModelSource`).
        batch_size: texts per inference batch inside a merged batch (the predictor's length groups).
        batching: how requests are merged (`BatchSettings`).
        log: writes one line to the server's log.
        on_batch: ``on_batch(name, texts)`` for each inference batch (metrics).
        on_version: ``on_version(name, version)`` when a version starts answering (metrics).
    """

    def __init__(self, name: str, source: ModelSource, batch_size: int, batching: BatchSettings,
                 log: Callable[[str], None], on_batch=None, on_version=None):
        self.name, self.source, self.batch_size, self.batching = name, source, batch_size, batching
        self.log = log
        self.on_batch = on_batch or (lambda name, n: None)
        self.on_version = on_version or (lambda name, v: None)
        self.versions: dict[int, Version] = {}
        self.current: Version | None = None
        self._poll_task: asyncio.Task | None = None

    # ----- loading -----

    def _load(self, version: Version) -> Version:
        started = time.monotonic()
        version.predictor = load_predictor(version.path, self.batch_size)
        self.log(f"{self.name}: version {version.number} loaded from {version.path} "
                 f"in {time.monotonic() - started:.1f} s ({version.meta.task.replace('_', '-')})")
        return version

    def load_first(self) -> int:
        """Load the highest version now on disk (blocking); a `AlbertError` if it cannot be served."""
        latest = self.source.latest()
        if latest is None:
            raise AlbertError(f"{self.source.path}: no complete model version to serve")
        version = Version(*latest)
        self.versions[version.number] = self._load(version)
        return version.number

    def _start(self, version: Version) -> None:
        version.batcher = Batcher(version.predictor.predict, self.batching,
                                  on_batch=lambda n: self.on_batch(self.name, n))
        version.batcher.start()
        version.state = AVAILABLE
        old, self.current = self.current, version
        self.on_version(self.name, version.number)
        if old is not None:
            old.state = UNLOADING
            asyncio.get_running_loop().create_task(self._retire(old))

    async def _retire(self, old: Version) -> None:
        await old.batcher.close()  # answers every request it already holds
        old.state, old.predictor, old.batcher = END, None, None
        self.log(f"{self.name}: version {old.number} unloaded")

    async def start(self, poll_seconds: float) -> None:
        """Serve the version `load_first` loaded; poll for new versions (a versioned layout, `poll_seconds` > 0)."""
        self._start(self.versions[max(self.versions)])
        if self.source.versioned and poll_seconds > 0:
            self._poll_task = asyncio.get_running_loop().create_task(self._poll(poll_seconds))

    async def stop(self) -> None:
        """Stop polling; the serving version answers what it holds."""
        if self._poll_task is not None:
            self._poll_task.cancel()
        if self.current is not None and self.current.batcher is not None:
            await self.current.batcher.close()

    async def _poll(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(seconds)
            latest = await loop.run_in_executor(None, self.source.latest)
            if latest is None or latest[0] <= self.current.number or latest[0] in self.versions:
                continue  # served already, older, or failed before (a failed version is not retried)
            version = Version(*latest)
            self.versions[version.number] = version
            self.log(f"{self.name}: loading version {version.number} from {version.path}")
            try:
                await loop.run_in_executor(None, self._load, version)
            except Exception as exc:  # noqa: BLE001 - a bad version must not stop the server
                version.state, version.error = END, " ".join(str(getattr(exc, "message", exc)).split())
                self.log(f"{self.name}: version {version.number} failed to load: {version.error}")
                continue
            self._start(version)
            self.log(f"{self.name}: now serving version {version.number}")

    # ----- answering -----

    def resolve(self, number: int | None) -> Version:
        """The version that answers a request for `number` (None: the latest), or a 404 `ApiError`."""
        current = self.current
        if number is None:
            if current is None:
                raise ApiError(503, f"Servable not available: {self.name} is still loading")
            return current
        if current is not None and number == current.number:
            return current
        raise not_found(f"Servable not found for request: Specific({self.name}, {number})")

    async def predict(self, version: Version, texts: list[str], pairs: list[str] | None):
        """The outputs of `texts`, from `version` or (if it was retired meanwhile) from the current one."""
        try:
            future = version.batcher.submit(texts, pairs)
        except (Retired, AttributeError):  # swapped out between resolve and submit
            future = self.resolve(None).batcher.submit(texts, pairs)
        return await future

    def status(self, number: int | None) -> list[tuple[int, str, str]]:
        """(version, state, error) of every version known, or of `number` (a 404 `ApiError` if unknown)."""
        if number is not None:
            if number not in self.versions:
                raise not_found(f"Could not find version {number} of model {self.name}")
            v = self.versions[number]
            return [(v.number, v.state, v.error)]
        return [(v.number, v.state, v.error) for v in sorted(self.versions.values(), key=lambda v: -v.number)]
