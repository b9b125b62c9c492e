"""Runtimes compile one training step for a model, an optimizer and an objective, and run it.

Every runtime has the same surface, which is all the loop and the callbacks use:

- ``name``, ``strategy_name``, ``num_workers``, ``worker_index``, ``is_chief``, ``num_replicas``;
- ``seed(seed, deterministic)``, ``scope()`` (where variables are made);
- ``compile(model, optimizer, objective, signature=None, clip_groups=None, clip_norm=1.0)``;
- ``step(batch, stop=False) -> dict`` of floats (``stop`` > 0 when any worker voted to stop);
- ``sync()`` (the Keras variables hold the training state afterwards) and ``after_restore()``.

`TFRuntime` is TensorFlow (``tf.function``, optionally XLA, optionally a `tf.distribute` strategy);
`albert_cli.training.runtime_jax.JaxRuntime` is JAX. `make_runtime` picks by ``KERAS_BACKEND``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os

import keras

from albert_cli._tf import import_tf
from albert_cli.errors import UsageError
from albert_cli.training.distribute import cluster_role, make_strategy, planned_strategy, tf_config
from albert_cli.training.objectives import clip_by_group_norm
from albert_cli.training.runtime_jax import JaxRuntime


def backend_name() -> str:
    return os.environ.get("KERAS_BACKEND", "tensorflow")


def make_runtime(strategy: str = "none", jit: bool = False, fp16: bool = False, command: str = "pretrain"):
    """The runtime of the Keras backend in use.

    Args:
        strategy: ``none`` (a plain compiled step: fine-tuning) or a ``--strategy`` value.
        jit: XLA-compile the step (TensorFlow; JAX always compiles).
        fp16: float16 loss scaling (TensorFlow).
        command: named in the error for an unsupported backend.
    """
    backend = backend_name()
    if backend == "jax":
        if importlib.util.find_spec("jax") is None:
            raise UsageError("KERAS_BACKEND=jax, but the jax package is not installed (pip install jax)")
        return JaxRuntime()
    if backend != "tensorflow":
        raise UsageError(f"KERAS_BACKEND={backend} is not supported by {command} (use tensorflow or jax)")
    return TFRuntime(strategy, jit=jit, fp16=fp16)


class TFRuntime:
    """The training step on TensorFlow.

    Args:
        strategy: ``none`` for a plain `tf.function` step with a fixed input signature (variable batch shapes do
            not retrace), else a ``--strategy`` value run under `tf.distribute`.
        jit: XLA-compile the step (with a strategy other than one-device, the forward/backward pass only:
            collectives stay outside XLA).
        fp16: wrap the optimizer in loss scaling.
    """

    name = "tensorflow"

    def __init__(self, strategy: str = "none", jit: bool = False, fp16: bool = False):
        self.tf = tf = import_tf()
        self.jit, self.fp16 = jit, fp16
        self.num_workers, self.worker_index, self.is_chief = 1, 0, True
        if strategy == "none":
            self.strategy_name, self.strategy, self.num_replicas = "none", None, 1
        else:
            self.strategy_name = kind = planned_strategy(strategy)
            self.strategy = make_strategy(tf, kind)
            self.num_replicas = self.strategy.num_replicas_in_sync
            if kind == "multi-worker":
                spec = self.strategy.cluster_resolver.cluster_spec().as_dict()
                self.num_workers = max(1, len(spec.get("worker", [])) + len(spec.get("chief", [])))
                _, self.worker_index, self.is_chief = cluster_role(tf_config())
        self.local_replicas = max(1, self.num_replicas // self.num_workers)
        self._train_step = None

    def seed(self, seed: int, deterministic: bool) -> None:
        keras.utils.set_random_seed(seed)
        if deterministic:
            self.tf.config.experimental.enable_op_determinism()

    def scope(self):
        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()

    def compile(self, model, optimizer, objective, signature=None, clip_groups=None, clip_norm: float = 1.0):
        """Build the optimizer and trace the step; returns the optimizer (wrapped for fp16)."""
        if self.fp16:
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        if self.strategy is None:
            self._train_step = self._plain_step(model, optimizer, objective, signature, clip_groups, clip_norm)
        else:
            self._train_step = self._distributed_step(model, optimizer, objective)
        optimizer.build(model.trainable_variables)
        return optimizer

    def _gradients(self, model, optimizer, objective, batch, scale: float = 1.0):
        tf = self.tf
        with tf.GradientTape() as tape:
            metrics = objective(model, batch, training=True)
            loss = metrics["loss"] / scale if scale != 1.0 else metrics["loss"]
            if self.fp16:
                loss = optimizer.scale_loss(loss)
        return metrics, tape.gradient(loss, model.trainable_variables)

    def _plain_step(self, model, optimizer, objective, signature, clip_groups, clip_norm):
        def train_step(batch):
            metrics, grads = self._gradients(model, optimizer, objective, batch)
            if clip_groups is not None:
                grads = clip_by_group_norm(grads, clip_groups, clip_norm)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            return metrics

        return self.tf.function(train_step, input_signature=[signature] if signature else None,
                                jit_compile=bool(self.jit))

    def _distributed_step(self, model, optimizer, objective):
        tf, replicas = self.tf, self.num_replicas
        one_device = self.strategy_name == "one-device"

        def forward_backward(features):
            return self._gradients(model, optimizer, objective, features, scale=replicas)

        if self.jit and not one_device:  # collectives stay outside XLA
            forward_backward = tf.function(forward_backward, jit_compile=True)

        def replica_step(features):
            features = dict(features)
            stop = tf.identity(features.pop("_stop"))  # placed on the replica device (all_reduce needs one)
            metrics, grads = forward_backward(features)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))  # all-reduces the gradients
            ctx = tf.distribute.get_replica_context()
            out = {k: ctx.all_reduce(tf.distribute.ReduceOp.MEAN, v) for k, v in metrics.items()}
            out["stop"] = ctx.all_reduce(tf.distribute.ReduceOp.SUM, stop)  # > 0: some worker votes stop
            return out

        @tf.function(jit_compile=bool(self.jit and one_device))
        def train_step(dist_features):
            per_replica = self.strategy.run(replica_step, args=(dist_features,))
            return {k: self.strategy.experimental_local_results(v)[0] for k, v in per_replica.items()}

        return train_step

    def _distribute(self, batch: dict, stop: bool):
        tf, n = self.tf, self.local_replicas
        size = next(iter(batch.values())).shape[0] // n

        def value_fn(ctx):
            i = ctx.replica_id_in_sync_group % n
            values = {k: tf.constant(v[i * size:(i + 1) * size]) for k, v in batch.items()}
            values["_stop"] = tf.constant(1.0 if stop else 0.0)
            return values

        return self.strategy.experimental_distribute_values_from_function(value_fn)

    def step(self, batch: dict, stop: bool = False) -> dict:
        if self.strategy is None:
            out = {k: float(v) for k, v in self._train_step(batch).items()}
            out["stop"] = 1.0 if stop else 0.0
            return out
        return {k: float(v) for k, v in self._train_step(self._distribute(batch, stop)).items()}

    def sync(self) -> None:
        """Keras variables are the training state on TensorFlow: nothing to copy."""

    def after_restore(self) -> None:
        """Nothing to reload: the step reads the Keras variables."""
