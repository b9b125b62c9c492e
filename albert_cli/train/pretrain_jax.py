"""The JAX runtime of `albert pretrain` (``KERAS_BACKEND=jax``).

Same model, objective (:func:`albert_cli.train.pretrain.pretraining_losses`),
optimizer, data stream and loop as the TensorFlow path; only the step differs:
Keras 3's stateless API under ``jax.jit`` (``model.stateless_call``,
``optimizer.stateless_apply``, ``jax.value_and_grad``), as in the Keras guide
"Writing a training loop from scratch in JAX".  The training state lives in
JAX arrays between steps and is copied back into the Keras variables
(:meth:`JaxRuntime.sync`) before a checkpoint or the export.

TensorFlow is never imported here: batches are numpy (``batch_examples``),
logs are ``logs/train.jsonl`` only (no TensorBoard).
"""

from __future__ import annotations

import sys

from albert_cli.console import warn
from albert_cli.errors import UsageError
from albert_cli.train.pretrain import PRECISIONS, PretrainOptions, model_inputs, pretraining_losses, seed_everything


class JaxRuntime:
    """Single-process JAX training (one device)."""

    name = "jax"
    strategy_name = "jax-jit"
    num_workers, worker_index, is_chief = 1, 0, True
    num_replicas = 1

    def __init__(self, opts: PretrainOptions):
        if opts.strategy not in ("auto", "one-device"):
            raise UsageError(f"--strategy {opts.strategy} needs the TensorFlow backend (unset KERAS_BACKEND=jax)")
        if opts.export_google:
            raise UsageError("--export-google writes a TensorFlow checkpoint; it needs the TensorFlow backend")
        if opts.precision == "fp16":
            raise UsageError("--precision fp16 is not supported on the JAX backend (use bf16 or fp32)")
        if opts.jit:
            warn("--jit: the JAX path always compiles the train step")
        if opts.deterministic:
            warn("--deterministic: JAX on CPU is deterministic already")
        self.opts = opts

    def seed(self, seed: int, deterministic: bool) -> None:
        seed_everything(seed)

    def set_precision(self, precision: str) -> None:
        import keras

        keras.config.set_dtype_policy(PRECISIONS[precision])

    def scope(self):
        import contextlib

        return contextlib.nullcontext()

    def compile(self, model, optimizer):
        """Build the optimizer and the jitted stateless train step."""
        import jax

        optimizer.build(model.trainable_variables)
        self.model, self.optimizer = model, optimizer

        def loss_fn(trainable, non_trainable, features):
            outputs, non_trainable = model.stateless_call(
                trainable, non_trainable, model_inputs(features), training=True
            )
            metrics = pretraining_losses(outputs, features)
            return metrics["loss"], (metrics, non_trainable)

        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

        @jax.jit
        def train_step(state, features):
            trainable, non_trainable, opt_vars = state
            (_, (metrics, non_trainable)), grads = grad_fn(trainable, non_trainable, features)
            trainable, opt_vars = optimizer.stateless_apply(opt_vars, grads, trainable)
            return metrics, (trainable, non_trainable, opt_vars)

        self._train_step = train_step
        self._read_state()
        return model, optimizer

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

    def scalar_writer(self, logdir):
        return None  # no TensorBoard without TensorFlow: logs/train.jsonl has the scalars

    def check_clean(self) -> None:
        if "tensorflow" in sys.modules:
            warn("tensorflow was imported on the JAX path")
