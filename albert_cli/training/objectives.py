"""What the runtimes minimise: the fine-tuning losses and ALBERT's pretraining objective (keras.ops, any backend).

An objective is ``objective(model, batch, training) -> {"loss": scalar, ...}``: the runtime differentiates
``loss`` and reports every entry as a float after the step.
"""

from __future__ import annotations

from keras import ops

INPUTS = ("token_ids", "segment_ids", "padding_mask")


def task_loss(task: str, y, logits, w):
    """The weighted mean loss of a classifier head: softmax CE, mean sigmoid CE over labels, or squared error."""
    logits = ops.cast(logits, "float32")
    if task == "single_label":
        per = ops.sparse_categorical_crossentropy(y, logits, from_logits=True)
    elif task == "multi_label":
        per = ops.mean(ops.binary_crossentropy(y, logits, from_logits=True), axis=-1)
    else:
        per = ops.square(ops.squeeze(logits, -1) - y)
    return ops.sum(per * w) / ops.sum(w)


def finetune_objective(task: str):
    """The fine-tuning objective: the head's loss, or with the bag of n-grams the sum of both members' losses.

    The batch holds the model inputs plus ``y`` (targets) and ``w`` (example weights; 0 for padding rows).
    """

    def objective(model, batch, training):
        inputs = {k: batch[k] for k in INPUTS}
        if model.members is not None:  # ALBERT and the bag of n-grams, each with its own loss
            losses = [task_loss(task, batch["y"], m, batch["w"]) for m in model.members(inputs, training=training)]
            loss = losses[0]
            for extra in losses[1:]:
                loss = loss + extra
        else:
            loss = task_loss(task, batch["y"], model(inputs, training=training), batch["w"])
        return {"loss": loss}

    return objective


def pretraining_inputs(features: dict) -> dict:
    """The `AlbertPretrainer` inputs of a feature batch."""
    return {
        "token_ids": features["token_ids"],
        "segment_ids": features["segment_ids"],
        "padding_mask": features["padding_mask"],
        "mask_positions": features["masked_lm_positions"],
    }


def pretraining_losses(outputs: dict, features: dict) -> dict:
    """The original ``run_pretraining.py`` objective, in float32, with accuracies.

    ``mlm_loss = sum(CE at masked positions * weights) / (sum(weights) + 1e-5)``, ``sop_loss`` the mean CE over the
    two sentence orders, ``loss = mlm_loss + sop_loss``.
    """
    mlm_logits = ops.cast(outputs["mlm_logits"], "float32")
    sop_logits = ops.cast(outputs["sop_logits"], "float32")
    ids = ops.cast(features["masked_lm_ids"], "int32")
    weights = ops.cast(features["masked_lm_weights"], "float32")
    labels = ops.cast(features["sentence_order_label"], "int32")
    denominator = ops.sum(weights) + 1e-5
    mlm_ce = ops.sparse_categorical_crossentropy(ids, mlm_logits, from_logits=True)
    mlm_loss = ops.sum(mlm_ce * weights) / denominator
    mlm_hit = ops.cast(ops.equal(ops.cast(ops.argmax(mlm_logits, axis=-1), "int32"), ids), "float32")
    sop_loss = ops.mean(ops.sparse_categorical_crossentropy(labels, sop_logits, from_logits=True))
    sop_hit = ops.cast(ops.equal(ops.cast(ops.argmax(sop_logits, axis=-1), "int32"), labels), "float32")
    return {
        "loss": mlm_loss + sop_loss,
        "mlm_loss": mlm_loss,
        "mlm_accuracy": ops.sum(mlm_hit * weights) / denominator,
        "sop_loss": sop_loss,
        "sop_accuracy": ops.mean(sop_hit),
    }


def pretraining_objective(model, batch, training):
    """Masked LM + sentence order on a pretraining feature batch."""
    return pretraining_losses(model(pretraining_inputs(batch), training=training), batch)


def clip_by_group_norm(grads: list, groups: list, clip_norm: float) -> list:
    """Global-norm clipping within each group of gradients (`groups[i]` names the group of `grads[i]`).

    Fine-tuning with the bag of n-grams clips each member to its own norm: the bag's gradients (its logits are
    scaled up) would otherwise set the global norm and shrink ALBERT's steps.
    """
    out = list(grads)
    for group in sorted(set(groups)):
        idx = [i for i, g in enumerate(groups) if g == group]
        norm = ops.sqrt(sum(ops.sum(ops.square(grads[i])) for i in idx))
        scale = clip_norm / ops.maximum(norm, clip_norm)
        for i in idx:
            out[i] = grads[i] * ops.cast(scale, grads[i].dtype)
    return out
