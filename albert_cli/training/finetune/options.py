"""What the user asked of `albert finetune`, checked (no defaults resolved here: see `plan`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from albert_cli.errors import UsageError
from albert_cli.model.kinds import DEV_METRICS, POOLINGS, TASKS
from albert_cli.text.preprocessor import check_sequence_length
from albert_cli.text.windows import WINDOW_POOLINGS

PRECISIONS = ("fp32", "bf16", "auto")


@dataclass(frozen=True)
class FinetuneOptions:
    """The options of `albert finetune` (None: the default the plan resolves; see the command's --help)."""

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
    pooling: str | None = None
    bow: bool | None = None
    max_seq_length: int | None = None
    vocab_size: int | None = None
    seed: int = 42
    eval_every: int | None = None
    patience: int | None = None
    metric: str | None = None
    class_weights: str | None = None  # None | "none" | "balanced"
    save_every: int | None = None
    skip_bad_rows: bool = False
    overwrite: bool = False
    resume: bool = False
    keep_checkpoints: bool = False
    deterministic: bool = True
    max_steps: int | None = None
    jit: bool = False
    precision: str = "fp32"
    tapt_steps: int = 0
    unlabeled: tuple = field(default_factory=tuple)
    tapt_learning_rate: float | None = None
    ema: float | None = None
    windows: bool | None = None  # None: on when the training texts are long (plan)
    window_stride: int | None = None
    max_windows: int | None = None
    window_pooling: str | None = None

    def validate(self) -> "FinetuneOptions":
        """Raise a UsageError (exit 2) for an out-of-range or conflicting option; returns self."""
        self._check_ranges()
        self._check_combinations()
        check_sequence_length(self.max_seq_length)
        return self

    def _check_ranges(self) -> None:
        positive = {"batch_size": self.batch_size, "epochs": self.epochs, "learning_rate": self.learning_rate,
                    "tapt_learning_rate": self.tapt_learning_rate}
        for name, value in positive.items():
            if value is not None and not value > 0:
                raise UsageError(f"--{name.replace('_', '-')} must be positive, got {value}")
        at_least_one = {"patience": self.patience, "eval_every": self.eval_every, "max_steps": self.max_steps,
                        "window_stride": self.window_stride, "max_windows": self.max_windows}
        for name, value in at_least_one.items():
            if value is not None and value < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
        if not 0 <= self.warmup_ratio < 1:
            raise UsageError(f"--warmup-ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.dropout is not None and not 0 <= self.dropout < 1:
            raise UsageError(f"--dropout must be in [0, 1), got {self.dropout}")
        if self.dev_split is not None and not 0 < self.dev_split < 0.5:
            raise UsageError(f"--dev-split must be in (0, 0.5), got {self.dev_split}")
        if self.vocab_size is not None and self.vocab_size < 16:
            raise UsageError(f"--vocab-size must be at least 16, got {self.vocab_size}")
        if self.tapt_steps < 0:
            raise UsageError(f"--tapt-steps must be >= 0, got {self.tapt_steps}")
        if self.ema is not None and not 0 <= self.ema < 1:
            raise UsageError(f"--ema must be at least 0 (off) and below 1, got {self.ema}")

    def _check_combinations(self) -> None:
        choices = {"task": (self.task, TASKS), "pooling": (self.pooling, POOLINGS),
                   "precision": (self.precision, PRECISIONS), "window_pooling": (self.window_pooling, WINDOW_POOLINGS)}
        for name, (value, allowed) in choices.items():
            if value is not None and value not in allowed:
                raise UsageError(f"--{name.replace('_', '-')} must be one of {', '.join(allowed)}, got '{value}'")
        metrics = DEV_METRICS[self.task]
        if self.metric is not None and self.metric not in metrics:
            raise UsageError(f"--metric for --task {self.task} must be one of {', '.join(metrics)}, got '{self.metric}'")
        if self.dev and self.dev_split:
            raise UsageError("give either --dev or --dev-split, not both")
        if self.class_weights not in (None, "none", "balanced"):
            raise UsageError(f"--class-weights must be 'balanced' or 'none', got '{self.class_weights}'")
        if self.class_weights == "balanced" and self.task == "regression":
            raise UsageError("--class-weights does not apply to --task regression")
        if self.init and self.tokenizer:
            raise UsageError("--tokenizer is for a new model; with --init the checkpoint's own tokenizer is used")
        if self.init and self.config:
            raise UsageError("--config sets the shape of a new model; it cannot be combined with --init")
        if self.unlabeled and not self.tapt_steps:
            raise UsageError("--unlabeled texts are for task-adaptive pretraining: give --tapt-steps N too")
        if self.windows and self.text_pair_column:
            raise UsageError("--windows reads single texts; a pair model (--text-pair-column) truncates its pairs")
        if self.windows is False and (self.window_stride or self.max_windows or self.window_pooling):
            raise UsageError("--window-stride, --max-windows and --window-pooling set up --windows; drop --no-windows")
        if any(str(u) == "-" for u in self.unlabeled):
            raise UsageError("--unlabeled cannot read standard input; give a file")
