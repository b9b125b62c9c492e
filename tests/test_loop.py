"""The one training loop and its callbacks, in process: steps, checkpoints, resume state, early stop, Ctrl-C,
divergence; on TensorFlow here and on JAX in a subprocess (the Keras backend is fixed per process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from albert_cli.errors import Interrupted, ModelError


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
