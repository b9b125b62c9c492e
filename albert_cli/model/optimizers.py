"""Optimizers and learning-rate schedule used to (pre)train ALBERT.

Backend-agnostic Keras 3: only ``keras`` / ``keras.ops`` are used here (no
TensorFlow), so this module also runs on the JAX backend.

* :class:`AlbertLamb` -- the LAMB optimizer exactly as ALBERT's original
  ``lamb_optimizer.py`` (You et al., 2019, arXiv:1904.00962) implements it::

      m  = beta_1 * m + (1 - beta_1) * g
      v  = beta_2 * v + (1 - beta_2) * g**2          # NO bias correction
      u  = m / (sqrt(v) + epsilon)
      u += weight_decay_rate * w                     # unless excluded from decay
      r  = ||w|| / ||u||  if ||w|| > 0 and ||u|| > 0 else 1.0
                                                     # r = 1.0 if excluded from
                                                     # layer adaptation
      w -= lr * r * u

  (Keras' own ``keras.optimizers.Lamb`` differs: it bias-corrects the moments
  and has no built-in decoupled weight decay inside the trust ratio.)

* :class:`PolynomialDecayWithWarmup` -- the schedule of the original
  ``optimization.create_optimizer``: polynomial decay of the peak rate over
  ``decay_steps`` (counted from step 0, *not* from the end of warm-up) and, for
  ``step - start_warmup_step < warmup_steps``, the linear warm-up value
  ``peak * (step - start_warmup_step) / warmup_steps`` replaces it.

* :func:`make_optimizer` -- ``"lamb"`` or ``"adamw"`` with ALBERT's settings
  and global-norm gradient clipping at 1.0 (as the original
  ``tf.clip_by_global_norm(grads, clip_norm=1.0)``).

Which variables are excluded from weight decay / layer adaptation
-----------------------------------------------------------------
The original matches regexes (``["LayerNorm", "layer_norm", "bias"]``) against
TF1 variable names such as ``bert/embeddings/LayerNorm/gamma`` or
``.../dense/bias``.  Keras 3 variables have a short ``name`` (``"kernel"``,
``"bias"``, ``"gamma"``, ``"beta"``, ``"embeddings"``) and a ``path`` made of
the owning layers' names (``"embeddings_layer_norm/gamma"``,
``"outer/inner/bias"``).  :class:`AlbertLamb` therefore excludes a variable
when

1. any ``exclude_from_weight_decay`` regex ``re.search``-es its ``path``
   (falling back to ``name`` for path-less variables) -- so every ``bias``
   variable and every weight of a layer whose name contains ``layer_norm``
   (our backbone's names, and also Keras' default ``layer_normalization``) or
   ``LayerNorm`` is excluded, exactly like the original; or
2. ``exclude_normalization_params`` (default True) and its ``name`` is
   ``"gamma"`` or ``"beta"`` -- the weights Keras' normalization layers
   (``LayerNormalization``, ``BatchNormalization``, ``GroupNormalization``...)
   create, so a LayerNorm gamma/beta is excluded even if its layer was given a
   name without ``layer_norm`` in it.

The same rule (with ``exclude_from_layer_adaptation``, which defaults to the
weight-decay list, as in the original) decides which variables skip the trust
ratio (``r = 1``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import keras
from keras import ops

__all__ = [
    "DEFAULT_EXCLUDE_FROM_WEIGHT_DECAY",
    "AlbertLamb",
    "PolynomialDecayWithWarmup",
    "make_optimizer",
    "is_excluded",
]

DEFAULT_EXCLUDE_FROM_WEIGHT_DECAY: tuple[str, ...] = ("LayerNorm", "layer_norm", "bias")
_NORMALIZATION_PARAM_NAMES = frozenset({"gamma", "beta"})


def _variable_path(variable) -> str:
    path = getattr(variable, "path", None)
    if path:
        return str(path)
    name = str(getattr(variable, "name", ""))
    m = re.match(r"^(.*):\d+$", name)  # TF-style "foo/bar:0"
    return m.group(1) if m else name


def _variable_short_name(variable) -> str:
    name = str(getattr(variable, "name", "") or "")
    name = re.sub(r":\d+$", "", name)
    return name.rsplit("/", 1)[-1]


def is_excluded(variable, patterns: Sequence[str] | None, exclude_normalization_params: bool = True) -> bool:
    """True when `variable` matches one of the regex `patterns` (searched in its
    ``path``) or, with `exclude_normalization_params`, is named gamma/beta."""
    if patterns:
        path = _variable_path(variable)
        for pattern in patterns:
            if re.search(pattern, path) is not None:
                return True
    if exclude_normalization_params and _variable_short_name(variable) in _NORMALIZATION_PARAM_NAMES:
        return True
    return False


@keras.saving.register_keras_serializable(package="albert_cli")
class AlbertLamb(keras.optimizers.Optimizer):
    """LAMB as in ALBERT's ``lamb_optimizer.py`` (no bias correction).

    Args:
        learning_rate: float, ``LearningRateSchedule`` or callable.
        weight_decay_rate: decoupled L2 decay added to the update *before* the
            trust ratio (the original's ``weight_decay_rate``; 0.01 in ALBERT).
        beta_1, beta_2, epsilon: Adam moments' decay rates and epsilon (added
            to ``sqrt(v)``).
        exclude_from_weight_decay: regexes searched in the variable ``path``.
        exclude_from_layer_adaptation: regexes for the trust ratio; ``None`` (or
            empty) means "same as exclude_from_weight_decay", as the original.
        exclude_normalization_params: also exclude (from both) variables named
            ``gamma``/``beta`` (Keras normalization layer weights).
        weight_decay: must stay ``None`` -- Keras' own decoupled decay
            (``w -= lr * wd * w`` outside the trust ratio) is not LAMB's;
            accepted only so ``from_config(get_config())`` round-trips.
        clipnorm, clipvalue, global_clipnorm, ...: the usual Keras optimizer
            arguments (``make_optimizer`` uses ``global_clipnorm=1.0``).
    """

    def __init__(
        self,
        learning_rate=0.00176,
        weight_decay_rate: float = 0.01,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-6,
        exclude_from_weight_decay: Sequence[str] | None = DEFAULT_EXCLUDE_FROM_WEIGHT_DECAY,
        exclude_from_layer_adaptation: Sequence[str] | None = None,
        exclude_normalization_params: bool = True,
        weight_decay=None,
        clipnorm=None,
        clipvalue=None,
        global_clipnorm=None,
        use_ema: bool = False,
        ema_momentum: float = 0.99,
        ema_overwrite_frequency=None,
        loss_scale_factor=None,
        gradient_accumulation_steps=None,
        name: str | None = "albert_lamb",
        **kwargs,
    ):
        if weight_decay is not None:
            raise ValueError(
                "AlbertLamb applies weight decay inside the LAMB update; use "
                f"`weight_decay_rate=` instead of `weight_decay=` (got {weight_decay!r})."
            )
        super().__init__(
            learning_rate=learning_rate,
            weight_decay=None,
            clipnorm=clipnorm,
            clipvalue=clipvalue,
            global_clipnorm=global_clipnorm,
            use_ema=use_ema,
            ema_momentum=ema_momentum,
            ema_overwrite_frequency=ema_overwrite_frequency,
            loss_scale_factor=loss_scale_factor,
            gradient_accumulation_steps=gradient_accumulation_steps,
            name=name,
            **kwargs,
        )
        self.weight_decay_rate = float(weight_decay_rate)
        self.beta_1 = float(beta_1)
        self.beta_2 = float(beta_2)
        self.epsilon = float(epsilon)
        self.exclude_from_weight_decay_patterns = list(exclude_from_weight_decay or [])
        self.exclude_from_layer_adaptation_patterns = (
            list(exclude_from_layer_adaptation) if exclude_from_layer_adaptation else None
        )
        self.exclude_normalization_params = bool(exclude_normalization_params)

    # -- per-variable rules (pure Python; static under jit) -----------------
    def _layer_adaptation_patterns(self) -> list[str]:
        if self.exclude_from_layer_adaptation_patterns:
            return self.exclude_from_layer_adaptation_patterns
        return self.exclude_from_weight_decay_patterns

    def do_use_weight_decay(self, variable) -> bool:
        """Whether `variable` gets ``weight_decay_rate * w`` added to its update."""
        if not self.weight_decay_rate:
            return False
        return not is_excluded(
            variable, self.exclude_from_weight_decay_patterns, self.exclude_normalization_params
        )

    def do_layer_adaptation(self, variable) -> bool:
        """Whether `variable`'s update is scaled by the trust ratio."""
        return not is_excluded(
            variable, self._layer_adaptation_patterns(), self.exclude_normalization_params
        )

    # -- Keras optimizer API --------------------------------------------------
    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._momentums, self._velocities = self.add_optimizer_variables(
            var_list, ["adam_m", "adam_v"]
        )
        # Decide the per-variable rules once, on the Keras variables (which
        # carry `.path`; on the TF backend `update_step` later receives the
        # underlying tf.Variable, whose name is "path:0").
        self._use_decay_flags = [bool(self.do_use_weight_decay(v)) for v in var_list]
        self._layer_adaptation_flags = [bool(self.do_layer_adaptation(v)) for v in var_list]

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        lr = ops.cast(learning_rate, dtype)
        gradient = ops.cast(gradient, dtype)
        index = self._get_variable_index(variable)
        m = self._momentums[index]
        v = self._velocities[index]

        next_m = ops.add(ops.multiply(self.beta_1, m), ops.multiply(1.0 - self.beta_1, gradient))
        next_v = ops.add(
            ops.multiply(self.beta_2, v), ops.multiply(1.0 - self.beta_2, ops.square(gradient))
        )
        self.assign(m, next_m)
        self.assign(v, next_v)

        update = ops.divide(next_m, ops.add(ops.sqrt(next_v), self.epsilon))
        if self._use_decay_flags[index]:
            update = ops.add(update, ops.multiply(ops.cast(self.weight_decay_rate, dtype), variable))

        if self._layer_adaptation_flags[index]:
            w_norm = ops.sqrt(ops.sum(ops.square(variable)))
            u_norm = ops.sqrt(ops.sum(ops.square(update)))
            one = ops.ones((), dtype=dtype)
            safe_u_norm = ops.where(ops.greater(u_norm, 0), u_norm, one)
            ratio = ops.where(
                ops.greater(w_norm, 0),
                ops.where(ops.greater(u_norm, 0), ops.divide(w_norm, safe_u_norm), one),
                one,
            )
            update = ops.multiply(ratio, update)

        self.assign_sub(variable, ops.multiply(lr, update))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "weight_decay_rate": self.weight_decay_rate,
                "beta_1": self.beta_1,
                "beta_2": self.beta_2,
                "epsilon": self.epsilon,
                "exclude_from_weight_decay": list(self.exclude_from_weight_decay_patterns),
                "exclude_from_layer_adaptation": (
                    list(self.exclude_from_layer_adaptation_patterns)
                    if self.exclude_from_layer_adaptation_patterns
                    else None
                ),
                "exclude_normalization_params": self.exclude_normalization_params,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="albert_cli")
class PolynomialDecayWithWarmup(keras.optimizers.schedules.LearningRateSchedule):
    """ALBERT's learning rate: linear warm-up, then polynomial (linear) decay.

    As ``optimization.create_optimizer``::

        decayed(step) = (peak - end) * (1 - min(step, decay_steps) / decay_steps) ** power + end
        lr(step)      = peak * (step - start_warmup_step) / warmup_steps
                            if step - start_warmup_step < warmup_steps
                        else decayed(step)

    Note the decay is over ``decay_steps`` counted from step 0 (the original's
    ``num_train_steps``), so at the end of warm-up the rate is
    ``peak * (1 - warmup_steps / decay_steps)`` (power 1), not ``peak``.
    """

    def __init__(
        self,
        peak_learning_rate: float,
        decay_steps: int,
        warmup_steps: int = 0,
        end_learning_rate: float = 0.0,
        power: float = 1.0,
        start_warmup_step: int = 0,
        name: str | None = None,
    ):
        super().__init__()
        if decay_steps <= 0:
            raise ValueError(f"decay_steps must be > 0, got {decay_steps}")
        if warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")
        self.peak_learning_rate = float(peak_learning_rate)
        self.decay_steps = int(decay_steps)
        self.warmup_steps = int(warmup_steps)
        self.end_learning_rate = float(end_learning_rate)
        self.power = float(power)
        self.start_warmup_step = int(start_warmup_step)
        self.name = name

    def __call__(self, step):
        step = ops.cast(step, "float32")
        peak = ops.cast(self.peak_learning_rate, "float32")
        end = ops.cast(self.end_learning_rate, "float32")
        decay_steps = ops.cast(self.decay_steps, "float32")
        progress = ops.divide(ops.minimum(step, decay_steps), decay_steps)
        decayed = ops.add(
            ops.multiply(ops.subtract(peak, end), ops.power(ops.subtract(1.0, progress), self.power)),
            end,
        )
        if not self.warmup_steps:
            return decayed
        warm_step = ops.subtract(step, ops.cast(self.start_warmup_step, "float32"))
        warmup_steps = ops.cast(self.warmup_steps, "float32")
        warmup_lr = ops.multiply(peak, ops.divide(warm_step, warmup_steps))
        return ops.where(ops.less(warm_step, warmup_steps), warmup_lr, decayed)

    def get_config(self):
        return {
            "peak_learning_rate": self.peak_learning_rate,
            "decay_steps": self.decay_steps,
            "warmup_steps": self.warmup_steps,
            "end_learning_rate": self.end_learning_rate,
            "power": self.power,
            "start_warmup_step": self.start_warmup_step,
            "name": self.name,
        }


# Keras' AdamW `re.search`es `var_names` (joined into one regex) in
# `variable.name`, which is the short name ("gamma") on JAX but the tf.Variable
# name ("embeddings_layer_norm/gamma:0") on TensorFlow -- so besides the
# original's patterns we anchor gamma/beta to catch every normalization weight.
ADAMW_EXCLUDE_VAR_NAMES: tuple[str, ...] = (
    "LayerNorm",
    "layer_norm",
    "bias",
    r"(^|/)gamma(:\d+)?$",
    r"(^|/)beta(:\d+)?$",
)


class AveragingAdamW(keras.optimizers.AdamW):
    """AdamW that also keeps a moving average of the weights (``use_ema``) whose
    momentum warms up: at step t (from 0) it is ``min(ema_momentum, t / (t + 1))``,
    so the average is the plain mean of the weights so far until that reaches
    `ema_momentum` (0.995: after 199 steps). Keras' own average starts at the full
    momentum, which leaves a short run at about its first weights."""

    def moving_averages(self, variables) -> list:
        """The moving average of each of `variables` (None where it has none), to evaluate or keep it."""
        if not self.use_ema:
            return [None] * len(variables)
        return [self._model_variables_moving_average[self._get_variable_index(v)] for v in variables]

    def _update_model_variables_moving_average(self, trainable_variables):
        if not self.use_ema:
            return
        t = ops.cast(self.iterations, "float32")
        momentum = ops.minimum(ops.cast(self.ema_momentum, "float32"), t / (t + 1.0))
        for var, average in zip(trainable_variables, self._model_variables_moving_average):
            if average is not None:
                m = ops.cast(momentum, var.dtype)
                average.assign(ops.add(ops.multiply(m, average), ops.multiply(ops.subtract(1, m), var)))


def make_optimizer(
    name: str,
    learning_rate: float,
    num_train_steps: int,
    num_warmup_steps: int,
    weight_decay: float = 0.01,
    clipnorm: float | None = 1.0,
    end_learning_rate: float = 0.0,
    power: float = 1.0,
    ema_momentum: float | None = None,
) -> keras.optimizers.Optimizer:
    """ALBERT's optimizer: ``"lamb"`` (:class:`AlbertLamb`) or ``"adamw"``.

    Both use :class:`PolynomialDecayWithWarmup` (peak `learning_rate`, decay
    over `num_train_steps`, warm-up `num_warmup_steps`), weight decay
    `weight_decay` (not applied to LayerNorm weights and biases), epsilon 1e-6,
    and ``global_clipnorm=clipnorm`` (global-norm clipping, as the original).
    `ema_momentum` (``"adamw"`` only) returns an :class:`AveragingAdamW`.

    ``"adamw"`` is ``keras.optimizers.AdamW``; unlike the original
    ``AdamWeightDecayOptimizer`` it bias-corrects Adam's moments (its decay
    ``w -= lr * wd * w`` is the same decoupled decay).
    """
    schedule = PolynomialDecayWithWarmup(
        peak_learning_rate=learning_rate,
        decay_steps=max(int(num_train_steps), 1),
        warmup_steps=int(num_warmup_steps or 0),
        end_learning_rate=end_learning_rate,
        power=power,
    )
    key = name.lower().strip()
    if ema_momentum and key != "adamw":
        raise ValueError("ema_momentum is only implemented for 'adamw'")
    if key == "lamb":
        return AlbertLamb(
            learning_rate=schedule,
            weight_decay_rate=weight_decay,
            beta_1=0.9,
            beta_2=0.999,
            epsilon=1e-6,
            exclude_from_weight_decay=list(DEFAULT_EXCLUDE_FROM_WEIGHT_DECAY),
            global_clipnorm=clipnorm,
        )
    if key == "adamw":
        ema = dict(use_ema=True, ema_momentum=float(ema_momentum)) if ema_momentum else {}
        opt = (AveragingAdamW if ema_momentum else keras.optimizers.AdamW)(
            learning_rate=schedule,
            weight_decay=weight_decay,
            beta_1=0.9,
            beta_2=0.999,
            epsilon=1e-6,
            global_clipnorm=clipnorm,
            **ema,
        )
        opt.exclude_from_weight_decay(var_names=list(ADAMW_EXCLUDE_VAR_NAMES))
        return opt
    raise ValueError(f"unknown optimizer {name!r}: expected 'lamb' or 'adamw'")
