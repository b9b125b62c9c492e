"""The JAX runtime (``KERAS_BACKEND=jax``): the same surface as `albert_cli.training.runtime.TFRuntime`.

The step is Keras 3's stateless API under ``jax.jit`` (the objective runs in a `keras.StatelessScope`, gradients
by ``jax.value_and_grad``, ``optimizer.stateless_apply``), as in the Keras guide "Writing a training loop from
scratch in JAX". The training state lives in JAX arrays between steps and is copied back into the Keras
variables by `sync` (before a checkpoint or the export). TensorFlow is never imported here.
"""

from __future__ import annotations

import contextlib
import random

import keras
import numpy as np
from keras.src.backend.common import global_state

from albert_cli.training.objectives import clip_by_group_norm


def seed_everything(seed: int) -> None:
    """Python, NumPy and Keras seeds, without importing TensorFlow."""
    random.seed(seed)
    np.random.seed(seed)
    global_state.set_global_attribute("global_random_seed", seed)


class JaxRuntime:
    """Single-process JAX training (one device)."""

    name = "jax"
    strategy_name = "jax-jit"
    num_workers, worker_index, is_chief = 1, 0, True
    num_replicas = local_replicas = 1

    def __init__(self):
        self.model = self.optimizer = self.state = self._train_step = None

    def seed(self, seed: int, deterministic: bool) -> None:
        seed_everything(seed)

    def scope(self):
        return contextlib.nullcontext()

    def compile(self, model, optimizer, objective, signature=None, clip_groups=None, clip_norm: float = 1.0):
        """Build the optimizer and the jitted stateless step; returns the optimizer."""
        import jax

        optimizer.build(model.trainable_variables)
        self.model, self.optimizer = model, optimizer
        grad_fn = jax.value_and_grad(self._loss_fn(model, objective), has_aux=True)

        @jax.jit
        def train_step(state, batch):
            trainable, non_trainable, opt_vars = state
            (_, (metrics, non_trainable)), grads = grad_fn(trainable, non_trainable, batch)
            if clip_groups is not None:
                grads = clip_by_group_norm(grads, clip_groups, clip_norm)
            trainable, opt_vars = optimizer.stateless_apply(opt_vars, grads, trainable)
            return metrics, (trainable, non_trainable, opt_vars)

        self._train_step = train_step
        self._read_state()
        return optimizer

    @staticmethod
    def _loss_fn(model, objective):
        def loss_fn(trainable, non_trainable, batch):
            mapping = list(zip(model.trainable_variables, trainable))
            mapping += list(zip(model.non_trainable_variables, non_trainable))
            with keras.StatelessScope(state_mapping=mapping) as scope:
                metrics = objective(model, batch, training=True)
            updated = []
            for variable, value in zip(model.non_trainable_variables, non_trainable):
                new = scope.get_current_value(variable)
                updated.append(value if new is None else new)
            return metrics["loss"], (metrics, updated)

        return loss_fn

    def _read_state(self) -> None:
        m, o = self.model, self.optimizer
        self.state = (
            [v.value for v in m.trainable_variables],
            [v.value for v in m.non_trainable_variables],
            [v.value for v in o.variables],
        )

    def step(self, batch: dict, stop: bool = False) -> dict:
        metrics, self.state = self._train_step(self.state, batch)
        out = {k: float(v) for k, v in metrics.items()}
        out["stop"] = 1.0 if stop else 0.0
        return out

    def sync(self) -> None:
        """Copy the JAX training state into the Keras variables."""
        trainable, non_trainable, opt_vars = self.state
        for variables, values in (
            (self.model.trainable_variables, trainable),
            (self.model.non_trainable_variables, non_trainable),
            (self.optimizer.variables, opt_vars),
        ):
            for variable, value in zip(variables, values):
                variable.assign(value)

    def after_restore(self) -> None:
        self._read_state()
