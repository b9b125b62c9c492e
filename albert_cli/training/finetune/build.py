"""Build what a plan describes: the preprocessor, the classifier and its optimizer."""

from __future__ import annotations

from dataclasses import dataclass

from albert_cli.console import info
from albert_cli.model.backbone import AlbertBackbone
from albert_cli.model.heads import AlbertClassifier, bow_buckets_for
from albert_cli.model.optimizers import make_optimizer
from albert_cli.text.preprocessor import Preprocessor
from albert_cli.text.words import word_boundaries
from albert_cli.training.finetune.plan import CLIP_NORM, FinetunePlan, InitModel
from albert_cli.weights.loader import apply_to


@dataclass(frozen=True)
class Built:
    """The run's preprocessor, model and optimizer."""

    preprocessor: Preprocessor
    model: object
    optimizer: object


def _continues_head(plan: FinetunePlan, init: InitModel, bow_buckets: int, labels: list) -> bool:
    """Whether the --init model's classifier head fits this run (same task, pooling, bag and labels)."""
    meta = init.meta
    return (
        "classifier" in init.weights.heads
        and meta is not None
        and meta.task == plan.options.task
        and meta.pooling == plan.pooling
        and init.weights.bow_buckets == bow_buckets
        and meta.labels == labels
    )


def build_model(plan: FinetunePlan, init: InitModel | None, tokenizer, labels: list):
    """The classifier of the plan, with the --init weights (and its head when it fits) applied."""
    o = plan.options
    bow_buckets = 0
    if plan.bow:
        bow_buckets = (init is not None and init.weights.bow_buckets) or bow_buckets_for(plan.num_outputs)
    model = AlbertClassifier(
        AlbertBackbone(plan.config), num_labels=plan.num_outputs, task=o.task,
        dropout=plan.config.hidden_dropout_prob if o.dropout is None else o.dropout,
        pooling=plan.pooling, bow_buckets=bow_buckets,
        window_pooling=plan.windows.pooling if plan.windows else None,
        window_overlap=plan.windows.overlap(plan.max_seq_length) if plan.windows else 0,
    )
    if init is not None:
        head_ok = _continues_head(plan, init, bow_buckets, labels)
        apply_to(model, init.weights, heads=("classifier",) if head_ok else ())
        if head_ok:
            info("continuing from the classifier head of the --init model (same labels)")
    if bow_buckets:
        model.get_layer("bow").set_boundaries(word_boundaries(tokenizer))
    return model


def build_optimizer(plan: FinetunePlan, model):
    """AdamW with warm-up and linear decay; a moving average of the weights with --ema; clipping to norm 1
    (per member with the bag: see `albert_cli.training.objectives.clip_by_group_norm`)."""
    return make_optimizer(
        "adamw", plan.learning_rate, plan.total_steps, plan.warmup_steps, weight_decay=plan.options.weight_decay,
        ema_momentum=plan.ema or None, clipnorm=None if model.members is not None else CLIP_NORM,
    )


def build(plan: FinetunePlan, init: InitModel | None, tokenizer, labels: list) -> Built:
    """Preprocessor, model and optimizer for `plan`."""
    preprocessor = Preprocessor(tokenizer, plan.max_seq_length, plan.config.max_position_embeddings, plan.windows)
    model = build_model(plan, init, tokenizer, labels)
    return Built(preprocessor, model, build_optimizer(plan, model))
