"""The one training loop, for fine-tuning, task-adaptive pretraining and pretraining, on every runtime.

`train_steps` only runs steps and yields one `StepEvent` after each (as spaCy's ``train_while_improving``);
`Trainer.fit` hands every event to its callbacks, which log, evaluate, save and ask to stop. Ctrl-C and SIGTERM
wait for the step in flight (`deferred_interrupts`); the callbacks then get `on_interrupt` and the exception
goes on to the command, which exits 130.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Sequence

from albert_cli.errors import Interrupted, ModelError, deferred_interrupts
from albert_cli.training.state import TrainState


@dataclass
class StepEvent:
    """One finished step.

    Args:
        state: the run's state after the step (the same object every time).
        metrics: the step's scalars (``loss`` and whatever the objective returns).
        examples: the examples in the batch (all workers).
        batch: the batch itself (callbacks may count its tokens).
        at_end: the step budget is reached.
    """

    state: TrainState
    metrics: dict
    examples: int
    batch: dict = field(repr=False)
    at_end: bool = False


class Callback:
    """Hooks of `Trainer.fit`; every one is optional. A callback asks the loop to stop by setting
    ``state.stop_reason``; `wants_stop` is asked before each step (its answer travels with the step, so all the
    workers of a distributed run stop at the same step)."""

    def on_train_begin(self, state: TrainState) -> None: ...

    def wants_stop(self, state: TrainState) -> bool:
        return False

    def on_step_end(self, event: StepEvent) -> None: ...

    def on_interrupt(self, state: TrainState) -> None: ...

    def on_train_end(self, state: TrainState) -> None: ...

    def close(self) -> None: ...


def train_steps(runtime, batches: Iterable, state: TrainState, total_steps: int | None,
                stop_vote=lambda: False) -> Iterator[StepEvent]:
    """Run `runtime.step` on `batches` until `total_steps` (None: until the batches end or a stop vote).

    Args:
        runtime: a compiled runtime (`albert_cli.training.runtime`).
        batches: ``(epoch, index in epoch, batch, examples)`` tuples, already positioned after the state's.
        state: updated in place (step, epoch, batch_in_epoch).
        total_steps: the step budget.
        stop_vote: asked before each step; True sends a stop vote with the step (see `Callback.wants_stop`).
    """
    for epoch, index, batch, examples in batches:
        if total_steps is not None and state.step >= total_steps:  # e.g. resuming a finished run
            return
        stop = bool(stop_vote())
        with deferred_interrupts():  # a signal waits for the step to finish
            metrics = runtime.step(batch, stop=stop)
            state.step += 1
            state.epoch, state.batch_in_epoch = epoch, index + 1
        if not math.isfinite(metrics["loss"]):
            raise ModelError(f"training diverged at step {state.step} (loss {metrics['loss']}); "
                             "try a lower --learning-rate")
        at_end = total_steps is not None and state.step >= total_steps
        yield StepEvent(state, metrics, examples, batch, at_end)


class Trainer:
    """Runs `train_steps` and calls the callbacks.

    Args:
        runtime: the compiled runtime.
        callbacks: called in order for every event.
        total_steps: the step budget (None: until a callback stops the run).

    Example:
        >>> trainer = Trainer(runtime, [ProgressBar("finetune", 100), Checkpointing(...)], total_steps=100)
        >>> state = trainer.fit(batches, TrainState())
    """

    def __init__(self, runtime, callbacks: Sequence[Callback], total_steps: int | None):
        self.runtime = runtime
        self.callbacks = list(callbacks)
        self.total_steps = total_steps

    def _any_wants_stop(self, state: TrainState) -> bool:
        return any(cb.wants_stop(state) for cb in self.callbacks)

    def fit(self, batches: Iterable, state: TrainState) -> TrainState:
        """Train from `state` (a fresh or restored one); returns it after the last step."""
        for cb in self.callbacks:
            cb.on_train_begin(state)
        try:
            steps = train_steps(self.runtime, batches, state, self.total_steps, lambda: self._any_wants_stop(state))
            for event in steps:
                if event.metrics.get("stop"):
                    state.stop_reason = state.stop_reason or "vote"
                for cb in self.callbacks:
                    cb.on_step_end(event)
                if event.at_end or state.stop_reason:
                    break
        except Interrupted:
            for cb in self.callbacks:
                cb.on_interrupt(state)
            raise
        finally:
            for cb in self.callbacks:
                cb.close()
        for cb in self.callbacks:
            cb.on_train_end(state)
        return state
