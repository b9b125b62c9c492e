"""`albert pretrain`: check inputs, start the runtime, build tokenizer, stream, model and optimizer, run the one
loop (`albert_cli.training.pretrain.loop.train`), write the Hugging Face directory (and a Google checkpoint).

Data position on resume: a checkpoint records the epoch and the batches of it already trained; resuming
regenerates that epoch (same seed, same masks) and skips them. With several workers each keeps its own position
in its own shard, so the chief's checkpoint only needs the global step: every worker replays its shard up to it.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import keras

from albert_cli.artifacts.modeldir import atomic_write_text
from albert_cli.console import info, warn
from albert_cli.data.pretraining import PretrainingStream, iter_documents, vocab_from_sentencepiece
from albert_cli.errors import DataError, Interrupted, ModelError, UsageError
from albert_cli.model.backbone import AlbertBackbone
from albert_cli.model.config import AlbertConfig
from albert_cli.model.heads import AlbertPretrainer
from albert_cli.model.optimizers import make_optimizer
from albert_cli.text.constants import HF_TOKENIZER_CONFIG, SPIECE_MODEL
from albert_cli.text.preprocessor import check_sequence_length
from albert_cli.text.spm import SentencePieceTokenizer, sidecar_path
from albert_cli.training.distribute import cluster_role, planned_strategy, tf_config
from albert_cli.training.objectives import pretraining_objective
from albert_cli.training.pretrain.corpus import check_corpus_file, iter_corpus_lines
from albert_cli.training.pretrain.loop import PretrainRun, train
from albert_cli.training.pretrain.options import (
    DEFAULT_CONFIG,
    META_FILE,
    PRECISIONS,
    PretrainOptions,
    default_learning_rate,
)
from albert_cli.training.rundir import RunDir
from albert_cli.training.runtime import backend_name, make_runtime
from albert_cli.weights import save_google_checkpoint, save_hf_dir
from albert_cli.weights.loader import apply_to, load_pretrained


def make_stream(o: PretrainOptions, tokenizer, vocab, documents, shard_index: int = 0, num_shards: int = 1):
    """The example stream over `documents` (a callable returning an iterable of documents)."""
    return PretrainingStream(
        documents, vocab, max_seq_length=o.max_seq_length, max_predictions_per_seq=o.max_predictions_per_seq,
        seed=o.seed, masked_lm_prob=o.masked_lm_prob, short_seq_prob=o.short_seq_prob,
        shard_index=shard_index, num_shards=num_shards, shuffle_buffer_size=o.shuffle_buffer,
        vary_instances_per_epoch=o.vary_instances_per_epoch,
    )


def corpus_documents(o: PretrainOptions, tokenizer):
    """The corpus files' documents, re-readable for every epoch."""
    return lambda: iter_documents(iter_corpus_lines(o.corpus, o.format, o.text_column, o.doc_column),
                                  tokenizer.encode)


def step_budget(o: PretrainOptions, count_examples) -> tuple[int | None, int, int]:
    """(steps to run or None = until --max-time, LR decay steps, warm-up steps)."""
    total = o.max_steps
    epochs = o.epochs if o.epochs is not None else (None if (o.max_steps or o.max_time_seconds) else 1.0)
    if epochs is not None:
        info("counting the examples of one epoch (one pass over the corpus)")
        examples = count_examples()
        per_epoch = examples // o.batch_size
        if per_epoch == 0:
            raise DataError(
                f"{o.corpus[0]}: the corpus gives {examples} examples, fewer than --batch-size {o.batch_size}"
            )
        by_epochs = max(1, int(round(per_epoch * epochs)))
        total = min(total, by_epochs) if total else by_epochs
        info(f"{examples} examples per epoch, {per_epoch} steps per epoch")
    decay = o.decay_steps or total or 10**9  # --max-time only: constant rate after warm-up
    warmup = o.warmup_steps if o.warmup_steps is not None else (int(0.025 * total) if total else 1000)
    return total, decay, warmup


def pretraining_config(o: PretrainOptions, pretrained, vocab_size: int) -> AlbertConfig:
    """The --init checkpoint's shape, or --config (default `small`) with the tokenizer's vocabulary."""
    if pretrained is not None:
        config = pretrained.config
    else:
        config = AlbertConfig.resolve(o.config or DEFAULT_CONFIG)
        config.vocab_size = vocab_size
    config.validate()
    if vocab_size > config.vocab_size:
        raise ModelError(f"{o.init}: tokenizer has {vocab_size} pieces but the model only {config.vocab_size}")
    check_sequence_length(o.max_seq_length, config.max_position_embeddings)
    return config


def setup_tokenizer(o: PretrainOptions, pretrained, staging: Path):
    """Copy the SentencePiece model (+ its PREFIX.json normalizer) into the output; returns (tokenizer, vocab)."""
    target = staging / SPIECE_MODEL
    source = Path(o.tokenizer) if o.tokenizer else None
    if source is None and pretrained is not None:
        tok = pretrained.tokenizer
        if tok is None or tok.kind != "sentencepiece":
            raise ModelError(f"{o.init}: no SentencePiece model (spiece.model); give --tokenizer")
        source = Path(tok.path)
    if source is not None:
        SentencePieceTokenizer.from_file(source)  # clean error for a missing / bad file
        if not (target.exists() and target.samefile(source)):
            shutil.copyfile(source, target)
        side = sidecar_path(source)
        if side.is_file():
            shutil.copyfile(side, sidecar_path(target))
    try:
        return SentencePieceTokenizer.from_file(target), vocab_from_sentencepiece(target)
    except ValueError as exc:
        raise ModelError(f"{source or target}: {exc}") from None


def build_pretrainer(o: PretrainOptions, runtime, config: AlbertConfig, pretrained, lr: float, decay: int,
                     warmup: int):
    """The `AlbertPretrainer` (with whatever the checkpoint has) and its compiled optimizer, on `runtime`."""
    if o.precision == "fp16":
        warn("--precision fp16 on CPU is emulated and usually slower than fp32; it is meant for GPUs")
    keras.config.set_dtype_policy(PRECISIONS[o.precision])
    with runtime.scope():
        model = AlbertPretrainer(AlbertBackbone(config))
        if pretrained is not None:
            apply_to(model, pretrained)  # backbone + whichever of mlm/sop the source has
        optimizer = make_optimizer(o.optimizer, lr, decay, warmup, weight_decay=o.weight_decay, clipnorm=1.0)
        optimizer = runtime.compile(model, optimizer, pretraining_objective)
    return model, optimizer


def check_backend(o: PretrainOptions) -> None:
    """Options the JAX backend cannot honour (one device, no TensorFlow checkpoint, no fp16)."""
    if backend_name() != "jax":
        return
    if o.strategy not in ("auto", "one-device"):
        raise UsageError(f"--strategy {o.strategy} needs the TensorFlow backend (unset KERAS_BACKEND=jax)")
    if o.export_google:
        raise UsageError("--export-google writes a TensorFlow checkpoint; it needs the TensorFlow backend")
    if o.precision == "fp16":
        raise UsageError("--precision fp16 is not supported on the JAX backend (use bf16 or fp32)")
    if o.jit:
        warn("--jit: the JAX path always compiles the train step")
    if o.deterministic:
        warn("--deterministic: JAX on CPU is deterministic already")


def export(o: PretrainOptions, staging: Path, model, config: AlbertConfig, tokenizer, meta: dict) -> None:
    """Write the HF directory (+ Google checkpoint) and ``albert_pretrain.json`` into `staging`."""
    info("writing the model directory")
    save_hf_dir(model, staging, config=config)
    n = tokenizer.normalizer
    atomic_write_text(
        staging / HF_TOKENIZER_CONFIG,
        json.dumps({"tokenizer_class": "AlbertTokenizer", "do_lower_case": n.lowercase,
                    "keep_accents": not n.strip_accents, "remove_space": True,
                    "model_max_length": config.max_position_embeddings}, indent=1),
    )
    if o.export_google:
        google = staging / "google"
        prefix = save_google_checkpoint(model, google, config=config)
        # TF's `checkpoint` index holds absolute paths (into OUT.partial): make them relative.
        (google / "checkpoint").write_text(
            f'model_checkpoint_path: "{prefix.name}"\nall_model_checkpoint_paths: "{prefix.name}"\n'
        )
        shutil.copyfile(staging / SPIECE_MODEL, google / SPIECE_MODEL)
    atomic_write_text(staging / META_FILE, json.dumps(meta, indent=1, default=str))


def _pretrain(o: PretrainOptions, run_dir: RunDir) -> dict:
    check_backend(o)
    runtime = make_runtime(o.strategy, jit=o.jit, fp16=o.precision == "fp16", command="pretrain")
    if o.batch_size % runtime.num_replicas:
        raise UsageError(f"--batch-size {o.batch_size} must be a multiple of the {runtime.num_replicas} replicas")
    runtime.seed(o.seed, o.deterministic)
    pretrained = load_pretrained(o.init) if o.init else None
    tokenizer, vocab = setup_tokenizer(o, pretrained, run_dir.staging)
    config = pretraining_config(o, pretrained, tokenizer.vocab_size)
    documents = corpus_documents(o, tokenizer)
    total, decay, warmup = step_budget(
        o, lambda: sum(1 for _ in make_stream(o, tokenizer, vocab, documents).examples(0)))
    lr = o.learning_rate or default_learning_rate(o.batch_size, o.optimizer)
    model, optimizer = build_pretrainer(o, runtime, config, pretrained, lr, decay, warmup)
    info(
        f"pretraining {runtime.name}/{runtime.strategy_name}: batch {o.batch_size}, seq {o.max_seq_length}, "
        f"lr {lr:.3g} ({o.optimizer}), warm-up {warmup}, " + (f"{total} steps" if total else f"until {o.max_time}")
    )
    chief = runtime.is_chief
    run = PretrainRun(
        options=o, runtime=runtime, model=model, optimizer=optimizer,
        stream=make_stream(o, tokenizer, vocab, documents, runtime.worker_index, runtime.num_workers),
        logs=run_dir.logs if chief else None, checkpoints=run_dir.checkpoints if chief else None,
        resume_from=run_dir.resume_checkpoints if o.resume else None,
    )
    result = train(run, total, run_dir.out)
    settings = dict(learning_rate=lr, warmup_steps=warmup, decay_steps=decay, total_steps=total,
                    config=config.to_dict(), backend=runtime.name, strategy=runtime.strategy_name,
                    workers=runtime.num_workers, replicas=runtime.num_replicas, vocab_size=tokenizer.vocab_size)
    if chief:
        meta = {"format": "albert-cli-pretrain", "format_version": 1, **result, "options": o.to_dict(), **settings}
        export(o, run_dir.staging, model, config, tokenizer, meta)
    run_dir.commit(keep_checkpoints=True)  # pretraining keeps --keep-checkpoints of them: they continue it
    return {"output": str(run_dir.out), **result, "backend": runtime.name, "workers": runtime.num_workers,
            "worker_index": runtime.worker_index, "is_chief": chief}


def run_pretrain(o: PretrainOptions) -> dict:
    """Pretrain as `o` says; returns the summary the command prints."""
    o.validate()
    for path in o.corpus:  # fail fast, before TensorFlow/JAX start
        check_corpus_file(path)
    if o.tokenizer:
        SentencePieceTokenizer.from_file(o.tokenizer)
    multi = backend_name() == "tensorflow" and planned_strategy(o.strategy) == "multi-worker"
    _, index, chief = cluster_role(tf_config()) if multi else (1, 0, True)
    run_dir = RunDir(Path(o.output), o.overwrite, o.resume, worker=None if chief else index)
    if chief:
        run_dir.check()
    run_dir.open()
    try:
        result = _pretrain(o, run_dir)
    except Interrupted:
        raise
    except BaseException:  # bad data, bad options, full disk...: keep OUT.partial only if it can be resumed
        run_dir.discard_if_empty()
        raise
    if backend_name() == "jax" and "tensorflow" in sys.modules:
        warn("tensorflow was imported on the JAX path")
    return result
