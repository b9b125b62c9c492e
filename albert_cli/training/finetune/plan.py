"""The plan of a fine-tuning run: every default resolved once, from the options, the --init model and the data.

Nothing downstream looks at an option that is None: the plan says what the run does. The defaults differ from
scratch (a small ALBERT trained in minutes on two cores) and with --init (the published fine-tuning recipe); the
measurements behind them are in bench/README.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from albert_cli.console import info
from albert_cli.errors import ModelError
from albert_cli.model.config import AlbertConfig
from albert_cli.model.kinds import LOWER_IS_BETTER, default_metric
from albert_cli.text.preprocessor import Preprocessor, check_sequence_length, choose_sequence_length
from albert_cli.text.windows import WindowSpec, choose_windows, count_windows
from albert_cli.training.finetune.data import FinetuneData
from albert_cli.training.finetune.options import FinetuneOptions
from albert_cli.training.finetune.tokenizer import TokenizerChoice

SCRATCH_MAX_STEPS = 1500  # step budget from scratch when --epochs is not given (see bench/README.md)
SCRATCH_MAX_SEQ_LENGTH = 128  # longer inputs stalled a small model from scratch (bench/README.md)
SCRATCH_EMA = 0.995
WINDOW_BUDGET_TOKENS = 64  # a windowed document costs its tokens / 64 examples of the step budget (bench/README.md)
CLIP_NORM = 1.0  # global-norm gradient clipping, as the original run_classifier.py (per member with the bag)
# From scratch (no --init): a small ALBERT that trains in minutes on two cores.
SCRATCH_CONFIG = dict(
    embedding_size=128, hidden_size=256, num_hidden_layers=4, num_hidden_groups=1, inner_group_num=1,
    num_attention_heads=4, intermediate_size=1024, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
    max_position_embeddings=512,
)


@dataclass(frozen=True)
class InitModel:
    """The --init checkpoint (`load_pretrained`) and, for our own model directories, their metadata."""

    weights: object
    meta: object | None


@dataclass(frozen=True)
class FinetunePlan:
    """What a fine-tuning run does, resolved."""

    options: FinetuneOptions
    config: AlbertConfig
    num_outputs: int
    pooling: str
    bow: bool
    max_seq_length: int
    windows: WindowSpec | None
    epochs: float
    learning_rate: float
    ema: float
    steps_per_epoch: int
    total_steps: int
    warmup_steps: int
    metric: str
    eval_every: int
    save_every: int

    @property
    def scratch(self) -> bool:
        return self.options.init is None

    @property
    def lower_is_better(self) -> bool:
        return self.metric in LOWER_IS_BETTER


def model_config(o: FinetuneOptions, init: InitModel | None, vocab_size: int) -> AlbertConfig:
    """The model's shape: the --init checkpoint's, --config, or `SCRATCH_CONFIG`; --dropout applied."""
    if init is not None:
        config = init.weights.config
    elif o.config:
        config = AlbertConfig.resolve(o.config)
    else:
        config = AlbertConfig(vocab_size=vocab_size, **SCRATCH_CONFIG)
    if init is None:
        config.vocab_size = vocab_size
    if o.dropout is not None:
        config.hidden_dropout_prob = o.dropout
        config.attention_probs_dropout_prob = o.dropout
    config.validate()
    if vocab_size > config.vocab_size:
        raise ModelError(f"{o.init}: tokenizer has {vocab_size} pieces but the model only {config.vocab_size}")
    return config


def sequence_length(o: FinetuneOptions, init: InitModel | None, config: AlbertConfig, lengths) -> int:
    """--max-seq-length, else the 99th percentile of the training `lengths` (at most 512; 128 from scratch)."""
    positions = config.max_position_embeddings
    if o.max_seq_length is not None:
        return check_sequence_length(o.max_seq_length, positions)
    cap = min(512, positions)
    if init is None:
        cap = min(cap, SCRATCH_MAX_SEQ_LENGTH)
    return choose_sequence_length(lengths, cap=cap)


def _windows(o: FinetuneOptions, lengths, length: int) -> WindowSpec | None:
    """The run's windows (`choose_windows`), said in one line when the data turned them on."""
    spec = choose_windows(lengths, length, o.text_pair_column is not None, o.window_stride, o.max_windows,
                          o.window_pooling, o.windows)
    if spec is not None and o.windows is None:
        longer = float(np.mean(lengths > length))
        info(f"{longer:.0%} of the training texts are longer than {length} tokens: reading them as windows of "
             f"{length} (stride {spec.stride}, at most {spec.max_windows}, {spec.pooling} of the windows; "
             "--no-windows to cut them instead)")
    return spec


def _cost(windows: WindowSpec | None, lengths, length: int) -> float:
    """What a training example costs against the default step budget: 1, or for a windowed document its tokens
    (every window's) over `WINDOW_BUDGET_TOKENS`."""
    if windows is None or not len(lengths):
        return 1.0
    tokens = [min(n - 2, windows.pieces_read(length)) + 2 * count_windows(n - 2, length, windows.stride,
                                                                            windows.max_windows) for n in lengths]
    return max(1.0, float(np.mean(tokens)) / WINDOW_BUDGET_TOKENS)


def _budget(o: FinetuneOptions, scratch: bool, examples: int, cost: float = 1.0) -> tuple[float, int, int]:
    """(epochs, steps per epoch, total steps); from scratch the default cap on steps is divided by `cost` (see
    `_cost`), so that a windowed run stays within about the time of a plain one."""
    epochs = o.epochs if o.epochs is not None else (8 if scratch else 3)
    steps_per_epoch = math.ceil(examples / o.batch_size)
    total = max(1, int(round(steps_per_epoch * epochs)))
    cap = max(1, int(SCRATCH_MAX_STEPS / cost))
    if o.epochs is None and o.max_steps is None and scratch and total > cap:
        total = cap
        epochs = round(total / steps_per_epoch, 2)
        info(f"default budget: {total} steps ({epochs} epochs); set --epochs to train longer")
    if o.max_steps:
        total = min(total, o.max_steps)
    return epochs, steps_per_epoch, total


def make_plan(o: FinetuneOptions, init: InitModel | None, data: FinetuneData, choice: TokenizerChoice) -> FinetunePlan:
    """Resolve every default of a run (see the module docstring)."""
    scratch = init is None
    config = model_config(o, init, choice.tokenizer.vocab_size)
    lengths = Preprocessor.raw_lengths(choice.tokenizer, data.train.texts, data.train.pairs)
    length = sequence_length(o, init, config, lengths)
    windows = _windows(o, lengths, length)
    epochs, per_epoch, total = _budget(o, scratch, len(data.train), _cost(windows, lengths, length))
    ema = o.ema if o.ema is not None else (SCRATCH_EMA if scratch else 0.0)
    bow = o.bow if o.bow is not None else (scratch or init.weights.bow_buckets > 0)
    return FinetunePlan(
        options=o, config=config, num_outputs=data.num_outputs,
        pooling=o.pooling or (init.weights.pooling if init is not None else "mean"),
        bow=bow, max_seq_length=length, windows=windows,
        epochs=epochs, learning_rate=o.learning_rate if o.learning_rate is not None else (5e-4 if scratch else 3e-5),
        ema=ema, steps_per_epoch=per_epoch, total_steps=total, warmup_steps=int(total * o.warmup_ratio),
        metric=o.metric or default_metric(o.task), eval_every=o.eval_every or per_epoch,
        save_every=o.save_every or per_epoch,
    )
