"""The callbacks every run shares: progress bar, TensorBoard scalars, JSONL log, checkpoints, a time budget.

Fine-tuning's dev evaluation (best weights, early stopping, the moving average) is in
`albert_cli.training.finetune.selection`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

from albert_cli._tf import import_tf
from albert_cli.console import err_console, info, progress
from albert_cli.training.loop import Callback, StepEvent
from albert_cli.training.state import TrainState, save_checkpoint


class ProgressBar(Callback):
    """A rich progress bar on stderr; `status(event)` writes the text beside it.

    Args:
        label: the bar's name (``finetune``, ``pretrain``, ``tapt``).
        total: the step budget, or None (an open-ended run).
        status: the text after each step.
    """

    def __init__(self, label: str, total: int | None, status: Callable[[StepEvent], str]):
        self.label, self.total, self.status = label, total, status
        self._bar = progress()
        self._task = None

    def on_train_begin(self, state: TrainState) -> None:
        bar = self._bar.__enter__()
        self._task = bar.add_task(self.label, total=self.total, completed=state.step, status="")

    def on_step_end(self, event: StepEvent) -> None:
        self._bar.update(self._task, completed=event.state.step, status=self.status(event))

    def close(self) -> None:
        if self._task is not None:
            self._bar.__exit__(None, None, None)
            self._task = None


class Throughput:
    """Examples (or tokens) per second since the start of this run, for progress texts."""

    def __init__(self):
        self.start, self.count = time.time(), 0

    def add(self, n: int) -> float:
        self.count += n
        return self.count / max(time.time() - self.start, 1e-6)


class TensorBoardScalars(Callback):
    """Scalars for TensorBoard in `logdir` (TensorFlow only: `tf.summary`).

    Args:
        logdir: ``OUT.partial/logs/train``.
        scalars: the scalars of a step event, written every `every` steps (and at step 1); None: this is only a
            sink for other callbacks' `write` calls (the JSONL log's records, the dev metrics).
        every: write every N steps.
    """

    def __init__(self, logdir: Path, scalars: Callable[[StepEvent], dict] | None = None, every: int = 1):
        self.tf = import_tf()
        self.writer = self.tf.summary.create_file_writer(str(logdir))
        self.scalars, self.every = scalars, every

    def write(self, step: int, values: dict) -> None:
        with self.writer.as_default(step=step):
            for key, value in values.items():
                if isinstance(value, (int, float)) and key != "step":
                    self.tf.summary.scalar(key, value)

    def on_step_end(self, event: StepEvent) -> None:
        step = event.state.step
        if self.scalars is not None and (step % self.every == 0 or step == 1):
            self.write(step, self.scalars(event))

    def close(self) -> None:
        self.writer.close()


class JsonlLog(Callback):
    """Append-only ``logs/train.jsonl``: one record every `every` steps (and at step 1).

    Args:
        path: the file (appended to, so a resumed run continues it).
        record: the record of a step event.
        every: write every N steps.
        also: more sinks for the same record (TensorBoard).
    """

    def __init__(self, path: Path, record: Callable[[StepEvent], dict], every: int, also=()):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(path, "a", encoding="utf-8")
        self.record, self.every, self.also = record, every, list(also)

    def on_step_end(self, event: StepEvent) -> None:
        step = event.state.step
        if step % self.every == 0 or step == 1:
            record = self.record(event)
            self.file.write(json.dumps(record) + "\n")
            self.file.flush()
            for sink in self.also:
                sink.write(step, record)

    def close(self) -> None:
        if not self.file.closed:
            self.file.close()
        for sink in self.also:
            sink.close()


class Checkpointing(Callback):
    """Saves a checkpoint every `every` steps, at the end, on an early stop and on Ctrl-C.

    Args:
        directory: ``OUT.partial/checkpoints``.
        model, optimizer: what is saved (with the `TrainState`).
        every: save every N steps.
        keep: checkpoints kept.
        before_save: called first (the JAX runtime copies its arrays into the Keras variables).
        totals: fills ``state.totals`` before each save (pretraining's token and time counts).
        announce: print where the checkpoint went when interrupted.
    """

    def __init__(self, directory: Path, model, optimizer, every: int, keep: int = 1,
                 before_save: Callable[[], None] = lambda: None,
                 totals: Callable[[TrainState], dict] | None = None, announce: bool = True):
        self.directory, self.model, self.optimizer = Path(directory), model, optimizer
        self.every, self.keep = every, keep
        self.before_save, self.totals, self.announce = before_save, totals, announce
        self.saved_step = None

    def save(self, state: TrainState) -> None:
        self.before_save()
        if self.totals is not None:
            state.totals = self.totals(state)
        save_checkpoint(self.directory, self.model, self.optimizer, state, keep=self.keep)
        self.saved_step = state.step

    def on_step_end(self, event: StepEvent) -> None:
        if event.state.step % self.every == 0 or event.at_end or event.state.stop_reason:
            self.save(event.state)

    def on_interrupt(self, state: TrainState) -> None:
        self.save(state)
        if self.announce:
            err_console.print(
                f"saved a checkpoint at step {state.step} in {self.directory}; continue with --resume", highlight=False
            )

    def on_train_end(self, state: TrainState) -> None:
        if self.saved_step != state.step:
            self.save(state)


class TimeBudget(Callback):
    """Votes to stop once `seconds` of this run have passed (``--max-time``)."""

    def __init__(self, seconds: float | None, option: str):
        self.seconds, self.option = seconds, option
        self.start = time.time()

    def on_train_begin(self, state: TrainState) -> None:
        self.start = time.time()

    def wants_stop(self, state: TrainState) -> bool:
        return self.seconds is not None and time.time() - self.start >= self.seconds

    def on_step_end(self, event: StepEvent) -> None:
        if event.metrics.get("stop"):
            event.state.stop_reason = "time"
            info(f"--max-time {self.option} reached at step {event.state.step}")
