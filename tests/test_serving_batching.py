"""`albert_cli.serving.batching.Batcher`: requests merged into batches, answers sliced back, drained on close.

A fake `run` records the batches it gets (real asyncio, real worker thread; no model): what it checks is how
tasks are merged, not what a model answers (tests/test_serve.py runs the real server).
"""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from albert_cli.serving.batching import Batcher, BatchSettings, Retired


class FakeModel:
    """Answers each text with its length; records every batch, and can hold a batch until released."""

    def __init__(self, delay: float = 0.0):
        self.batches: list[list[str]] = []
        self.delay = delay
        self.threads: set[str] = set()

    def __call__(self, texts, pairs):
        self.batches.append(list(texts))
        self.threads.add(threading.current_thread().name)
        time.sleep(self.delay)
        if any(t == "boom" for t in texts):
            raise RuntimeError("a failed batch")
        return {"value": np.array([len(t) for t in texts]), "pair": np.array([len(p) if pairs else -1 for p in (pairs or texts)])}


def run(coro):
    return asyncio.run(coro)


def test_concurrent_requests_are_merged_and_each_gets_its_own_slice():
    model = FakeModel(delay=0.05)

    async def main():
        batcher = Batcher(model, BatchSettings(max_batch_size=64, timeout_s=0.01))
        batcher.start()
        requests = [["x" * (i + 1)] * ((i % 3) + 1) for i in range(20)]
        outs = await asyncio.gather(*[batcher.submit(texts) for texts in requests])
        await batcher.close()
        return requests, outs

    requests, outs = run(main())
    for texts, out in zip(requests, outs):
        assert out["value"].tolist() == [len(t) for t in texts]
    assert sum(len(b) for b in model.batches) == sum(len(r) for r in requests)
    assert len(model.batches) < len(requests) / 2, [len(b) for b in model.batches]  # merged, not one per request
    assert all(len(b) <= 64 for b in model.batches)
    assert model.threads and not any(name == threading.main_thread().name for name in model.threads)


def test_max_batch_size_bounds_batches_and_one_turns_batching_off():
    for size in (1, 5):
        model = FakeModel(delay=0.01)

        async def main():
            batcher = Batcher(model, BatchSettings(max_batch_size=size, timeout_s=0.05))
            batcher.start()
            outs = await asyncio.gather(*[batcher.submit([f"t{i}", f"u{i}x"][: 1 + i % 2]) for i in range(12)])
            await batcher.close()
            return outs

        outs = run(main())
        assert [o["value"].tolist() for o in outs] == [[2, 3][: 1 + i % 2] if i < 10 else [3, 4][: 1 + i % 2] for i in range(12)]
        if size == 1:  # every request alone; a request of two texts still runs whole
            assert len(model.batches) == 12
        else:
            assert all(len(b) <= size for b in model.batches), model.batches


def test_a_request_larger_than_the_batch_runs_alone():
    model = FakeModel()

    async def main():
        batcher = Batcher(model, BatchSettings(max_batch_size=4, timeout_s=0.01))
        batcher.start()
        out = await batcher.submit(["a"] * 10)
        await batcher.close()
        return out

    assert run(main())["value"].tolist() == [1] * 10
    assert [len(b) for b in model.batches] == [10]


def test_pairs_travel_with_their_texts():
    model = FakeModel(delay=0.02)

    async def main():
        batcher = Batcher(model, BatchSettings(max_batch_size=8, timeout_s=0.01))
        batcher.start()
        outs = await asyncio.gather(*[batcher.submit([f"t{i}"], ["p" * i]) for i in range(6)])
        await batcher.close()
        return outs

    assert [o["pair"].tolist() for o in run(main())] == [[i] for i in range(6)]


@pytest.mark.parametrize("max_batch_size", [1, 8])
def test_a_failed_batch_fails_only_the_request_that_caused_it_and_the_worker_goes_on(max_batch_size):
    model = FakeModel(delay=0.01)

    async def main():
        batcher = Batcher(model, BatchSettings(max_batch_size=max_batch_size, timeout_s=0.05))
        batcher.start()
        results = await asyncio.gather(batcher.submit(["fine"]), batcher.submit(["boom", "ok"]),
                                       batcher.submit(["good"]), return_exceptions=True)
        after = await batcher.submit(["later"])
        await batcher.close()
        return results, after

    (first, failed, third), after = run(main())
    assert isinstance(failed, RuntimeError) and "failed batch" in str(failed)
    assert first["value"].tolist() == [4] and third["value"].tolist() == [4] and after["value"].tolist() == [5]
    if max_batch_size > 1:  # they were merged, failed together, then ran one by one
        assert [len(b) for b in model.batches[:1]] == [4], model.batches


def test_close_answers_everything_already_submitted_then_refuses():
    model = FakeModel(delay=0.02)

    async def main():
        batcher = Batcher(model, BatchSettings(max_batch_size=2, timeout_s=0.001))
        batcher.start()
        futures = [batcher.submit([f"text {i}"]) for i in range(9)]
        await batcher.close()
        assert all(f.done() for f in futures)
        with pytest.raises(Retired):
            batcher.submit(["late"])
        return [f.result()["value"].tolist() for f in futures]

    assert run(main()) == [[6]] * 9
    assert sum(len(b) for b in model.batches) == 9
