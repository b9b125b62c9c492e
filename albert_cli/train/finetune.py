"""`albert finetune`: train a classifier (or regressor) and write a model directory.

The recipe follows the original ``run_classifier.py``: tanh pooler (from scratch:
the mean of the token vectors), dropout, AdamW with linear warm-up and decay,
global-norm clipping 1.0; from scratch, dev selection and the saved model use a
moving average of the weights (``--ema``). Batches are grouped by length and
padded to their own longest sequence.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from albert_cli.console import err_console, info, warn
from albert_cli.errors import DataError, Interrupted, ModelError, UsageError, deferred_interrupts

DEFAULT_VOCAB_SIZE = 8000
SCRATCH_MAX_STEPS = 1500  # default step budget from scratch when --epochs is not given
SCRATCH_MAX_SEQ_LENGTH = 128  # default length cap from scratch (--max-seq-length overrides)
CLIP_NORM = 1.0  # global-norm gradient clipping, as the original run_classifier.py (per member with the bag)
SCRATCH_EMA = 0.995  # default --ema from scratch: dev selection and the saved model use the weights' moving average
TASKS = ("single_label", "multi_label", "regression")
POOLINGS = ("pooler", "mean")  # as albert_cli.model.heads.POOLINGS (not imported here: it imports keras)
METRICS = ("accuracy", "macro_f1", "micro_f1", "loss", "mse", "pearson")
# From scratch (no --init): a small ALBERT that trains in minutes on two cores.
SCRATCH_CONFIG = dict(
    embedding_size=128,
    hidden_size=256,
    num_hidden_layers=4,
    num_hidden_groups=1,
    inner_group_num=1,
    num_attention_heads=4,
    intermediate_size=1024,
    hidden_dropout_prob=0.1,
    attention_probs_dropout_prob=0.1,
    max_position_embeddings=512,
)


@dataclass
class FinetuneOptions:
    train: str
    output: str
    dev: str | None = None
    dev_split: float | None = None
    init: str | None = None
    config: str | None = None  # preset name or JSON file, only without --init
    tokenizer: str | None = None  # a SentencePiece model to use instead of training one, only without --init
    task: str = "single_label"
    format: str | None = None
    text_column: str = "text"
    text_pair_column: str | None = None
    label_column: str = "label"
    epochs: float | None = None
    batch_size: int = 32
    learning_rate: float | None = None
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    dropout: float | None = None
    pooling: str | None = None  # pooler | mean; None: mean from scratch, the --init model's own (else pooler)
    bow: bool | None = None  # bag-of-n-grams member; None: on from scratch, the --init model's own (else off)
    max_seq_length: int | None = None
    vocab_size: int | None = None  # None: DEFAULT_VOCAB_SIZE, shrunk to what small data supports
    seed: int = 42
    eval_every: int | None = None
    patience: int | None = None
    metric: str | None = None
    class_weights: str | None = None  # None | "balanced"
    save_every: int | None = None
    skip_bad_rows: bool = False
    overwrite: bool = False
    resume: bool = False
    deterministic: bool = True
    max_steps: int | None = None
    jit: bool = False  # XLA-compile the training step (one compilation per length bucket)
    precision: str = "fp32"  # fp32, bf16 or auto: oneDNN bfloat16 auto-mixed precision for the training graphs
    tapt_steps: int = 0  # task-adaptive pretraining (MLM + SOP) steps before fine-tuning
    unlabeled: list[str] = field(default_factory=list)  # extra texts for TAPT (and a new vocabulary)
    tapt_learning_rate: float | None = None  # None: 1e-3 from scratch, `albert pretrain`'s default with --init
    ema: float | None = None  # momentum of the weights' moving average; None: SCRATCH_EMA from scratch, 0 (off) with --init

    def validate(self) -> None:
        if self.task not in TASKS:
            raise UsageError(f"--task must be one of {', '.join(TASKS)}, got '{self.task}'")
        for name in ("batch_size",):
            if getattr(self, name) <= 0:
                raise UsageError(f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        if self.epochs is not None and self.epochs <= 0:
            raise UsageError(f"--epochs must be positive, got {self.epochs}")
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise UsageError(f"--learning-rate must be positive, got {self.learning_rate}")
        if self.max_seq_length is not None and not 8 <= self.max_seq_length <= 4096:
            raise UsageError(f"--max-seq-length must be between 8 and the model's positions, got {self.max_seq_length}")
        if not 0 <= self.warmup_ratio < 1:
            raise UsageError(f"--warmup-ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.dropout is not None and not 0 <= self.dropout < 1:
            raise UsageError(f"--dropout must be in [0, 1), got {self.dropout}")
        if self.pooling is not None and self.pooling not in POOLINGS:
            raise UsageError(f"--pooling must be one of {', '.join(POOLINGS)}, got '{self.pooling}'")
        if self.dev and self.dev_split:
            raise UsageError("give either --dev or --dev-split, not both")
        if self.precision not in ("fp32", "bf16", "auto"):
            raise UsageError(f"--precision must be one of fp32, bf16, auto, got '{self.precision}'")
        if self.dev_split is not None and not 0 < self.dev_split < 0.5:
            raise UsageError(f"--dev-split must be in (0, 0.5), got {self.dev_split}")
        if self.patience is not None and self.patience < 1:
            raise UsageError(f"--patience must be at least 1, got {self.patience}")
        if self.eval_every is not None and self.eval_every < 1:
            raise UsageError(f"--eval-every must be at least 1, got {self.eval_every}")
        if self.metric is not None and self.metric not in METRICS:
            raise UsageError(f"--metric must be one of {', '.join(METRICS)}, got '{self.metric}'")
        if self.class_weights not in (None, "none", "balanced"):
            raise UsageError(f"--class-weights must be 'balanced' or 'none', got '{self.class_weights}'")
        if self.class_weights == "balanced" and self.task == "regression":
            raise UsageError("--class-weights does not apply to --task regression")
        if self.vocab_size is not None and self.vocab_size < 16:
            raise UsageError(f"--vocab-size must be at least 16, got {self.vocab_size}")
        if self.init and self.tokenizer:
            raise UsageError("--tokenizer is for a new model; with --init the checkpoint's own tokenizer is used")
        if self.init and self.config:
            raise UsageError("--config sets the shape of a new model; it cannot be combined with --init")
        if self.max_steps is not None and self.max_steps < 1:
            raise UsageError(f"--max-steps must be at least 1, got {self.max_steps}")
        if self.tapt_steps < 0:
            raise UsageError(f"--tapt-steps must be >= 0, got {self.tapt_steps}")
        if self.unlabeled and not self.tapt_steps:
            raise UsageError("--unlabeled texts are for task-adaptive pretraining: give --tapt-steps N too")
        if self.ema is not None and not 0 <= self.ema < 1:
            raise UsageError(f"--ema must be at least 0 (off) and below 1, got {self.ema}")
        if self.tapt_learning_rate is not None and not self.tapt_learning_rate > 0:
            raise UsageError(f"--tapt-learning-rate must be positive, got {self.tapt_learning_rate}")
        if any(str(u) == "-" for u in self.unlabeled):
            raise UsageError("--unlabeled cannot read standard input; give a file")


def _split_dev(ds, fraction: float, seed: int, task: str):
    """A seeded, stratified (for single-label) hold-out split."""
    from albert_cli.data.readers import Dataset

    rng = np.random.default_rng(seed)
    n = len(ds)
    if task == "single_label":
        dev_idx = []
        by_label: dict[str, list[int]] = {}
        for i, y in enumerate(ds.labels):
            by_label.setdefault(y, []).append(i)
        for idx in by_label.values():
            idx = rng.permutation(idx)
            dev_idx.extend(idx[: int(round(len(idx) * fraction))])
        dev_set = set(int(i) for i in dev_idx)
    else:
        dev_set = set(int(i) for i in rng.permutation(n)[: int(round(n * fraction))])

    def take(keep):
        idx = [i for i in range(n) if (i in dev_set) == keep]
        return Dataset(
            name=ds.name + (" (dev split)" if keep else ""),
            texts=[ds.texts[i] for i in idx],
            pairs=[ds.pairs[i] for i in idx] if ds.pairs is not None else None,
            labels=[ds.labels[i] for i in idx],
            rows=[ds.rows[i] for i in idx],
        )

    return take(False), take(True)


def _metrics(task: str, y_true, outputs, thresholds=None) -> dict:
    """Dev metrics: outputs are probabilities (classification) or values (regression)."""
    from albert_cli.metrics import classification_metrics, multilabel_metrics, regression_metrics

    if task == "single_label":
        return classification_metrics(y_true, outputs.argmax(-1), num_labels=outputs.shape[-1])
    if task == "multi_label":
        t = np.asarray(thresholds if thresholds is not None else [0.5] * outputs.shape[-1])
        return multilabel_metrics(y_true, (outputs >= t).astype(np.int32))
    return regression_metrics(y_true, outputs)


def clip_by_group_norm(tf, grads, groups, clip_norm: float) -> list:
    """`tf.clip_by_global_norm` within each group of gradients (`groups[i]`: the group of `grads[i]`)."""
    out = list(grads)
    for group in sorted(set(groups)):
        idx = [i for i, g in enumerate(groups) if g == group]
        clipped, _ = tf.clip_by_global_norm([grads[i] for i in idx], clip_norm)
        for i, g in zip(idx, clipped):
            out[i] = g
    return out


def pick_share(members: np.ndarray, score, lower_is_better: bool = False) -> float:
    """ALBERT's share of the ensemble's logits: the best of 0, 0.1, ..., 1 by `score`.

    `members` [N, 2, outputs] holds ALBERT's and the bag's logits; `score(logits)` rates a mix (higher is better
    unless `lower_is_better`). Ties go to the share nearest 0.5, the even mix the model starts with.
    """
    best, best_share = None, 0.5
    for share in sorted(np.round(np.linspace(0.0, 1.0, 11), 1), key=lambda s: (abs(s - 0.5), s)):
        value = score(share * members[:, 0] + (1.0 - share) * members[:, 1])
        if best is None or (value < best if lower_is_better else value > best):
            best, best_share = value, float(share)
    return best_share


def tune_thresholds(y_true: np.ndarray, probs: np.ndarray) -> list[float]:
    """Per-label threshold maximising that label's F1 on dev (0.5 where a label never occurs)."""
    from sklearn.metrics import f1_score

    grid = np.round(np.arange(0.05, 0.96, 0.05), 2)
    out = []
    for j in range(probs.shape[1]):
        if y_true[:, j].sum() == 0:
            out.append(0.5)
            continue
        scores = [f1_score(y_true[:, j], probs[:, j] >= t, zero_division=0) for t in grid]
        out.append(float(grid[int(np.argmax(scores))]))
    return out


class Finetuner:
    """Builds the data, model and optimizer, runs the loop, writes the model directory."""

    def __init__(self, opts: FinetuneOptions):
        opts.validate()
        self.opts = opts
        self.out = Path(opts.output)

    # ----------------------------------------------------------------- data
    def _read_data(self):
        from albert_cli.data.labels import LABEL_KINDS, LabelVocab
        from albert_cli.data.readers import read_dataset

        o = self.opts
        kind = LABEL_KINDS[o.task]
        read = lambda path: read_dataset(  # noqa: E731
            path,
            fmt=o.format,
            text_column=o.text_column,
            text_pair_column=o.text_pair_column,
            label_column=o.label_column,
            label_kind=kind,
            skip_bad_rows=o.skip_bad_rows,
        )
        train = read(o.train)
        dev = read(o.dev) if o.dev else None
        if o.tapt_steps and o.unlabeled:
            from albert_cli.train.tapt import check_unlabeled

            check_unlabeled(o.unlabeled, o.text_column)
        if dev is None and o.dev_split:
            train, dev = _split_dev(train, o.dev_split, o.seed, o.task)
        self.labels = None
        if o.task != "regression":
            self.labels = LabelVocab.from_labels(
                train.labels, multi_label=o.task == "multi_label", name=train.name, column=o.label_column
            )
            if dev is not None:
                unseen = self.labels.unknown(dev.labels)
                if unseen:
                    warn(f"{dev.name}: {sum(unseen.values())} dev label(s) never seen in training: "
                         + ", ".join(sorted(unseen)[:5]) + "; they count as errors")
        elif len(set(train.labels)) < 2:
            raise DataError(f"{train.name}: every label in column '{o.label_column}' has the same value")
        self.train_ds, self.dev_ds = train, dev

    def _targets(self, ds) -> np.ndarray:
        if self.opts.task == "regression":
            return np.asarray(ds.labels, np.float32)
        if self.opts.task == "multi_label":
            return self.labels.encode(ds.labels)
        idx = self.labels.index
        return np.asarray([idx.get(str(y), -1) for y in ds.labels], np.int32)

    # ------------------------------------------------------------ tokenizer
    def _setup_tokenizer(self, staging: Path):
        """The SentencePiece model: the --init checkpoint's, --tokenizer, or one trained on TRAIN.

        It is stored as ``assets/spiece.model`` with its normalizer in ``assets/spiece.json``.
        """
        from albert_cli.text.normalize import NormalizerOptions
        from albert_cli.text.spm import SentencePieceTokenizer, VocabTooLarge, train_sentencepiece, write_sidecar

        o = self.opts
        assets = staging / "assets"
        assets.mkdir(parents=True, exist_ok=True)
        target = assets / "spiece.model"
        if o.resume and (target.exists() or (assets / "vocab.txt").exists()):
            pass  # the run being resumed already chose it; its settings are next to it
        elif self.pretrained is not None:
            from albert_cli.text.tokenizers import tokenizer_for_pretrained

            tok = tokenizer_for_pretrained(self.pretrained)  # SentencePiece or WordPiece, as the checkpoint has
            info_ = self.pretrained.tokenizer
            if info_.kind == "wordpiece":
                shutil.copyfile(info_.path, assets / "vocab.txt")
                self.tokenizer, self.tokenizer_spec = tok, {"kind": "wordpiece", "file": "vocab.txt"}
                self.normalizer = NormalizerOptions(lowercase=tok.do_lower_case, strip_accents=tok.do_lower_case)
                (assets / "tokenizer.json").write_text(
                    json.dumps({**self.tokenizer_spec, "normalizer": self.normalizer.to_dict()})
                )
                return
            shutil.copyfile(info_.path, target)
            write_sidecar(target, tok.normalizer, source=str(o.init))
        elif o.tokenizer:
            given = SentencePieceTokenizer.from_file(o.tokenizer)  # reads its PREFIX.json normalizer
            shutil.copyfile(o.tokenizer, target)
            write_sidecar(target, given.normalizer, source=str(o.tokenizer))
        else:
            import itertools

            from albert_cli.train.tapt import iter_unlabeled_texts

            texts = list(self.train_ds.texts) + list(self.train_ds.pairs or [])
            extra = o.unlabeled if o.tapt_steps else []
            source = lambda: itertools.chain(texts, iter_unlabeled_texts(extra, o.text_column))  # noqa: E731
            size = o.vocab_size or DEFAULT_VOCAB_SIZE
            info(f"training a SentencePiece vocabulary ({size} pieces) on {len(texts)} texts"
                 + (f" and the --unlabeled texts of {', '.join(extra)}" if extra else ""))
            try:
                train_sentencepiece(source(), assets / "spiece", vocab_size=size, seed=o.seed)
            except VocabTooLarge as exc:
                if o.vocab_size:  # the user asked for this size: say so
                    raise
                size = max(min(100, exc.max_size), int(exc.max_size * 0.9))
                info(f"the training text supports at most {exc.max_size} pieces: using {size}")
                train_sentencepiece(source(), assets / "spiece", vocab_size=size, seed=o.seed)
        if (assets / "vocab.txt").is_file() and not target.exists():  # resuming a WordPiece run
            from albert_cli.text.wordpiece import WordPieceTokenizer

            lower = json.loads((assets / "tokenizer.json").read_text())["normalizer"]["lowercase"]
            self.tokenizer = WordPieceTokenizer.from_file(assets / "vocab.txt", do_lower_case=lower)
            self.tokenizer_spec = {"kind": "wordpiece", "file": "vocab.txt"}
            self.normalizer = NormalizerOptions(lowercase=lower, strip_accents=lower)
            return
        self.tokenizer = SentencePieceTokenizer.from_file(target)
        self.tokenizer_spec = {"kind": "sentencepiece", "file": "spiece.model"}
        self.normalizer = self.tokenizer.normalizer

    # ---------------------------------------------------------------- model
    def _model_config(self):
        from albert_cli.model.config import AlbertConfig

        o = self.opts
        if self.pretrained is not None:
            config = self.pretrained.config
        elif o.config:
            config = AlbertConfig.resolve(o.config)
        else:
            config = AlbertConfig(vocab_size=self.tokenizer.vocab_size, **SCRATCH_CONFIG)
        if self.pretrained is None:
            config.vocab_size = self.tokenizer.vocab_size
        if o.dropout is not None:
            config.hidden_dropout_prob = o.dropout
            config.attention_probs_dropout_prob = o.dropout
        config.validate()
        if self.tokenizer.vocab_size > config.vocab_size:
            raise ModelError(
                f"{o.init}: tokenizer has {self.tokenizer.vocab_size} pieces but the model only {config.vocab_size}"
            )
        return config

    def _build_model(self, config, num_outputs: int):
        from albert_cli.model.backbone import AlbertBackbone
        from albert_cli.model.heads import AlbertClassifier, bow_buckets_for

        bow_buckets = 0
        if self.bow:
            bow_buckets = (self.pretrained and self.pretrained.bow_buckets) or bow_buckets_for(num_outputs)
        backbone = AlbertBackbone(config)
        model = AlbertClassifier(
            backbone,
            num_labels=num_outputs,
            task=self.opts.task,
            dropout=config.hidden_dropout_prob if self.opts.dropout is None else self.opts.dropout,
            pooling=self.pooling,
            bow_buckets=bow_buckets,
        )
        if self.pretrained is not None:
            from albert_cli.weights.loader import apply_to

            meta = self.init_meta
            head_ok = (
                "classifier" in self.pretrained.heads
                and meta is not None
                and meta.task == self.opts.task
                and meta.pooling == self.pooling
                and self.pretrained.bow_buckets == bow_buckets
                and meta.labels == (self.labels.labels if self.labels else [])
            )
            apply_to(model, self.pretrained, heads=("classifier",) if head_ok else ())
            if head_ok:
                info("continuing from the classifier head of the --init model (same labels)")
        if bow_buckets:
            from albert_cli.text.words import word_boundaries

            model.get_layer("bow").set_boundaries(word_boundaries(self.tokenizer))
        return model

    # ----------------------------------------------------------------- run
    def run(self) -> dict:
        """Check the output, read the data, then train in OUT.partial and rename it to OUT."""
        from albert_cli.modeldir import check_output, discard_if_empty, prepare_output

        o = self.opts
        check_output(self.out, o.overwrite, o.resume)
        self._read_data()  # bad data fails here, before TensorFlow loads and before anything is written
        self.staging = prepare_output(self.out, o.overwrite, o.resume)
        try:
            return self._run(self.staging)
        except Interrupted:
            raise
        except BaseException:
            discard_if_empty(self.staging)
            raise

    def _run(self, staging: Path) -> dict:
        o = self.opts
        from albert_cli._tf import import_tf

        tf = import_tf()
        import keras

        keras.utils.set_random_seed(o.seed)
        if o.deterministic:
            tf.config.experimental.enable_op_determinism()
        from albert_cli._tf import apply_inference_precision, inference_precision

        # bf16: TensorFlow's oneDNN auto-mixed-precision rewrite of the graphs run from now on (matmuls in
        # bfloat16, float32 accumulation and variables); the exported SavedModel itself stays float32.
        self.precision = inference_precision(o.precision)
        apply_inference_precision(self.precision)

        self.pretrained = None
        self.init_meta = None
        if o.init:
            from albert_cli.weights.loader import load_pretrained

            self.pretrained = load_pretrained(o.init)
            if self.pretrained.format == "albert_cli":
                from albert_cli.modeldir import open_model_dir

                self.init_meta = open_model_dir(o.init)[1]
        # The head: mean pooling from scratch (trec dev 0.859 against 0.848 with the [CLS] pooler; test accuracy
        # up on ag_news, trec and chnsenticorp: bench/README.md); an --init model keeps its own (the published
        # [CLS] pooler for Google/HF checkpoints and `albert pretrain` output).
        self.pooling = o.pooling or (self.pretrained.pooling if self.pretrained is not None else "mean")
        # A linear bag-of-n-grams member beside ALBERT from scratch (trec dev 0.872 against 0.854, ag_news and
        # chnsenticorp: bench/README.md); an --init model keeps what it has (none in Google/HF checkpoints).
        self.bow = o.bow if o.bow is not None else (self.pretrained is None or self.pretrained.bow_buckets > 0)
        self._setup_tokenizer(staging)
        config = self._model_config()

        lengths = np.asarray([0])
        max_len = o.max_seq_length
        if max_len is not None and max_len > config.max_position_embeddings:
            raise UsageError(
                f"--max-seq-length {max_len} exceeds the model's {config.max_position_embeddings} positions"
            )
        if max_len is None:
            from albert_cli.train.batching import choose_max_seq_length, raw_lengths

            lengths = raw_lengths(self.tokenizer, self.train_ds.texts, self.train_ds.pairs)
            cap = min(512, config.max_position_embeddings)
            if self.pretrained is None:
                # A small model from scratch: long inputs made training stall at chance on chnsenticorp
                # (368 tokens: dev 0.51 after 900 steps) where 128 reached dev 0.88 in 400 steps.
                cap = min(cap, SCRATCH_MAX_SEQ_LENGTH)
            max_len = choose_max_seq_length(lengths, cap=cap)
        self.max_len = max_len

        from albert_cli.train.batching import encode_examples

        t0 = time.time()
        train_enc = encode_examples(self.tokenizer, self.train_ds.texts, self.train_ds.pairs, max_len)
        dev_enc = (
            encode_examples(self.tokenizer, self.dev_ds.texts, self.dev_ds.pairs, max_len) if self.dev_ds else None
        )
        info(
            f"{len(train_enc)} training examples"
            + (f", {len(dev_enc)} dev" if dev_enc else "")
            + f"; max sequence length {max_len} (encoded in {time.time() - t0:.1f}s)"
        )
        y_train = self._targets(self.train_ds)
        y_dev = self._targets(self.dev_ds) if self.dev_ds else None
        num_outputs = 1 if o.task == "regression" else len(self.labels)

        model = self._build_model(config, num_outputs)
        self.tapt = self._tapt(model, config, max_len, train_enc) if o.tapt_steps else None
        scratch = self.pretrained is None
        epochs = o.epochs if o.epochs is not None else (8 if scratch else 3)
        lr = o.learning_rate if o.learning_rate is not None else (5e-4 if scratch else 3e-5)
        steps_per_epoch = math.ceil(len(train_enc) / o.batch_size)
        total_steps = max(1, int(round(steps_per_epoch * epochs)))
        if o.epochs is None and o.max_steps is None and scratch and total_steps > SCRATCH_MAX_STEPS:
            # Default budget on big data: about 15 minutes on two CPU cores.
            total_steps = SCRATCH_MAX_STEPS
            epochs = round(total_steps / steps_per_epoch, 2)
            info(f"default budget: {total_steps} steps ({epochs} epochs); set --epochs to train longer")
        if o.max_steps:
            total_steps = min(total_steps, o.max_steps)
        warmup = int(total_steps * o.warmup_ratio)

        from albert_cli.model.optimizers import make_optimizer

        ema = o.ema if o.ema is not None else (SCRATCH_EMA if scratch else 0.0)
        optimizer = make_optimizer(
            "adamw", lr, total_steps, warmup, weight_decay=o.weight_decay, ema_momentum=ema or None,
            clipnorm=None if model.members is not None else CLIP_NORM,  # then per member: _Loop.train_step
        )
        sample_w = self._sample_weights(y_train)

        loop = _Loop(
            self, tf, model, optimizer, train_enc, y_train, sample_w, dev_enc, y_dev, total_steps, steps_per_epoch
        )
        self.training_info = dict(
            epochs=epochs, learning_rate=lr, ema=ema, bow=self.bow, batch_size=o.batch_size, total_steps=total_steps,
            warmup_steps=warmup,
            seed=o.seed, max_seq_length=max_len, init=o.init, config=config.to_dict(),
            train_examples=len(train_enc), dev_examples=len(dev_enc) if dev_enc else 0,
            weight_decay=o.weight_decay, class_weights=o.class_weights, tapt_steps=o.tapt_steps,
            unlabeled=list(o.unlabeled),
        )
        result = loop.run()
        result["tapt_steps"] = o.tapt_steps
        if self.tapt is not None:
            result["tapt"] = self.tapt
        thresholds = None
        if o.task == "multi_label":
            if dev_enc:
                probs = loop.predict(dev_enc)
                thresholds = tune_thresholds(y_dev, probs)
                result["dev_metrics"] = _metrics(o.task, y_dev, probs, thresholds)
            else:
                thresholds = [0.5] * len(self.labels)
        self._export(tf, model, config, thresholds, result)
        return result

    # ----------------------------------------------------------------- TAPT
    def _tapt(self, model, config, max_len: int, train_enc) -> dict | None:
        """Task-adaptive pretraining of `model`'s backbone (see `albert_cli.train.tapt`); returns its figures.

        `--resume` skips it when its result (`OUT.partial/tapt/`) exists or fine-tuning has
        already saved a checkpoint (whose weights replace the model's anyway), and continues
        it from its own checkpoint when it was interrupted.
        """
        from albert_cli.train import tapt
        from albert_cli.train.state import latest_checkpoint
        from albert_cli.weights.loader import apply_to, load_pretrained

        o = self.opts
        staging = self.staging
        done = staging / tapt.TAPT_DIR
        if o.resume and not done.is_dir() and (self.out / tapt.TAPT_DIR).is_dir():
            shutil.copytree(self.out / tapt.TAPT_DIR, done)  # resuming a finished model: keep its TAPT result
        if o.resume and latest_checkpoint(staging / "checkpoints") is not None:
            info("resuming from a fine-tuning checkpoint: task-adaptive pretraining is not run again")
            tapt.cleanup(staging)
            return tapt.read_figures(done)
        if o.resume and tapt.read_figures(done) is not None:
            info(f"task-adaptive pretraining already done ({done.name}/): skipping it")
            figures = tapt.read_figures(done)
        else:
            if self.tokenizer_spec["kind"] != "sentencepiece":
                raise UsageError(
                    f"--tapt-steps needs a SentencePiece vocabulary; {o.init} has a WordPiece vocab.txt"
                )
            if self.pretrained is not None:
                init = o.init  # the checkpoint itself: its MLM/SOP heads too, when it has them
            else:  # exactly the backbone fine-tuning starts from
                from albert_cli.weights import save_hf_dir

                init = str(save_hf_dir(model.backbone, staging / tapt.INIT_DIR, config=config))
            corpus = staging / tapt.CORPUS_FILE
            documents = tapt.write_corpus(
                corpus, tapt.task_documents(self.train_ds.texts, self.train_ds.pairs, o.unlabeled, o.text_column, o.seed)
            )
            if documents == 0:
                raise DataError(f"{self.train_ds.name}: no text for task-adaptive pretraining")
            if o.tapt_learning_rate is not None:
                lr = o.tapt_learning_rate
            elif self.pretrained is None:
                lr = tapt.SCRATCH_LEARNING_RATE
            else:
                from albert_cli.train.pretrain import default_learning_rate

                lr = default_learning_rate(o.batch_size)
            plan = tapt.TaptPlan(
                steps=o.tapt_steps, staging=staging, tokenizer=staging / "assets" / "spiece.model", init=init,
                max_seq_length=max_len, batch_size=o.batch_size, learning_rate=lr, seed=o.seed,
                deterministic=o.deterministic, jit=o.jit, resume=o.resume,
            )
            figures = tapt.run_tapt(plan, corpus, documents)
        apply_to(model, load_pretrained(done), heads=())  # the backbone; the classifier head stays as it was
        tapt.cleanup(staging)
        special = {self.tokenizer.cls_id, self.tokenizer.sep_id, 0}
        figures["unigram_entropy"] = tapt.unigram_entropy((e[0] for e in train_enc), special)
        mlm = figures.get("final_mlm_loss")
        if mlm is not None:
            info(
                f"task-adaptive pretraining: MLM loss {mlm:.3f} (accuracy {figures['final_mlm_accuracy']:.3f}; "
                f"word frequencies alone: {figures['unigram_entropy']:.3f}), SOP loss "
                f"{figures['final_sop_loss']:.3f} (accuracy {figures['final_sop_accuracy']:.3f}) over its last steps"
            )
            if mlm > figures["unigram_entropy"] - tapt.CONTEXT_MARGIN:
                warn(
                    f"the masked LM ended at loss {mlm:.2f}, not below {figures['unigram_entropy']:.2f} (guessing "
                    "from word frequencies alone): it has not learned from context yet, and fine-tuning from this "
                    "state can be worse than without --tapt-steps (ag_news from scratch, 500 steps: test accuracy "
                    "0.72 instead of 0.86); give it more --tapt-steps, or --init a pretrained model"
                )
        return figures

    def _sample_weights(self, y) -> np.ndarray:
        n = len(y)
        if self.opts.class_weights != "balanced" or self.opts.task == "regression":
            return np.ones(n, np.float32)
        if self.opts.task == "multi_label":
            pos = y.sum(0) + 1.0
            w = (n / (len(pos) * pos))[None, :] * y + (1 - y)
            return w.max(1).astype(np.float32)
        counts = np.bincount(y, minlength=len(self.labels)).astype(np.float64)
        weights = n / (len(counts) * np.maximum(counts, 1))
        return weights[y].astype(np.float32)

    # --------------------------------------------------------------- export
    def _export(self, tf, model, config, thresholds, result) -> None:
        from albert_cli.export import export_model_dir
        from albert_cli.modeldir import ModelMeta, commit

        o = self.opts
        meta = ModelMeta(
            task=o.task,
            tokenizer=self.tokenizer_spec,
            labels=self.labels.labels if self.labels else [],
            normalizer=self.normalizer.to_dict(),
            max_seq_length=self.max_len,
            pooling=self.pooling,
            bow_buckets=model.bow_buckets,
            thresholds=thresholds,
            pair=o.text_pair_column is not None,
            columns={"text": o.text_column, "text_pair": o.text_pair_column, "label": o.label_column},
            training={**self.training_info, **{k: v for k, v in result.items() if k != "dev_metrics"}},
            metrics=result.get("dev_metrics") or {},
        )
        info("writing the model directory")
        try:
            export_model_dir(self.staging, model, config, self.tokenizer, meta)
            commit(self.staging, self.out)
        except (OSError, tf.errors.OpError) as exc:  # full disk, quota...: OUT is untouched until commit succeeds
            parts = [x.strip() for x in " ".join(str(exc).split()).split(";") if x.strip()]  # TF: "PATH; REASON"
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else (parts or [type(exc).__name__])[-1][:200]
            kept = "the previous model is unchanged; " if self.out.exists() else ""
            raise ModelError(
                f"{self.out}: cannot write the model ({reason}); {kept}"
                f"the last checkpoint is kept in {self.staging.name}/ (free space, then --resume)"
            ) from None


class _Loop:
    """The training loop: steps, evaluation, best model, early stopping, checkpoints."""

    def __init__(self, ft, tf, model, optimizer, train_enc, y_train, sample_w, dev_enc, y_dev, total_steps, spe):
        self.ft, self.tf, self.model, self.optimizer = ft, tf, model, optimizer
        self.train_enc, self.y_train, self.sample_w = train_enc, y_train, sample_w
        self.dev_enc, self.y_dev = dev_enc, y_dev
        self.total_steps, self.steps_per_epoch = total_steps, spe
        self.task = ft.opts.task
        o = ft.opts
        self.metric = o.metric or ("mse" if self.task == "regression" else "micro_f1" if self.task == "multi_label" else "accuracy")
        self.lower_is_better = self.metric in ("loss", "mse")
        self.ckpt_dir = ft.staging / "checkpoints"
        self.lengths = np.asarray([len(e[0]) for e in train_enc])
        # Length buckets: coarser with XLA, which compiles once per shape.
        self.bucket = 16 if o.jit else 8
        self._build_steps()

    def _batch(self, idx):
        """Inputs, targets and weights; with XLA, padded to a fixed number of rows (weight 0)."""
        from albert_cli.train.batching import pad_batch

        o = self.ft.opts
        rows = o.batch_size if o.jit else len(idx)
        inputs = pad_batch(self.train_enc, idx, self.bucket, rows)
        extra = rows - len(idx)
        y, w = self.y_train[idx], self.sample_w[idx]
        if extra:
            y = np.concatenate([y, np.zeros((extra,) + y.shape[1:], y.dtype)])
            w = np.concatenate([w, np.zeros(extra, w.dtype)])
        return inputs, y, w

    def _loss(self, y, logits, w):
        tf = self.tf
        if self.task == "single_label":
            per = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
        elif self.task == "multi_label":
            per = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=logits), axis=-1)
        else:
            per = tf.square(tf.squeeze(logits, -1) - y)
        return tf.reduce_sum(per * w) / tf.reduce_sum(w)

    def _build_steps(self):
        tf = self.tf
        model, optimizer = self.model, self.optimizer
        spec = {k: tf.TensorSpec([None, None], tf.int32) for k in ("token_ids", "segment_ids", "padding_mask")}
        if self.task == "single_label":
            yspec = tf.TensorSpec([None], tf.int32)
        elif self.task == "multi_label":
            yspec = tf.TensorSpec([None, None], tf.float32)
        else:
            yspec = tf.TensorSpec([None], tf.float32)
        wspec = tf.TensorSpec([None], tf.float32)

        jit = bool(self.ft.opts.jit)
        # Global-norm clipping per member: the bag's gradients (its logits are scaled by 1000) would otherwise
        # set the global norm and shrink ALBERT's steps.
        members_of = [v.path.startswith("bow/") for v in model.trainable_variables]

        @tf.function(input_signature=[spec, yspec, wspec], jit_compile=jit)
        def train_step(inputs, y, w):
            with tf.GradientTape() as tape:
                if model.members is not None:  # ALBERT and the bag of n-grams, each with its own loss
                    members = model.members(inputs, training=True)
                    loss = tf.add_n([self._loss(y, tf.cast(m, tf.float32), w) for m in members])
                else:
                    logits = model(inputs, training=True)
                    loss = self._loss(y, tf.cast(logits, tf.float32), w)
            grads = tape.gradient(loss, model.trainable_variables)
            if model.members is not None:
                grads = clip_by_group_norm(tf, grads, members_of, CLIP_NORM)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            return loss

        @tf.function(input_signature=[spec], jit_compile=jit)
        def predict_step(inputs):
            logits = tf.cast(model(inputs, training=False), tf.float32)
            if self.task == "single_label":
                return tf.nn.softmax(logits, -1)
            if self.task == "multi_label":
                return tf.sigmoid(logits)
            return tf.squeeze(logits, -1)

        self.train_step, self.predict_step = train_step, predict_step
        if model.members is not None:
            self.members_step = tf.function(
                lambda inputs: tf.stack([tf.cast(m, tf.float32) for m in model.members(inputs, training=False)], 1),
                input_signature=[spec], jit_compile=jit,
            )
        optimizer.build(model.trainable_variables)

    def predict(self, enc, batch_size: int = 64, step=None) -> np.ndarray:
        """`predict_step` (or `step`) over encoded examples, in their order."""
        from albert_cli.train.batching import length_grouped_batches, pad_batch

        step = step or self.predict_step
        lengths = [len(e[0]) for e in enc]
        out = [None] * len(enc)
        rows = batch_size if self.ft.opts.jit else None
        for idx in length_grouped_batches(lengths, batch_size, None):
            res = step(pad_batch(enc, idx, self.bucket, rows)).numpy()
            for row, i in enumerate(idx):
                out[i] = res[row]
        return np.stack(out)

    def tune_share(self) -> float:
        """Set ALBERT's share of the ensemble's logits (`pick_share` by the dev metric); returns it."""
        from albert_cli.model.heads import logits_to_probabilities

        def score(logits):
            logits = logits[:, 0] if self.task == "regression" else logits
            return _metrics(self.task, self.y_dev, np.asarray(logits_to_probabilities(logits, self.task)))[self.metric]

        share = pick_share(self.predict(self.dev_enc, step=self.members_step), score, self.lower_is_better)
        self.model.get_layer("bow_mix").share.assign([share])
        return share

    def evaluate(self) -> dict:
        probs = self.predict(self.dev_enc)
        return _metrics(self.task, self.y_dev, probs)

    def _swap_averages(self) -> None:
        """Exchange the weights with their moving averages (--ema); twice restores them."""
        opt = self.optimizer
        averages = opt._model_variables_moving_average  # Keras keeps them per trainable variable, in build order
        for var in self.model.trainable_variables:
            avg = averages[opt._get_variable_index(var)]
            if avg is None:
                continue
            current = var.numpy()
            var.assign(avg)
            avg.assign(current)

    @contextlib.contextmanager
    def _averaged(self):
        """The moving averages in the model for the duration (a no-op without --ema)."""
        if not self.optimizer.use_ema:
            yield
            return
        self._swap_averages()
        try:
            yield
        finally:
            self._swap_averages()

    def _better(self, value, best) -> bool:
        if best is None:
            return True
        return value < best if self.lower_is_better else value > best

    def _save(self, step, state):
        from albert_cli.train.state import save_checkpoint

        save_checkpoint(self.ckpt_dir, step, self.model, self.optimizer, state, keep=1)

    def _best_path(self):
        return self.ckpt_dir / "best.weights.npz"

    def _save_best(self):
        self.ckpt_dir.mkdir(parents=True, exist_ok=True)
        path = self._best_path()
        tmp = path.with_name("best.tmp.npz")
        np.savez(tmp, *[np.asarray(v) for v in self.model.weights])
        os.replace(tmp, path)

    def _restore_best(self):
        with np.load(self._best_path(), allow_pickle=False) as data:
            for i, v in enumerate(self.model.weights):
                v.assign(data[f"arr_{i}"])

    def run(self) -> dict:
        from albert_cli.train.state import latest_checkpoint, restore_checkpoint

        tf, o = self.tf, self.ft.opts
        step, start_epoch, skip_batches = 0, 0, 0
        best, best_step, bad_evals = None, None, 0
        history = []
        last = latest_checkpoint(self.ckpt_dir) if o.resume else None
        if o.resume and last is None and not o.tapt_steps:
            raise UsageError(f"{self.ft.out}: nothing to resume (no checkpoint in {self.ckpt_dir})")
        if last is not None:
            state = restore_checkpoint(self.ckpt_dir, last, self.model, self.optimizer)
            step, start_epoch, skip_batches = state["step"], state["epoch"], state["batch_in_epoch"]
            best, best_step, bad_evals, history = state["best"], state["best_step"], state["bad_evals"], state["history"]
            info(f"resumed at step {step} (epoch {start_epoch + 1}, batch {skip_batches})")
        elif o.resume:  # interrupted during task-adaptive pretraining: fine-tuning starts now
            info("no fine-tuning checkpoint yet: fine-tuning from step 0")

        writer = tf.summary.create_file_writer(str(self.ft.staging / "logs" / "train"))
        eval_every = o.eval_every or self.steps_per_epoch
        save_every = o.save_every or self.steps_per_epoch
        from albert_cli.console import progress

        t_start, seen = time.time(), 0
        stop = False
        last_loss = float("nan")
        state_of = lambda epoch, b: dict(  # noqa: E731
            epoch=epoch, batch_in_epoch=b, best=best, best_step=best_step, bad_evals=bad_evals, history=history
        )
        epoch = start_epoch
        with progress() as bar:
            task_id = bar.add_task("finetune", total=self.total_steps, completed=step, status="")
            try:
                while step < self.total_steps and not stop:
                    rng = np.random.default_rng([o.seed, epoch])
                    from albert_cli.train.batching import length_grouped_batches

                    batches = length_grouped_batches(self.lengths, o.batch_size, rng)
                    for b, idx in enumerate(batches):
                        if epoch == start_epoch and b < skip_batches:
                            continue
                        inputs, y, w = self._batch(idx)
                        with deferred_interrupts():  # a signal waits for the step to finish
                            loss = float(self.train_step(inputs, y, w))
                        if not math.isfinite(loss):
                            raise ModelError(
                                f"training diverged at step {step + 1} (loss {loss}); try a lower --learning-rate"
                            )
                        step += 1
                        seen += len(idx)
                        last_loss = loss if math.isnan(last_loss) else 0.9 * last_loss + 0.1 * loss
                        rate = seen / max(time.time() - t_start, 1e-6)
                        dev = f" dev {self.metric} {history[-1][self.metric]:.4f}" if history else ""
                        bar.update(task_id, completed=step, status=f"loss {last_loss:.4f}{dev} {rate:.0f} ex/s")
                        with writer.as_default(step=step):
                            tf.summary.scalar("loss", loss)
                            tf.summary.scalar("learning_rate", float(self.optimizer.learning_rate))
                        at_end = step >= self.total_steps
                        if self.dev_enc and (step % eval_every == 0 or at_end):
                            with deferred_interrupts(), self._averaged():  # the model that would be kept
                                metrics = self.evaluate()
                                value = metrics[self.metric]
                                improved = self._better(value, best)
                                if improved:
                                    self._save_best()
                            history.append({"step": step, **metrics})
                            with writer.as_default(step=step):
                                for k, v in metrics.items():
                                    if isinstance(v, (int, float)):
                                        tf.summary.scalar(f"dev/{k}", v)
                            if improved:
                                best, best_step, bad_evals = value, step, 0
                            else:
                                bad_evals += 1
                            err_console.print(
                                f"step {step}/{self.total_steps}  loss {last_loss:.4f}  dev {self.metric} {value:.4f}"
                                + ("  (best)" if improved else f"  (best {best:.4f} at step {best_step})"),
                                highlight=False,
                            )
                            if o.patience and bad_evals >= o.patience:
                                info(f"early stopping: no improvement in {o.patience} evaluations")
                                stop = True
                        if step % save_every == 0 or at_end or stop:
                            self._save(step, state_of(epoch, b + 1))
                        if at_end or stop:
                            break
                    else:
                        epoch += 1
                        skip_batches = 0
                        continue
                    break
            except Interrupted:
                self._save(step, state_of(epoch, b + 1 if "b" in locals() else 0))
                err_console.print(
                    f"saved a checkpoint at step {step} in {self.ckpt_dir}; continue with --resume", highlight=False
                )
                raise
        writer.close()
        if best_step is not None:
            self._restore_best()
        elif self.optimizer.use_ema:  # no dev selection: keep the moving average
            self._swap_averages()
        share = None
        if self.model.members is not None:
            if self.dev_enc:
                share = self.tune_share()
                info(f"ensemble: ALBERT's logits weigh {share:.1f}, the bag of n-grams' {1 - share:.1f} (best on dev)")
            else:  # 0.5 from scratch; an --init model's own share when its head is continued
                share = round(float(self.model.get_layer("bow_mix").share.numpy()[0]), 4)
        result = {
            "steps": step,
            "train_seconds": round(time.time() - t_start, 2),
            "train_loss": round(last_loss, 6),
            "best_step": best_step,
            "metric": self.metric,
            "best_dev": best,
            "ensemble_share": share,
        }
        if self.dev_enc:
            result["dev_metrics"] = self.evaluate()
        return result


def run_finetune(opts: FinetuneOptions) -> dict:
    return Finetuner(opts).run()
