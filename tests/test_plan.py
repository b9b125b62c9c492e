"""`albert_cli.training.finetune.plan`, in process: every default resolved once, from scratch and with --init."""

from __future__ import annotations

import dataclasses
import types

import pytest

from albert_cli.errors import UsageError
from test_preprocessor import _Tok


def _plan_inputs(n_train=100, init=None, **options):
    from albert_cli.training.finetune.data import FinetuneData
    from albert_cli.training.finetune.options import FinetuneOptions
    from albert_cli.training.finetune.tokenizer import TokenizerChoice

    o = FinetuneOptions(train="t.csv", output="m", **options).validate()
    train = types.SimpleNamespace(texts=["a bb"] * n_train, pairs=None, __len__=None)
    data = types.SimpleNamespace(train=_Sized(train, n_train), num_outputs=3)
    tok = _Tok()
    tok.vocab_size = 50
    return o, init, data, TokenizerChoice(tok, {"kind": "sentencepiece"}, None), FinetuneData


class _Sized:
    def __init__(self, inner, n):
        self.texts, self.pairs, self._n = inner.texts, inner.pairs, n

    def __len__(self):
        return self._n


def test_plan_resolves_the_scratch_defaults_once():
    from albert_cli.training.finetune.plan import SCRATCH_MAX_STEPS, make_plan

    o, init, data, choice, _ = _plan_inputs(n_train=100_000, config="tiny")
    plan = make_plan(o, init, data, choice)
    assert (plan.epochs, plan.learning_rate, plan.ema, plan.pooling, plan.bow) == (
        round(SCRATCH_MAX_STEPS / 3125, 2), 5e-4, 0.995, "mean", True)
    assert plan.total_steps == SCRATCH_MAX_STEPS and plan.warmup_steps == 150
    assert plan.metric == "accuracy" and plan.eval_every == plan.steps_per_epoch == 3125
    assert plan.max_seq_length == 16  # the 99th percentile (4 tokens) rounded up, at least 16
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.epochs = 1


def test_plan_takes_the_init_models_own_head_settings():
    from albert_cli.model.config import AlbertConfig
    from albert_cli.training.finetune.plan import InitModel, make_plan

    config = AlbertConfig.resolve("tiny")
    config.vocab_size = 50
    weights = types.SimpleNamespace(config=config, pooling="pooler", bow_buckets=0)
    o, _, data, choice, _ = _plan_inputs(init="x", task="multi_label", max_seq_length=24, max_steps=7)
    plan = make_plan(o, InitModel(weights, None), data, choice)
    assert (plan.epochs, plan.learning_rate, plan.ema, plan.pooling, plan.bow) == (3, 3e-5, 0.0, "pooler", False)
    assert plan.total_steps == 7 and plan.metric == "micro_f1" and plan.max_seq_length == 24
    o, _, data, choice, _ = _plan_inputs(init="x", max_seq_length=4000)
    with pytest.raises(UsageError, match="exceeds the model's"):
        make_plan(o, InitModel(weights, None), data, choice)
