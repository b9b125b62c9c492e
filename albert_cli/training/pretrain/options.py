"""The options of `albert pretrain`, checked, and the defaults that depend on them."""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field

from albert_cli.errors import UsageError
from albert_cli.text.preprocessor import check_sequence_length
from albert_cli.training.distribute import STRATEGIES

PRECISIONS = {"fp32": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}
METRICS = ("loss", "mlm_loss", "mlm_accuracy", "sop_loss", "sop_accuracy")

# LAMB's peak rate for ALBERT's batch of 4096; smaller batches use the
# square-root scaling rule of the LAMB paper: lr = 1.76e-3 * sqrt(batch / 4096).
REFERENCE_LR, REFERENCE_BATCH = 1.76e-3, 4096
DEFAULT_CONFIG = "small"
META_FILE = "albert_pretrain.json"
LOG_FILE = "train.jsonl"


def parse_duration(text: str | None) -> float | None:
    """Seconds from ``"90"``, ``"45s"``, ``"30m"``, ``"2h"``, ``"1h30m"`` (None stays None)."""
    if text is None:
        return None
    s = str(text).strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", s):
        return float(s)
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([smhd])", s)
    if not parts or re.sub(r"(\d+(?:\.\d+)?)\s*([smhd])", "", s).strip():
        raise UsageError(f"--max-time: cannot read {text!r}; use e.g. 90s, 30m, 2h or 1h30m")
    unit = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    return sum(float(n) * unit[u] for n, u in parts)


def default_learning_rate(batch_size: int, optimizer: str = "lamb") -> float:
    """LAMB: ``1.76e-3 * sqrt(batch/4096)`` (ALBERT's rate, square-root scaled).
    AdamW: BERT's 1e-4 at batch 256, square-root scaled the same way."""
    if optimizer == "adamw":
        return 1e-4 * math.sqrt(batch_size / 256)
    return REFERENCE_LR * math.sqrt(batch_size / REFERENCE_BATCH)


@dataclass
class PretrainOptions:
    corpus: list[str]
    output: str
    tokenizer: str | None = None
    config: str | None = None
    init: str | None = None
    format: str | None = None
    text_column: str = "text"
    doc_column: str | None = None
    max_seq_length: int = 128
    max_predictions_per_seq: int = 20
    masked_lm_prob: float = 0.15
    short_seq_prob: float = 0.1
    batch_size: int = 32
    learning_rate: float | None = None
    warmup_steps: int | None = None
    decay_steps: int | None = None
    max_steps: int | None = None
    max_time: str | None = None
    epochs: float | None = None
    save_every: int = 1000
    keep_checkpoints: int = 2
    log_every: int = 10
    resume: bool = False
    seed: int = 12345
    optimizer: str = "lamb"
    weight_decay: float = 0.01
    precision: str = "fp32"
    jit: bool = False
    strategy: str = "auto"
    deterministic: bool = False
    shuffle_buffer: int = 1000
    # Redraw every document's SOP segmentation each epoch (not only its masks): for
    # many passes over a small corpus (`finetune --tapt-steps`).
    vary_instances_per_epoch: bool = False
    overwrite: bool = False
    export_google: bool = False
    max_time_seconds: float | None = field(default=None, init=False)

    def validate(self) -> None:
        """Raise UsageError (exit 2) for out-of-range or conflicting options."""
        if not self.corpus:
            raise UsageError("give at least one CORPUS file")
        if not self.tokenizer and not self.init:
            raise UsageError("--tokenizer is required (or --init a model directory that has spiece.model)")
        if self.init and self.config:
            raise UsageError("--config sets the shape of a new model; it cannot be combined with --init")
        check_sequence_length(self.max_seq_length)
        if self.max_predictions_per_seq < 1:
            raise UsageError(f"--max-predictions-per-seq must be at least 1, got {self.max_predictions_per_seq}")
        if not 0 < self.masked_lm_prob < 1:
            raise UsageError(f"--masked-lm-prob must be in (0, 1), got {self.masked_lm_prob}")
        if not 0 <= self.short_seq_prob <= 1:
            raise UsageError(f"--short-seq-prob must be in [0, 1], got {self.short_seq_prob}")
        for name in ("batch_size", "save_every", "keep_checkpoints", "log_every"):
            if getattr(self, name) < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        for name in ("max_steps", "decay_steps"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
        if self.warmup_steps is not None and self.warmup_steps < 0:
            raise UsageError(f"--warmup-steps must be >= 0, got {self.warmup_steps}")
        if self.epochs is not None and not self.epochs > 0:
            raise UsageError(f"--epochs must be positive, got {self.epochs}")
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise UsageError(f"--learning-rate must be positive, got {self.learning_rate}")
        if self.optimizer not in ("lamb", "adamw"):
            raise UsageError(f"--optimizer must be lamb or adamw, got '{self.optimizer}'")
        if self.precision not in PRECISIONS:
            raise UsageError(f"--precision must be one of {', '.join(PRECISIONS)}, got '{self.precision}'")
        if self.strategy not in STRATEGIES:
            raise UsageError(f"--strategy must be one of {', '.join(STRATEGIES)}, got '{self.strategy}'")
        if self.seed < 0:
            raise UsageError(f"--seed must be >= 0, got {self.seed}")
        self.max_time_seconds = parse_duration(self.max_time)
        if self.max_time_seconds is not None and self.max_time_seconds <= 0:
            raise UsageError(f"--max-time must be positive, got {self.max_time}")

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "max_time_seconds"}
