"""Dev evaluation during fine-tuning: metrics, the best weights, early stopping, the moving average, and what is
picked on dev (ALBERT's share of the ensemble, multi-label thresholds).

Every dev figure (the step lines, ``dev/*`` scalars, ``best_dev``, the summary) is `score_dev`'s: the share and
the thresholds are picked on dev at each evaluation, so the best step is chosen on the figure the saved model has.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np

from albert_cli._tf import import_tf
from albert_cli.console import err_console, info
from albert_cli.metrics import (
    MULTI_LABEL_SCORES,
    SINGLE_LABEL_SCORES,
    classification_metrics,
    classification_score,
    multilabel_metrics,
    multilabel_score,
    regression_metrics,
)
from albert_cli.model.heads import logits_to_probabilities
from albert_cli.text.preprocessor import example_size, pad_batch, run_length_grouped
from albert_cli.training.loop import Callback, StepEvent
from albert_cli.training.state import TrainState, load_weights, save_weights


def dev_metrics(task: str, y_true, outputs, thresholds=None) -> dict:
    """Dev metrics: `outputs` are probabilities (classification) or values (regression)."""
    if task == "single_label":
        return classification_metrics(y_true, outputs.argmax(-1), num_labels=outputs.shape[-1])
    if task == "multi_label":
        t = np.asarray(thresholds if thresholds is not None else [0.5] * outputs.shape[-1])
        return multilabel_metrics(y_true, (outputs >= t).astype(np.int32))
    return regression_metrics(y_true, outputs)


def dev_score(task: str, metric: str, y_true, outputs, thresholds=None) -> float:
    """``dev_metrics(...)[metric]``, computing only that figure where it can (the share search rates 11 mixes)."""
    if task == "single_label" and metric in SINGLE_LABEL_SCORES:
        return classification_score(metric, y_true, outputs.argmax(-1), num_labels=outputs.shape[-1])
    if task == "multi_label" and metric in MULTI_LABEL_SCORES:
        t = np.asarray(thresholds if thresholds is not None else [0.5] * outputs.shape[-1])
        return multilabel_score(metric, y_true, (outputs >= t).astype(np.int32))
    return dev_metrics(task, y_true, outputs, thresholds)[metric]


def mix(members: np.ndarray, share: float) -> np.ndarray:
    """The ensemble's logits for ALBERT's `share` (a float, so the float32 logits stay float32 as in the model)."""
    return share * members[:, 0] + (1.0 - share) * members[:, 1]


def pick_share(members: np.ndarray, score, lower_is_better: bool = False) -> float:
    """ALBERT's share of the ensemble's logits: the best of 0, 0.1, ..., 1 by `score`.

    `members` [N, 2, outputs] holds ALBERT's and the bag's logits; `score(logits)` rates a mix (higher is better
    unless `lower_is_better`). Ties go to the share nearest 0.5, the even mix the model starts with.
    """
    best, best_share = None, 0.5
    for share in sorted(np.round(np.linspace(0.0, 1.0, 11), 1), key=lambda s: (abs(s - 0.5), s)):
        value = score(mix(members, float(share)))
        if best is None or (value < best if lower_is_better else value > best):
            best, best_share = value, float(share)
    return best_share


THRESHOLD_GRID = np.round(np.arange(0.05, 0.96, 0.05), 2)


def tune_thresholds(y_true: np.ndarray, probs: np.ndarray) -> list[float]:
    """Per-label threshold maximising that label's F1 on dev (0.5 where a label never occurs); the lowest
    threshold wins a tie.

    Vectorised over the labels, since it runs at every dev evaluation; F1 = 2TP / (true + predicted), the same
    figure as scikit-learn's `f1_score`.
    """
    y = np.asarray(y_true).astype(bool)
    probs = np.asarray(probs)
    f1 = np.zeros((len(THRESHOLD_GRID), probs.shape[1]))
    for i, t in enumerate(THRESHOLD_GRID):
        predicted = probs >= t
        denominator = y.sum(0) + predicted.sum(0)
        f1[i] = np.where(denominator > 0, 2.0 * (predicted & y).sum(0) / np.maximum(denominator, 1), 0.0)
    best = THRESHOLD_GRID[f1.argmax(0)]
    return [float(t) if y[:, j].any() else 0.5 for j, t in enumerate(best)]


class Evaluator:
    """Compiled prediction over encoded examples (probabilities, or each member's logits).

    Args:
        model: the classifier.
        task: single_label, multi_label or regression.
        bucket: pad lengths to a multiple of this.
        rows: with XLA, pad every batch to this many rows (one shape per length bucket).
        jit: XLA-compile.
    """

    def __init__(self, model, task: str, bucket: int, rows: int | None, jit: bool):
        tf = import_tf()
        self.bucket, self.rows, self.task = bucket, rows, task
        rank = 3 if getattr(model, "window_pooling", None) else 2  # [B, W, L] windows, or [B, T]
        spec = {k: tf.TensorSpec([None] * rank, tf.int32) for k in ("token_ids", "segment_ids", "padding_mask")}
        def probabilities(inputs):
            out = logits_to_probabilities(tf.cast(model(inputs, training=False), tf.float32), task)
            return tf.squeeze(out, -1) if task == "regression" else out

        self.probabilities = tf.function(probabilities, input_signature=[spec], jit_compile=jit)
        self.members = None
        if model.members is not None:
            self.members = tf.function(
                lambda inputs: tf.stack([tf.cast(m, tf.float32) for m in model.members(inputs, training=False)], 1),
                input_signature=[spec], jit_compile=jit,
            )

    def predict(self, enc, step=None, batch_size: int = 64) -> np.ndarray:
        """`step` (default: the probabilities) over encoded examples, in their order."""
        step = step or self.probabilities

        def run_batch(idx):  # with XLA the batch has padding rows past len(idx)
            return {"out": np.asarray(step(pad_batch(enc, idx, self.bucket, self.rows)))[: len(idx)]}

        return run_length_grouped([example_size(e) for e in enc], batch_size, run_batch)["out"]


@dataclass
class DevFigures:
    """The dev metrics of the weights in the model as they would be saved: with ALBERT's share of the ensemble
    (None without the bag of n-grams) and the multi-label thresholds (None for other tasks) picked on dev."""

    metrics: dict
    share: float | None = None
    thresholds: list[float] | None = None


def _thresholds(task: str, y_true, probs: np.ndarray) -> list[float] | None:
    return tune_thresholds(y_true, probs) if task == "multi_label" else None


def _probabilities(logits: np.ndarray, task: str) -> np.ndarray:
    return np.asarray(logits_to_probabilities(logits[:, 0] if task == "regression" else logits, task))


def score_dev(evaluator: Evaluator, dev_enc, y_dev, metric: str, lower_is_better: bool) -> DevFigures:
    """Dev figures of the weights now in the model, as `albert evaluate` would give them once saved: the share and
    thresholds are picked first. Selection and the final summary both use it, so they report one figure."""
    task, share = evaluator.task, None
    if evaluator.members is None:
        probs = evaluator.predict(dev_enc)
    else:
        members = evaluator.predict(dev_enc, step=evaluator.members)

        def score(logits):
            p = _probabilities(logits, task)
            return dev_score(task, metric, y_dev, p, _thresholds(task, y_dev, p))

        share = pick_share(members, score, lower_is_better)
        probs = _probabilities(mix(members, share), task)
    thresholds = _thresholds(task, y_dev, probs)
    return DevFigures(dev_metrics(task, y_dev, probs, thresholds), share, thresholds)


def swap_averages(model, optimizer) -> None:
    """Exchange the weights with the optimizer's moving averages (--ema); twice restores them."""
    for var, avg in zip(model.trainable_variables, optimizer.moving_averages(model.trainable_variables)):
        if avg is None:
            continue
        current = np.asarray(var)
        var.assign(avg)
        avg.assign(current)


@contextlib.contextmanager
def averaged(model, optimizer):
    """The moving averages in the model for the duration (a no-op without --ema)."""
    if not optimizer.use_ema:
        yield
        return
    swap_averages(model, optimizer)
    try:
        yield
    finally:
        swap_averages(model, optimizer)


class DevSelection(Callback):
    """Evaluates on dev every `every` steps and at the end (`score_dev`: share and thresholds picked on dev): keeps
    the best weights (of the moving average with --ema), stops after `patience` evaluations without improvement,
    writes ``dev/*`` scalars.

    Args:
        evaluator: prediction on the dev examples.
        dev_enc, y_dev: the encoded dev examples and their targets.
        metric, lower_is_better: what picks the best step.
        every, patience, total_steps: when to evaluate and stop.
        best_path: where the best weights go (``checkpoints/best.safetensors``).
        model, optimizer: the model whose weights are kept; the optimizer holding the averages.
        scalars: a `TensorBoardScalars` for the dev metrics (or None).
    """

    def __init__(self, evaluator: Evaluator, dev_enc, y_dev, metric: str, lower_is_better: bool, every: int,
                 patience: int | None, total_steps: int, best_path, model, optimizer, scalars=None):
        self.evaluator, self.dev_enc, self.y_dev = evaluator, dev_enc, y_dev
        self.metric, self.lower_is_better = metric, lower_is_better
        self.every, self.patience, self.total_steps = every, patience, total_steps
        self.best_path, self.model, self.optimizer, self.scalars = best_path, model, optimizer, scalars

    def evaluate(self) -> dict:
        return score_dev(self.evaluator, self.dev_enc, self.y_dev, self.metric, self.lower_is_better).metrics

    def _better(self, value, best) -> bool:
        return best is None or (value < best if self.lower_is_better else value > best)

    def on_step_end(self, event: StepEvent) -> None:
        state = event.state
        if state.step % self.every and not event.at_end:
            return
        with averaged(self.model, self.optimizer):  # the model that would be kept
            metrics = self.evaluate()
            value = metrics[self.metric]
            improved = self._better(value, state.best)
            if improved:
                save_weights(self.best_path, self.model)
        state.history.append({"step": state.step, **metrics})
        if self.scalars is not None:
            self.scalars.write(state.step, {f"dev/{k}": v for k, v in metrics.items()})
        if improved:
            state.best, state.best_step, state.bad_evals = value, state.step, 0
        else:
            state.bad_evals += 1
        err_console.print(
            f"step {state.step}/{self.total_steps}  loss {event.metrics['smoothed_loss']:.4f}  dev {self.metric} "
            f"{value:.4f}" + ("  (best)" if improved else f"  (best {state.best:.4f} at step {state.best_step})"),
            highlight=False,
        )
        if self.patience and state.bad_evals >= self.patience:
            info(f"early stopping: no improvement in {self.patience} evaluations")
            state.stop_reason = "patience"

    def on_train_end(self, state: TrainState) -> None:
        """Leave the weights to keep in the model: the best on dev, else the moving average, else the last."""
        if state.best_step is not None:
            load_weights(self.best_path, self.model)
        elif self.optimizer.use_ema:
            swap_averages(self.model, self.optimizer)
