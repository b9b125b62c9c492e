"""`albert finetune` end to end: options -> data -> tokenizer -> plan -> build -> (TAPT) -> the loop -> export.

The recipe follows the original ``run_classifier.py``: dropout, AdamW with linear warm-up and decay, global-norm
clipping 1.0; batches are grouped by length and padded to their own longest sequence.
"""

from __future__ import annotations

import time
from pathlib import Path

import keras
import numpy as np

from albert_cli._tf import apply_inference_precision, import_tf, inference_precision
from albert_cli.artifacts.checkset import write_check_texts
from albert_cli.artifacts.modeldir import ASSETS, ModelMeta, open_model_dir
from albert_cli.artifacts.savedmodel import export_model_dir
from albert_cli.console import info
from albert_cli.errors import Interrupted, ModelError, UsageError
from albert_cli.text.preprocessor import example_size, length_grouped_batches, pad_batch
from albert_cli.training.callbacks import Checkpointing, ProgressBar, TensorBoardScalars, Throughput
from albert_cli.training.finetune.build import build
from albert_cli.training.finetune.data import FinetuneData, read_data, sample_weights
from albert_cli.training.finetune.options import FinetuneOptions
from albert_cli.training.finetune.plan import CLIP_NORM, FinetunePlan, InitModel, make_plan
from albert_cli.training.finetune.selection import DevFigures, DevSelection, Evaluator, score_dev, swap_averages
from albert_cli.training.finetune.tapt import adapt
from albert_cli.training.finetune.tokenizer import prepare_tokenizer
from albert_cli.training.loop import Callback, StepEvent, Trainer
from albert_cli.training.objectives import INPUTS, finetune_objective
from albert_cli.training.rundir import RunDir
from albert_cli.training.runtime import TFRuntime
from albert_cli.training.state import BEST_WEIGHTS, TrainState, latest_checkpoint, restore_checkpoint
from albert_cli.training.tapt import check_unlabeled
from albert_cli.weights.loader import load_pretrained


class SmoothedLoss(Callback):
    """A running mean of the loss (momentum 0.9) for the progress text, the dev lines and the summary."""

    def __init__(self):
        self.value = float("nan")

    def on_step_end(self, event: StepEvent) -> None:
        loss = event.metrics["loss"]
        self.value = loss if np.isnan(self.value) else 0.9 * self.value + 0.1 * loss
        event.metrics["smoothed_loss"] = self.value


def _batches(plan: FinetunePlan, enc, y, w, start_epoch: int, skip: int):
    """(epoch, batch index, batch, examples) forever: each epoch a seeded, length-grouped order; with XLA every
    batch is padded to the full number of rows (weight 0) and lengths to multiples of 16 (fewer shapes)."""
    o = plan.options
    lengths = np.asarray([example_size(e) for e in enc])
    bucket, epoch = (16 if o.jit else 8), start_epoch
    while True:
        rng = np.random.default_rng([o.seed, epoch])
        for b, idx in enumerate(length_grouped_batches(lengths, o.batch_size, rng)):
            if epoch == start_epoch and b < skip:
                continue
            rows = o.batch_size if o.jit else len(idx)
            batch = pad_batch(enc, idx, bucket, rows)
            extra = rows - len(idx)
            yb, wb = y[idx], w[idx]
            if extra:
                yb = np.concatenate([yb, np.zeros((extra,) + yb.shape[1:], yb.dtype)])
                wb = np.concatenate([wb, np.zeros(extra, wb.dtype)])
            yield epoch, b, {**batch, "y": yb, "w": wb}, len(idx)
        epoch += 1


def _signature(tf, task: str, windowed: bool) -> dict:
    spec = {k: tf.TensorSpec([None] * (3 if windowed else 2), tf.int32) for k in INPUTS}
    spec["y"] = {"single_label": tf.TensorSpec([None], tf.int32), "multi_label": tf.TensorSpec([None, None], tf.float32),
                 "regression": tf.TensorSpec([None], tf.float32)}[task]
    spec["w"] = tf.TensorSpec([None], tf.float32)
    return spec


def _resume_state(o: FinetuneOptions, run_dir: RunDir, model, optimizer) -> TrainState:
    last = latest_checkpoint(run_dir.checkpoints) if o.resume else None
    if o.resume and last is None and not o.tapt_steps:
        raise UsageError(f"{run_dir.out}: nothing to resume (no checkpoint in {run_dir.checkpoints})")
    if last is None:
        if o.resume:  # interrupted during task-adaptive pretraining: fine-tuning starts now
            info("no fine-tuning checkpoint yet: fine-tuning from step 0")
        return TrainState()
    state = restore_checkpoint(run_dir.checkpoints, last, model, optimizer)
    info(f"resumed at step {state.step} (epoch {state.epoch + 1}, batch {state.batch_in_epoch})")
    return state


class _Session:
    """The built pieces of one run that the training, share and export steps share."""

    def __init__(self, plan: FinetunePlan, model, optimizer, data: FinetuneData, train_enc, dev_enc):
        self.plan, self.model, self.optimizer, self.data = plan, model, optimizer, data
        self.train_enc, self.dev_enc = train_enc, dev_enc
        self.y_train = data.targets(data.train)
        self.y_dev = data.targets(data.dev) if data.dev is not None else None
        o = plan.options
        self.evaluator = Evaluator(model, o.task, 16 if o.jit else 8, o.batch_size if o.jit else None, o.jit)


def _callbacks(s: _Session, run_dir: RunDir, smoothed: SmoothedLoss, state: TrainState) -> list[Callback]:
    plan, o = s.plan, s.plan.options
    seen = Throughput()

    def status(event: StepEvent) -> str:
        rate = seen.add(event.examples)
        h = event.state.history
        dev = f" dev {plan.metric} {h[-1][plan.metric]:.4f}" if h else ""
        return f"loss {smoothed.value:.4f}{dev} {rate:.0f} ex/s"

    scalars = TensorBoardScalars(run_dir.logs / "train", lambda e: {
        "loss": e.metrics["loss"], "learning_rate": float(s.optimizer.learning_rate)})
    callbacks = [smoothed, scalars]
    if s.dev_enc:
        callbacks.append(DevSelection(
            s.evaluator, s.dev_enc, s.y_dev, plan.metric, plan.lower_is_better, plan.eval_every, o.patience,
            plan.total_steps, run_dir.checkpoints / BEST_WEIGHTS, s.model, s.optimizer, scalars))
    # After the evaluation of the step, so the bar's dev figure is this step's (the last frame stays on screen).
    callbacks.append(ProgressBar("finetune", plan.total_steps, status))
    callbacks.append(Checkpointing(run_dir.checkpoints, s.model, s.optimizer, plan.save_every, keep=1))
    return callbacks


def _picked_on_dev(s: _Session) -> DevFigures:
    """ALBERT's ensemble share and the multi-label thresholds the saved model keeps, with its dev metrics: picked by
    `score_dev`, as at each evaluation, so the summary repeats the figure that chose the best step. Without dev: the
    model's own share (0.5 from scratch, an --init model's when its head is continued) and thresholds of 0.5."""
    model, plan, o = s.model, s.plan, s.plan.options
    if not s.dev_enc:
        share = None if model.members is None else round(float(np.asarray(model.get_layer("bow_mix").share)[0]), 4)
        return DevFigures({}, share, [0.5] * s.data.num_outputs if o.task == "multi_label" else None)
    figures = score_dev(s.evaluator, s.dev_enc, s.y_dev, plan.metric, plan.lower_is_better)
    if figures.share is not None:
        model.get_layer("bow_mix").share.assign([figures.share])
        info(f"ensemble: ALBERT's logits weigh {figures.share:.1f}, the bag of n-grams' {1 - figures.share:.1f} "
             "(picked on dev at every evaluation; the dev figures include it)")
    if figures.thresholds is not None:
        pairs = ", ".join(f"{name} {t:.2f}" for name, t in zip(s.data.labels.labels, figures.thresholds))
        info(f"thresholds tuned on dev (per label): {pairs}; every dev {plan.metric} above uses thresholds tuned "
             "this way")
    return figures


def _train(s: _Session, run_dir: RunDir) -> tuple[dict, list[float] | None]:
    """The loop, then the weights to keep in the model and the ensemble share; returns the run's figures and the
    multi-label thresholds."""
    plan, o = s.plan, s.plan.options
    tf = import_tf()
    runtime = TFRuntime("none", jit=o.jit)
    clip_groups = [v.path.startswith("bow/") for v in s.model.trainable_variables] if s.model.members else None
    s.optimizer = runtime.compile(s.model, s.optimizer, finetune_objective(o.task), _signature(tf, o.task, plan.windows is not None),
                                  clip_groups, CLIP_NORM)
    state = _resume_state(o, run_dir, s.model, s.optimizer)
    weights = sample_weights(s.y_train, o.task, o.class_weights, s.data.num_outputs)
    smoothed, started = SmoothedLoss(), time.time()
    trainer = Trainer(runtime, _callbacks(s, run_dir, smoothed, state), plan.total_steps)
    trainer.fit(_batches(plan, s.train_enc, s.y_train, weights, state.epoch, state.batch_in_epoch), state)
    if not s.dev_enc and s.optimizer.use_ema:  # no dev selection: keep the moving average
        swap_averages(s.model, s.optimizer)
    figures = _picked_on_dev(s)
    result = {"steps": state.step, "train_seconds": round(time.time() - started, 2),
              "train_loss": round(smoothed.value, 6), "best_step": state.best_step, "metric": plan.metric,
              "best_dev": state.best, "ensemble_share": figures.share}
    if s.dev_enc:
        result["dev_metrics"] = figures.metrics
    return result, figures.thresholds


def _training_record(plan: FinetunePlan, s: _Session, result: dict) -> dict:
    """``training`` in ``albert_cli.json``: the resolved plan and the run's figures (the sequence length is
    stored once, at the top level)."""
    o = plan.options
    record = dict(
        epochs=plan.epochs, learning_rate=plan.learning_rate, ema=plan.ema, bow=plan.bow, batch_size=o.batch_size,
        total_steps=plan.total_steps, warmup_steps=plan.warmup_steps, seed=o.seed, init=o.init,
        config=plan.config.to_dict(), train_examples=len(s.train_enc),
        dev_examples=len(s.dev_enc) if s.dev_enc else 0, weight_decay=o.weight_decay,
        class_weights=o.class_weights, tapt_steps=o.tapt_steps, unlabeled=list(o.unlabeled),
    )
    return {**record, **{k: v for k, v in result.items() if k != "dev_metrics"}}


def _export(s: _Session, run_dir: RunDir, choice, thresholds, result: dict) -> None:
    """Write the model directory into OUT.partial, then rename it to OUT (OUT is untouched until then)."""
    plan, o = s.plan, s.plan.options
    meta = ModelMeta(
        task=o.task, tokenizer=choice.spec, labels=s.data.labels.labels if s.data.labels else [],
        normalizer=choice.normalizer.to_dict(), max_seq_length=plan.max_seq_length, pooling=plan.pooling,
        windows=plan.windows.to_dict() if plan.windows else None,
        bow_buckets=s.model.bow_buckets, thresholds=thresholds, pair=o.text_pair_column is not None,
        columns={"text": o.text_column, "text_pair": o.text_pair_column, "label": o.label_column},
        training=_training_record(plan, s, result), metrics=result.get("dev_metrics") or {},
    )
    info("writing the model directory")
    tf = import_tf()
    try:
        export_model_dir(run_dir.staging, s.model, plan.config, choice.tokenizer, meta)
        kept = s.data.dev if s.data.dev is not None else s.data.train  # what `albert export` checks on
        write_check_texts(run_dir.staging / ASSETS, kept.texts, kept.pairs, seed=o.seed)
        run_dir.commit(keep_checkpoints=o.keep_checkpoints)
    except (OSError, tf.errors.OpError) as exc:  # full disk, quota...
        parts = [x.strip() for x in " ".join(str(exc).split()).split(";") if x.strip()]  # TF: "PATH; REASON"
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else (parts or [type(exc).__name__])[-1][:200]
        kept = "the previous model is unchanged; " if run_dir.out.exists() else ""
        raise ModelError(
            f"{run_dir.out}: cannot write the model ({reason}); {kept}"
            f"the last checkpoint is kept in {run_dir.staging.name}/ (free space, then --resume)"
        ) from None


def _load_init(o: FinetuneOptions) -> InitModel | None:
    if not o.init:
        return None
    weights = load_pretrained(o.init)
    meta = open_model_dir(o.init)[1] if weights.format == "albert_cli" else None
    return InitModel(weights, meta)


def _run(o: FinetuneOptions, run_dir: RunDir, data: FinetuneData) -> dict:
    tf = import_tf()
    keras.utils.set_random_seed(o.seed)
    if o.deterministic:
        tf.config.experimental.enable_op_determinism()
    # bf16: oneDNN's auto-mixed-precision rewrite of the graphs run from now on; the SavedModel stays float32.
    apply_inference_precision(inference_precision(o.precision))
    init = _load_init(o)
    choice = prepare_tokenizer(o, init.weights if init else None, run_dir.staging / "assets",
                               list(data.train.texts) + list(data.train.pairs or []))
    plan = make_plan(o, init, data, choice)
    built = build(plan, init, choice.tokenizer, data.labels.labels if data.labels else [])
    t0 = time.time()
    train_enc = built.preprocessor.encode(data.train.texts, data.train.pairs)
    dev_enc = built.preprocessor.encode(data.dev.texts, data.dev.pairs) if data.dev is not None else None
    info(f"{len(train_enc)} training examples" + (f", {len(dev_enc)} dev" if dev_enc else "")
         + f"; max sequence length {plan.max_seq_length}" + (" (windows)" if plan.windows else "")
         + f" (encoded in {time.time() - t0:.1f}s)")
    tapt_figures = None
    if o.tapt_steps:
        tapt_figures = adapt(plan, init, built.model, choice, data, train_enc, run_dir.staging, run_dir.out)
    s = _Session(plan, built.model, built.optimizer, data, train_enc, dev_enc)
    result, thresholds = _train(s, run_dir)
    result["tapt_steps"] = o.tapt_steps
    if tapt_figures is not None:
        result["tapt"] = tapt_figures
    _export(s, run_dir, choice, thresholds, result)
    return result


def run_finetune(o: FinetuneOptions) -> dict:
    """Check the output, read the data, then train in OUT.partial and rename it to OUT; returns the figures."""
    o.validate()
    run_dir = RunDir(Path(o.output), o.overwrite, o.resume)
    run_dir.check()
    data = read_data(o)  # bad data fails here, before TensorFlow loads and before anything is written
    if o.tapt_steps and o.unlabeled:
        check_unlabeled(o.unlabeled, o.text_column)
    run_dir.open()
    try:
        return _run(o, run_dir, data)
    except Interrupted:
        raise
    except BaseException:
        run_dir.discard_if_empty()
        raise
