"""In-process unit tests of the training rooms: the run directory, the preprocessor, the plan, the one loop and
its callbacks (on TensorFlow here, on JAX in a subprocess: the backend is fixed per process)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from albert_cli.errors import Interrupted, ModelError, UsageError

# ---------------------------------------------------------------------------------------------- run directory


def test_run_dir_checks_opens_commits_and_drops_the_training_state(tmp_path):
    from albert_cli.training.rundir import RunDir

    out = tmp_path / "m"
    out.mkdir()
    (out / "x").write_text("old")
    with pytest.raises(UsageError, match="not empty"):
        RunDir(out).check()
    with pytest.raises(UsageError, match="nothing to resume"):
        RunDir(tmp_path / "fresh", resume=True).check()
    run = RunDir(out, overwrite=True)
    run.check()
    staging = run.open()
    assert staging == tmp_path / "m.partial" and staging.is_dir()
    run.checkpoints.mkdir()
    (run.checkpoints / "ckpt-1.json").write_text("{}")
    (staging / "model.txt").write_text("new")
    run.commit(keep_checkpoints=False)
    assert (out / "model.txt").read_text() == "new" and not (out / "x").exists()
    assert not (out / "checkpoints").exists() and not staging.exists()

    kept = RunDir(tmp_path / "k")
    kept.open()
    kept.checkpoints.mkdir()
    (kept.checkpoints / "ckpt-1.json").write_text("{}")
    kept.commit(keep_checkpoints=True)
    assert (tmp_path / "k" / "checkpoints" / "ckpt-1.json").is_file()


def test_run_dir_keeps_a_failed_staging_only_with_a_checkpoint(tmp_path):
    from albert_cli.training.rundir import RunDir

    empty = RunDir(tmp_path / "a")
    empty.open()
    empty.discard_if_empty()
    assert not (tmp_path / "a.partial").exists()
    resumable = RunDir(tmp_path / "b")
    resumable.open()
    resumable.checkpoints.mkdir()
    (resumable.checkpoints / "ckpt-3.json").write_text("{}")
    resumable.discard_if_empty()
    assert (tmp_path / "b.partial" / "checkpoints" / "ckpt-3.json").is_file()


# ----------------------------------------------------------------------------------------------- preprocessor


class _Tok:
    """Whitespace tokenizer with ids = word lengths + 10 (enough to check packing)."""

    cls_id, sep_id = 2, 3

    def encode_batch(self, texts):
        return [[len(w) + 10 for w in t.split()] for t in texts]


def test_sequence_length_is_checked_in_one_place():
    from albert_cli.text.preprocessor import Preprocessor, check_sequence_length, choose_sequence_length

    assert check_sequence_length(None) is None and check_sequence_length(64, 512) == 64
    with pytest.raises(UsageError, match="between 8"):
        check_sequence_length(4)
    with pytest.raises(UsageError, match="exceeds the model's 32 positions"):
        Preprocessor(_Tok(), 64, positions=32)
    assert choose_sequence_length(np.array([5, 9, 30]), cap=128) % 8 == 0
    assert choose_sequence_length(np.array([500] * 10), cap=128) == 128


def test_preprocessor_packs_and_truncates_to_its_length():
    from albert_cli.text.preprocessor import Preprocessor, pad_batch

    pre = Preprocessor(_Tok(), sequence_length=8)
    (ids, seg), (ids2, seg2) = pre.encode(["a bb ccc", " ".join(["w"] * 20)])
    assert ids.tolist() == [2, 11, 12, 13, 3] and seg.tolist() == [0] * 5
    assert len(ids2) == 8 and ids2[0] == 2 and ids2[-1] == 3
    (pa, sa), = pre.encode(["a"], ["bb"])
    assert pa.tolist() == [2, 11, 3, 12, 3] and sa.tolist() == [0, 0, 0, 1, 1]
    batch = pad_batch(pre.encode(["a", "a bb ccc"]), [0, 1], multiple=8, rows=3)
    assert batch["token_ids"].shape == (3, 8) and batch["padding_mask"].sum() == 3 + 5


# ----------------------------------------------------------------------------------------------------- plan


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


# ------------------------------------------------------------------------------------------ loop and callbacks

TOY = r'''
import json, sys
import numpy as np
import keras
from keras import ops
from albert_cli.training.loop import Callback, Trainer
from albert_cli.training.callbacks import Checkpointing
from albert_cli.training.runtime import make_runtime
from albert_cli.training.state import TrainState, latest_checkpoint, restore_checkpoint

def toy(directory, total, stop_at=None):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, kernel_initializer="zeros")])
    runtime = make_runtime("none")
    optimizer = runtime.compile(model, keras.optimizers.SGD(0.1),
                                lambda m, b, training: {"loss": ops.mean(ops.square(m(b["x"], training=training)[:, 0] - b["y"]))})
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 3)).astype("float32")
    y = (x @ np.array([1.0, -2.0, 0.5], "float32")).astype("float32")
    def batches():
        epoch = 0
        while True:
            for b in range(4):
                yield epoch, b, {"x": x[b * 16:(b + 1) * 16], "y": y[b * 16:(b + 1) * 16]}, 16
            epoch += 1
    class Stop(Callback):
        def on_step_end(self, event):
            if stop_at and event.state.step == stop_at:
                event.state.stop_reason = "test"
    losses = []
    class Record(Callback):
        def on_step_end(self, event):
            losses.append(event.metrics["loss"])
    ckpt = Checkpointing(directory, model, optimizer, every=5, keep=2, before_save=runtime.sync)
    state = Trainer(runtime, [Record(), Stop(), ckpt], total).fit(batches(), TrainState())
    runtime.sync()
    return model, optimizer, state, losses

if __name__ == "__main__":
    model, optimizer, state, losses = toy(sys.argv[1], 30)
    print(json.dumps({"kernel": np.asarray(model.weights[0]).ravel().tolist(), "steps": state.step,
                      "epoch": state.epoch, "first": losses[0], "last": losses[-1],
                      "checkpoint": latest_checkpoint(sys.argv[1])}))
'''


@pytest.fixture(scope="module")
def toy_module(tmp_path_factory):
    path = tmp_path_factory.mktemp("toy") / "toy_training.py"
    path.write_text(TOY)
    sys.path.insert(0, str(path.parent))
    import toy_training

    return toy_training


def test_loop_trains_checkpoints_and_resumes_the_same_state(toy_module, tmp_path):
    from albert_cli.training.state import latest_checkpoint, restore_checkpoint

    model, optimizer, state, losses = toy_module.toy(tmp_path / "c", 30)
    assert state.step == 30 and (state.epoch, state.batch_in_epoch) == (7, 2)
    assert losses[-1] < losses[0] / 20
    assert latest_checkpoint(tmp_path / "c") == 30
    assert sorted(p.name for p in (tmp_path / "c").glob("*.json")) == ["ckpt-25.json", "ckpt-30.json"]
    restored = restore_checkpoint(tmp_path / "c", 30, model, optimizer)
    assert restored == state


def test_loop_stops_when_a_callback_asks(toy_module, tmp_path):
    _, _, state, losses = toy_module.toy(tmp_path / "c", 30, stop_at=7)
    assert state.step == 7 and len(losses) == 7 and state.stop_reason == "test"
    data = json.loads((tmp_path / "c" / "ckpt-7.json").read_text())
    assert data["step"] == 7 and "stop_reason" not in data  # saved at the early stop


def test_loop_saves_on_interrupt_and_refuses_a_diverged_loss(tmp_path):
    from albert_cli.training.callbacks import Checkpointing
    from albert_cli.training.loop import Trainer
    from albert_cli.training.state import TrainState, latest_checkpoint

    class Runtime:
        def step(self, batch, stop=False):
            return {"loss": batch["loss"], "stop": 0.0}

    def batches(values):
        for i, v in enumerate(values):
            if v is Interrupted:
                raise Interrupted(2)
            yield 0, i, {"loss": v}, 1

    model = types.SimpleNamespace(weights=[np.zeros(2, np.float32)])
    ckpt = Checkpointing(tmp_path / "c", model, None, every=100, announce=False)
    with pytest.raises(Interrupted):
        Trainer(Runtime(), [ckpt], None).fit(batches([1.0, 0.5, Interrupted]), TrainState())
    assert latest_checkpoint(tmp_path / "c") == 2
    with pytest.raises(ModelError, match="diverged at step 2"):
        Trainer(Runtime(), [], None).fit(batches([1.0, float("nan")]), TrainState())


def test_the_one_loop_runs_on_jax_with_the_same_result(toy_module, tmp_path):
    pytest.importorskip("jax")
    model, _, state, _ = toy_module.toy(tmp_path / "tf", 30)
    script = Path(toy_module.__file__)
    env = dict(os.environ, KERAS_BACKEND="jax", PYTHONPATH=str(script.parent))
    res = subprocess.run([sys.executable, str(script), str(tmp_path / "jax")], capture_output=True, text=True,
                         env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    jax = json.loads(res.stdout.strip().splitlines()[-1])
    assert jax["steps"] == 30 and jax["checkpoint"] == 30 and jax["last"] < jax["first"] / 20
    np.testing.assert_allclose(jax["kernel"], np.asarray(model.weights[0]).ravel(), rtol=1e-4, atol=1e-5)
