"""Requests that arrive together, merged into one inference batch (TensorFlow Serving's batching parameters).

A request's texts are one task; the worker takes the first task waiting, then every task that arrives within
``timeout_s`` while the batch holds at most ``max_batch_size`` texts (a task larger than that runs alone), runs the
batch in its own thread (the event loop keeps accepting requests) and hands each task its slice of the outputs. The
predictor groups a batch's texts by length (``albert_cli.inference.base.BasePredictor.predict``). While a batch runs,
the next one gathers in the queue, so under load batches fill without waiting for the timeout. A merged batch that
fails runs again one request at a time, so only the request that caused the failure gets it.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

Outputs = dict[str, np.ndarray]
RunBatch = Callable[[list[str], "list[str] | None"], Outputs]


class Retired(Exception):
    """The batcher was closed (its model version is being unloaded): submit to the current version instead."""


@dataclass(frozen=True)
class BatchSettings:
    """How requests are merged.

    Args:
        max_batch_size: most texts in one merged batch (1: every request alone, batching off).
        timeout_s: how long the first task of a batch waits for more.
    """

    max_batch_size: int = 64
    timeout_s: float = 0.002


@dataclass
class _Task:
    texts: list[str]
    pairs: list[str] | None
    future: asyncio.Future = field(repr=False)


class Batcher:
    """Merges submitted tasks into batches for `run` (blocking; called in one worker thread, one batch at a time).

    Args:
        run: ``run(texts, pairs) -> outputs``, arrays with the batch as first axis.
        settings: `BatchSettings`.
        on_batch: called with each batch's number of texts (metrics).

    Example:
        >>> batcher = Batcher(predictor.predict, BatchSettings(max_batch_size=64))  # doctest: +SKIP
        >>> batcher.start()  # inside the event loop  # doctest: +SKIP
        >>> outputs = await batcher.submit(["A late goal"])  # doctest: +SKIP
    """

    def __init__(self, run: RunBatch, settings: BatchSettings, on_batch: Callable[[int], None] | None = None):
        self.run, self.settings = run, settings
        self.on_batch = on_batch or (lambda n: None)
        self._queue: asyncio.Queue[_Task | None] | None = None
        self._carry: _Task | None = None
        self._worker: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="albert-infer")
        self.closed = False

    # ----- the event loop side -----

    def start(self) -> None:
        """Start the worker (in the running event loop)."""
        self._queue = asyncio.Queue()
        self._worker = asyncio.get_running_loop().create_task(self._work())

    def submit(self, texts: Sequence[str], pairs: Sequence[str] | None = None) -> asyncio.Future:
        """A future of `texts`' outputs. Raises `Retired` once `close` has begun (no task is ever left behind)."""
        if self.closed or self._queue is None:
            raise Retired()
        future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Task(list(texts), list(pairs) if pairs is not None else None, future))
        return future

    async def close(self) -> None:
        """Answer every task already submitted, then stop the worker and its thread."""
        if self.closed:
            return
        self.closed = True
        if self._queue is not None:
            self._queue.put_nowait(None)
            await self._worker
        self._executor.shutdown(wait=True)

    # ----- the worker -----

    async def _next(self, wait: float | None) -> _Task | None | bool:
        """The next task (None: closing), or False when none came within `wait` seconds."""
        if self._carry is not None:
            task, self._carry = self._carry, None
            return task
        assert self._queue is not None
        try:
            return self._queue.get_nowait()
        except asyncio.QueueEmpty:
            if wait is not None and wait <= 0:
                return False
        try:
            return await asyncio.wait_for(self._queue.get(), wait)
        except TimeoutError:
            return False

    async def _gather(self, first: _Task) -> tuple[list[_Task], bool]:
        """`first` and the tasks that join it; True when the close marker came (after these)."""
        loop = asyncio.get_running_loop()
        batch, size = [first], len(first.texts)
        deadline = loop.time() + self.settings.timeout_s
        while size < self.settings.max_batch_size:
            task = await self._next(deadline - loop.time())
            if task is False:
                break
            if task is None:
                return batch, True
            if size + len(task.texts) > self.settings.max_batch_size:
                self._carry = task  # the first of the next batch
                break
            batch.append(task)
            size += len(task.texts)
        return batch, False

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        closing = False
        while not closing or self._carry is not None:
            first = await self._next(None)
            if first is None:
                closing = True
                continue
            batch, closing = await self._gather(first)
            live = [t for t in batch if not t.future.done()]  # a client that went away needs no answer
            if live:
                await self._run(loop, live)

    async def _run(self, loop, tasks: list[_Task]) -> None:
        texts = [t for task in tasks for t in task.texts]
        pairs = [p for task in tasks for p in task.pairs] if tasks[0].pairs is not None else None
        self.on_batch(len(texts))
        try:
            out = await loop.run_in_executor(self._executor, self.run, texts, pairs)
        except Exception as exc:  # noqa: BLE001 - the worker goes on
            if len(tasks) > 1:  # one request's bad input must not fail the others: each alone again
                for task in tasks:
                    await self._run(loop, [task])
            elif not tasks[0].future.done():
                tasks[0].future.set_exception(exc)
            return
        start = 0
        for task in tasks:
            end = start + len(task.texts)
            if not task.future.done():
                task.future.set_result({k: v[start:end] for k, v in out.items()})
            start = end
