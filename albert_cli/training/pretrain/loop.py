"""Pretraining on the one loop: the batches of a stream from a resumable position, the meter that counts tokens
and keeps the first and last losses, and `train`, shared by `albert pretrain` and task-adaptive pretraining."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
from keras import ops

from albert_cli.console import info
from albert_cli.errors import DataError, UsageError
from albert_cli.training.callbacks import Checkpointing, JsonlLog, ProgressBar, TensorBoardScalars, TimeBudget
from albert_cli.training.loop import Callback, StepEvent, Trainer
from albert_cli.training.pretrain.corpus import prefetch
from albert_cli.training.pretrain.options import LOG_FILE, METRICS, PretrainOptions
from albert_cli.training.state import TrainState, latest_checkpoint, restore_checkpoint


def learning_rate_at(optimizer, step: int) -> float:
    """The scheduled rate used by update number `step` (0-based)."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    schedule = getattr(inner, "_learning_rate", None)
    if callable(schedule):
        return float(ops.convert_to_numpy(schedule(step)))
    return float(np.asarray(inner.learning_rate))


@dataclass(frozen=True)
class PretrainRun:
    """The pieces `train` needs (built by `albert pretrain` or by TAPT).

    Args:
        options: the pretraining options.
        runtime: a compiled runtime.
        model, optimizer: the `AlbertPretrainer` and its (compiled) optimizer.
        stream: the `PretrainingStream` of this worker's shard.
        logs: ``logs/`` of the output (None: no log, e.g. a non-chief worker).
        checkpoints: where checkpoints are written (None: not by this worker).
        resume_from: where the checkpoint to resume from is read (None: start at step 0).
        label: the progress bar's name.
    """

    options: PretrainOptions
    runtime: object
    model: object
    optimizer: object
    stream: object
    logs: Path | None
    checkpoints: Path | None
    resume_from: Path | None
    label: str = "pretrain"


def batches(run: PretrainRun, start_epoch: int, skip: int) -> Iterator[tuple]:
    """(epoch, batch index in epoch, batch, examples), cycling epochs forever, from a position."""
    rt = run.runtime
    per_worker = run.options.batch_size // rt.num_workers
    epoch = start_epoch
    while True:
        produced = False
        for b, batch in enumerate(run.stream.batches(epoch, per_worker, drop_remainder=True)):
            produced = True
            if epoch == start_epoch and b < skip:
                continue
            yield epoch, b, batch, per_worker * rt.num_workers
        if not produced:
            raise DataError(f"{run.options.corpus[0]}: worker {rt.worker_index} gets fewer than "
                            f"{per_worker} examples per epoch (corpus too small for --batch-size)")
        epoch += 1


def replay_position(run: PretrainRun, step: int) -> tuple[int, int]:
    """(epoch, batches done in it) after `step` steps, by counting batches (a non-chief worker resuming)."""
    per_worker = run.options.batch_size // run.runtime.num_workers
    epoch, left = 0, step
    while True:
        n = sum(1 for _ in run.stream.batches(epoch, per_worker, drop_remainder=True))
        if n == 0 or left < n:
            return epoch, left
        left -= n
        epoch += 1


def restore(run: PretrainRun, out: Path) -> TrainState:
    """The state of the newest checkpoint in `run.resume_from`, loaded into the model and optimizer."""
    last = latest_checkpoint(run.resume_from)
    if last is None:
        raise UsageError(f"{out}: nothing to resume (no checkpoint in {run.resume_from})")
    state = restore_checkpoint(run.resume_from, last, run.model, run.optimizer)
    run.runtime.after_restore()
    if run.runtime.num_workers > 1 and not run.runtime.is_chief:
        state.epoch, state.batch_in_epoch = replay_position(run, state.step)
    info(f"resumed at step {state.step} (epoch {state.epoch + 1}, batch {state.batch_in_epoch})")
    return state


class Meter(Callback):
    """Counts tokens and time, keeps the first and last 5 steps' metrics, and makes the log records."""

    def __init__(self, run: PretrainRun, state: TrainState):
        self.run, self.start_step = run, state.step
        self.tokens_before = int(state.totals.get("tokens", 0))
        self.seconds_before = float(state.totals.get("seconds", 0.0))
        self.tokens = self.window_tokens = 0
        self.start = self.window_start = time.time()
        self.head: list[dict] = []
        self.tail: deque = deque(maxlen=5)

    def on_step_end(self, event: StepEvent) -> None:
        batch_tokens = int(event.batch["padding_mask"].sum()) * self.run.runtime.num_workers
        self.tokens += batch_tokens
        self.window_tokens += batch_tokens
        row = {k: event.metrics[k] for k in METRICS}
        self.tail.append(row)
        if len(self.head) < 5:
            self.head.append(row)

    def status(self, event: StepEvent) -> str:
        rate = self.tokens / max(time.time() - self.start, 1e-6)
        return f"loss {event.metrics['loss']:.3f} {rate:,.0f} tok/s"

    def record(self, event: StepEvent) -> dict:
        now = time.time()
        record = {"step": event.state.step, **{k: round(event.metrics[k], 6) for k in METRICS},
                  "learning_rate": learning_rate_at(self.run.optimizer, event.state.step - 1),
                  "tokens_per_second": round(self.window_tokens / max(now - self.window_start, 1e-6), 1),
                  "elapsed": round(now - self.start, 3)}
        self.window_tokens, self.window_start = 0, now
        return record

    def totals(self, state: TrainState) -> dict:
        return {"tokens": self.tokens_before + self.tokens,
                "seconds": round(self.seconds_before + time.time() - self.start, 3)}

    def summary(self, state: TrainState) -> dict:
        """Final figures; losses are means over the first / last 5 steps of this run."""
        def mean(rows, key):
            return round(float(np.mean([r[key] for r in rows])), 6) if rows else None

        seconds = time.time() - self.start
        tail = list(self.tail)
        return {
            "steps": state.step,
            "steps_this_run": state.step - self.start_step,
            "tokens": self.tokens_before + self.tokens,
            "seconds": round(self.seconds_before + seconds, 2),
            "tokens_per_second": round(self.tokens / max(seconds, 1e-6), 1),
            "first_loss": mean(self.head, "loss"),
            "final_loss": mean(tail, "loss"),
            **{f"final_{k}": mean(tail, k) for k in METRICS if k != "loss"},
        }


def _callbacks(run: PretrainRun, meter: Meter, total: int | None) -> list[Callback]:
    o, rt = run.options, run.runtime
    callbacks: list[Callback] = [meter, ProgressBar(run.label, total, meter.status)]
    if run.logs is not None:
        also = [TensorBoardScalars(run.logs / "train")] if rt.name == "tensorflow" else []  # JAX: JSONL only
        callbacks.append(JsonlLog(run.logs / LOG_FILE, meter.record, o.log_every, also=also))
    if run.checkpoints is not None:
        callbacks.append(Checkpointing(run.checkpoints, run.model, run.optimizer, o.save_every,
                                       keep=o.keep_checkpoints, before_save=rt.sync, totals=meter.totals))
    callbacks.append(TimeBudget(o.max_time_seconds, o.max_time))
    return callbacks


def train(run: PretrainRun, total: int | None, out: Path) -> dict:
    """Pretrain (resuming when `run.resume_from` is set) until `total` steps or the time budget; returns the
    summary figures. The Keras variables hold the final state afterwards."""
    state = restore(run, out) if run.resume_from is not None else TrainState()
    meter = Meter(run, state)
    trainer = Trainer(run.runtime, _callbacks(run, meter, total), total)
    trainer.fit(prefetch(batches(run, state.epoch, state.batch_in_epoch)), state)
    run.runtime.sync()
    return meter.summary(state)
