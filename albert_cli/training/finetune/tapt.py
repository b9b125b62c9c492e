"""`--tapt-steps`: adapt the backbone being fine-tuned with ALBERT's pretraining objective first (see
`albert_cli.training.tapt`). Everything is handed over in memory; ``OUT.partial/tapt/`` keeps the result so that
`--resume` can skip it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from albert_cli.artifacts.modeldir import ASSETS, atomic_write_text
from albert_cli.console import info, warn
from albert_cli.data.pretraining import iter_documents, vocab_from_sentencepiece
from albert_cli.errors import DataError, UsageError
from albert_cli.model.backbone import AlbertBackbone
from albert_cli.model.heads import AlbertPretrainer
from albert_cli.model.optimizers import make_optimizer
from albert_cli.text.constants import SPIECE_MODEL
from albert_cli.training import tapt
from albert_cli.training.finetune.plan import FinetunePlan, InitModel
from albert_cli.training.objectives import pretraining_objective
from albert_cli.training.pretrain.loop import PretrainRun, train
from albert_cli.training.pretrain.options import META_FILE, PretrainOptions, default_learning_rate
from albert_cli.training.pretrain.run import make_stream
from albert_cli.training.runtime import TFRuntime
from albert_cli.training.state import latest_checkpoint
from albert_cli.weights import save_hf_dir
from albert_cli.weights.loader import apply_to, load_pretrained


def _copy_backbone(source, target) -> None:
    """Every backbone weight, matched by path (a mean-pooled classifier freezes its unused pooler, so the trainable
    lists differ); dropout seed states are not weights and stay the target's own, so a resumed run matches."""
    by_path = {v.path: v for v in target.weights}
    for variable in source.weights:
        by_path[variable.path].assign(variable)


def _options(plan: FinetunePlan, out: Path, documents: int, lr: float, resume: bool) -> PretrainOptions:
    o = plan.options
    steps = o.tapt_steps
    return PretrainOptions(
        corpus=[f"{o.train} (task texts)"], output=str(out), tokenizer=SPIECE_MODEL, init=o.init or "scratch",
        format="txt", max_seq_length=plan.max_seq_length,
        max_predictions_per_seq=tapt.max_predictions(plan.max_seq_length), batch_size=max(1, min(o.batch_size,
        documents)), learning_rate=lr, max_steps=steps, save_every=max(50, min(1000, steps // 5)),
        keep_checkpoints=1, log_every=10, resume=resume, overwrite=not resume, seed=o.seed, optimizer="lamb",
        strategy="one-device", deterministic=o.deterministic, jit=o.jit, shuffle_buffer=tapt.SHUFFLE_BUFFER,
        vary_instances_per_epoch=True,
    )


def _learning_rate(plan: FinetunePlan) -> float:
    o = plan.options
    if o.tapt_learning_rate is not None:
        return o.tapt_learning_rate
    return tapt.SCRATCH_LEARNING_RATE if plan.scratch else default_learning_rate(o.batch_size)


def _pretrain(plan: FinetunePlan, init: InitModel | None, model, tokenizer, spm_path: Path, data, out: Path) -> dict:
    """Run TAPT on a copy of `model`'s backbone, copy the adapted weights back, write `out`; returns the figures."""
    o = plan.options
    lines, documents = tapt.corpus_lines(
        tapt.task_documents(data.train.texts, data.train.pairs, list(o.unlabeled), o.text_column, o.seed))
    if documents == 0:
        raise DataError(f"{data.train.name}: no text for task-adaptive pretraining")
    lr = _learning_rate(plan)
    resume = o.resume and latest_checkpoint(out / "checkpoints") is not None
    po = _options(plan, out, documents, lr, resume)
    po.validate()
    info(f"task-adaptive pretraining: {o.tapt_steps} steps of masked LM + sentence order on {documents} documents "
         f"(batch {po.batch_size}, sequence length {plan.max_seq_length}, LAMB {lr:.3g})")
    runtime = TFRuntime("one-device", jit=o.jit)
    runtime.seed(o.seed, o.deterministic)
    pretrainer = AlbertPretrainer(AlbertBackbone(plan.config))
    if init is not None:
        apply_to(pretrainer, init.weights)  # the checkpoint itself: its MLM/SOP heads too, when it has them
    else:  # exactly the backbone fine-tuning starts from
        _copy_backbone(model.backbone, pretrainer.backbone)
    optimizer = make_optimizer("lamb", lr, po.max_steps, int(0.025 * po.max_steps), weight_decay=po.weight_decay,
                               clipnorm=1.0)
    optimizer = runtime.compile(pretrainer, optimizer, pretraining_objective)
    stream = make_stream(po, tokenizer, vocab_from_sentencepiece(spm_path),
                         lambda: iter_documents(lines, tokenizer.encode))
    run = PretrainRun(po, runtime, pretrainer, optimizer, stream, logs=out / "logs", checkpoints=out / "checkpoints",
                      resume_from=out / "checkpoints" if resume else None, label="tapt")
    info(f"pretraining {runtime.name}/{runtime.strategy_name}: batch {po.batch_size}, seq {po.max_seq_length}")
    result = train(run, po.max_steps, out)
    _copy_backbone(pretrainer.backbone, model.backbone)
    save_hf_dir(pretrainer, out, config=plan.config)
    meta = {"format": "albert-cli-pretrain", "format_version": 1, **result, "options": po.to_dict(),
            "learning_rate": lr}
    atomic_write_text(out / META_FILE, json.dumps(meta, indent=1, default=str))
    figures = tapt.figures({**result, "documents": documents, "learning_rate": lr, "batch_size": po.batch_size,
                            "max_seq_length": plan.max_seq_length})
    tapt.cleanup(out)
    atomic_write_text(out / tapt.FIGURES_FILE, json.dumps(figures, indent=1))
    return figures


def _report(figures: dict, train_enc, tokenizer) -> dict:
    """Add the unigram entropy and say whether the masked LM learned more than word frequencies."""
    special = {tokenizer.cls_id, tokenizer.sep_id, 0}
    figures["unigram_entropy"] = tapt.unigram_entropy((e[0] for e in train_enc), special)
    mlm = figures.get("final_mlm_loss")
    if mlm is None:
        return figures
    info(
        f"task-adaptive pretraining: MLM loss {mlm:.3f} (accuracy {figures['final_mlm_accuracy']:.3f}; "
        f"word frequencies alone: {figures['unigram_entropy']:.3f}), SOP loss "
        f"{figures['final_sop_loss']:.3f} (accuracy {figures['final_sop_accuracy']:.3f}) over its last steps"
    )
    if mlm > figures["unigram_entropy"] - tapt.CONTEXT_MARGIN:
        warn(
            f"the masked LM ended at loss {mlm:.2f}, not below {figures['unigram_entropy']:.2f} (guessing "
            "from word frequencies alone): it has not learned from context yet, and fine-tuning from this "
            "state can be worse than without --tapt-steps (see bench/README.md); give it more --tapt-steps, "
            "or --init a pretrained model"
        )
    return figures


def adapt(plan: FinetunePlan, init: InitModel | None, model, choice, data, train_enc, staging: Path,
          out: Path) -> dict:
    """Task-adaptive pretraining of `model`'s backbone; returns its figures.

    `--resume` skips it when its result (``OUT.partial/tapt/``) exists or fine-tuning has already saved a
    checkpoint (whose weights replace the model's anyway), and continues it from its own checkpoint when it was
    interrupted.
    """
    o = plan.options
    done = staging / tapt.TAPT_DIR
    if o.resume and not done.is_dir() and (out / tapt.TAPT_DIR).is_dir():
        shutil.copytree(out / tapt.TAPT_DIR, done)  # resuming a finished model: keep its TAPT result
    if o.resume and latest_checkpoint(staging / "checkpoints") is not None:
        info("resuming from a fine-tuning checkpoint: task-adaptive pretraining is not run again")
        tapt.cleanup(done)
        return tapt.read_figures(done)
    if not choice.is_sentencepiece:
        raise UsageError(f"--tapt-steps needs a SentencePiece vocabulary; {o.init} has a WordPiece vocab.txt")
    figures = tapt.read_figures(done) if o.resume else None
    if figures is not None:
        info(f"task-adaptive pretraining already done ({done.name}/): skipping it")
        apply_to(model, load_pretrained(done), heads=())  # the backbone; the classifier head stays as it was
    else:
        figures = _pretrain(plan, init, model, choice.tokenizer, staging / ASSETS / SPIECE_MODEL, data, done)
    return _report(figures, train_enc, choice.tokenizer)
