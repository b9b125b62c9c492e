"""AlbertLamb / schedule / make_optimizer against an independent numpy reference."""

from __future__ import annotations

import ast
import copy
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

keras = pytest.importorskip("keras")

from albert_cli.model.optimizers import (  # noqa: E402
    AlbertLamb,
    PolynomialDecayWithWarmup,
    make_optimizer,
)

ROOT = Path(__file__).resolve().parents[1]
EXCLUDED_NAMES = {"bias", "gamma", "beta"}  # in the tiny model below


# ---------------------------------------------------------------------------
# Independent reference: the update rule of the LAMB paper as implemented by
# ALBERT's lamb_optimizer.py (no bias correction; decay inside the ratio).
# ---------------------------------------------------------------------------
class RefLamb:
    def __init__(self, lr, wd=0.01, b1=0.9, b2=0.999, eps=1e-6, clip=None):
        self.lr, self.wd, self.b1, self.b2, self.eps, self.clip = lr, wd, b1, b2, eps, clip
        self.m, self.v = {}, {}

    def step(self, params: dict, grads: dict, excluded: set, lr=None):
        lr = self.lr if lr is None else lr
        grads = {k: g.astype(np.float64) for k, g in grads.items()}
        if self.clip is not None:
            gnorm = np.sqrt(sum(np.sum(g**2) for g in grads.values()))
            grads = {k: g * self.clip / max(gnorm, self.clip) for k, g in grads.items()}
        out, ratios = {}, {}
        for k, w in params.items():
            w = w.astype(np.float64)
            g = grads[k]
            m = self.b1 * self.m.get(k, 0.0) + (1 - self.b1) * g
            v = self.b2 * self.v.get(k, 0.0) + (1 - self.b2) * g * g
            self.m[k], self.v[k] = m, v
            u = m / (np.sqrt(v) + self.eps)
            if k not in excluded:
                u = u + self.wd * w
            r = 1.0
            if k not in excluded:
                wn, un = np.linalg.norm(w), np.linalg.norm(u)
                r = wn / un if (wn > 0 and un > 0) else 1.0
            ratios[k] = r
            out[k] = w - lr * r * u
        return out, ratios


def tiny_model(zero_kernel: bool = True):
    inp = keras.Input((5,), dtype="int32")
    x = keras.layers.Embedding(20, 8, name="word_embeddings")(inp)
    x = keras.layers.LayerNormalization(name="embeddings_layer_norm")(x)
    x = keras.layers.Dense(6, name="dense")(x)
    x = keras.layers.LayerNormalization(name="ln")(x)  # gamma/beta excluded by name only
    if zero_kernel:
        x = keras.layers.Dense(3, use_bias=False, kernel_initializer="zeros", name="zero_proj")(x)
    model = keras.Model(inp, x, name="tiny")
    # Non-trivial gamma/beta/bias so every rule is visible.
    rng = np.random.default_rng(7)
    for v in model.trainable_variables:
        if v.name in EXCLUDED_NAMES:
            v.assign(rng.normal(size=v.shape).astype("float32"))
    return model


def excluded_keys(model) -> set:
    return {v.path for v in model.trainable_variables if v.name in EXCLUDED_NAMES}


def params_of(model) -> dict:
    return {v.path: np.array(v.numpy()) for v in model.trainable_variables}


def random_grads(model, rng, scale=1.0) -> dict:
    return {
        v.path: (scale * rng.normal(size=v.shape)).astype("float32") for v in model.trainable_variables
    }


def apply(opt, model, grads: dict):
    opt.apply_gradients([(grads[v.path], v) for v in model.trainable_variables])


def assert_close(got: dict, want: dict, rtol=1e-6, atol=1e-7):
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=rtol, atol=atol, err_msg=k)


# ---------------------------------------------------------------------------
def test_matches_reference_over_several_steps():
    model = tiny_model()
    paths = [v.path for v in model.trainable_variables]
    assert "zero_proj/kernel" in paths and "dense/bias" in paths and "ln/gamma" in paths
    opt = AlbertLamb(learning_rate=0.01)
    ref = RefLamb(lr=0.01)
    rng = np.random.default_rng(0)
    params = params_of(model)
    excluded = excluded_keys(model)
    assert excluded == {"embeddings_layer_norm/gamma", "embeddings_layer_norm/beta", "dense/bias",
                        "ln/gamma", "ln/beta"}
    for _ in range(6):
        grads = random_grads(model, rng)
        apply(opt, model, grads)
        params, _ = ref.step(params, grads, excluded)
        assert_close(params_of(model), params)


def test_decay_and_ratio_rules_per_variable():
    model = tiny_model()
    opt = AlbertLamb(learning_rate=0.01, weight_decay_rate=0.01)
    by_path = {v.path: v for v in model.trainable_variables}
    for path in ("dense/bias", "ln/gamma", "ln/beta", "embeddings_layer_norm/gamma"):
        assert not opt.do_use_weight_decay(by_path[path]), path
        assert not opt.do_layer_adaptation(by_path[path]), path
    for path in ("dense/kernel", "word_embeddings/embeddings", "zero_proj/kernel"):
        assert opt.do_use_weight_decay(by_path[path]), path
        assert opt.do_layer_adaptation(by_path[path]), path

    before = params_of(model)
    grads = random_grads(model, np.random.default_rng(1))
    apply(opt, model, grads)
    after = params_of(model)
    lr, b1, b2, eps, wd = 0.01, 0.9, 0.999, 1e-6, 0.01

    def adam_u(g):  # first step, no bias correction
        g = g.astype(np.float64)
        return (1 - b1) * g / (np.sqrt((1 - b2) * g * g) + eps)

    # Bias: no decay, ratio 1.
    g = grads["dense/bias"]
    np.testing.assert_allclose(after["dense/bias"], before["dense/bias"] - lr * adam_u(g), rtol=1e-6)
    # Zero-initialised kernel: ||w|| = 0 -> ratio 1 (decay term is 0 too).
    g = grads["zero_proj/kernel"]
    np.testing.assert_allclose(after["zero_proj/kernel"], -lr * adam_u(g), rtol=1e-6, atol=1e-9)
    # Decayed kernel: w - lr * ||w||/||u|| * u with u = adam + wd * w.
    w = before["dense/kernel"].astype(np.float64)
    u = adam_u(grads["dense/kernel"]) + wd * w
    want = w - lr * np.linalg.norm(w) / np.linalg.norm(u) * u
    np.testing.assert_allclose(after["dense/kernel"], want, rtol=1e-6)
    # The trust ratio really rescales: the step norm is lr * ||w||.
    np.testing.assert_allclose(np.linalg.norm(after["dense/kernel"] - w), lr * np.linalg.norm(w), rtol=1e-5)


def test_zero_gradients_only_decay_non_excluded():
    model = tiny_model(zero_kernel=False)
    before = params_of(model)
    opt = AlbertLamb(learning_rate=0.1, weight_decay_rate=0.01)
    apply(opt, model, {k: np.zeros_like(w) for k, w in before.items()})
    after = params_of(model)
    for k in before:
        if k in excluded_keys(model):
            np.testing.assert_array_equal(after[k], before[k])
        else:  # u = wd*w, ratio = 1/wd  ->  w * (1 - lr)
            np.testing.assert_allclose(after[k], before[k] * 0.9, rtol=1e-6)


def test_custom_exclusions_and_layer_adaptation_default():
    model = tiny_model()
    by_path = {v.path: v for v in model.trainable_variables}
    opt = AlbertLamb(exclude_from_weight_decay=["embeddings"], exclude_normalization_params=False)
    assert not opt.do_use_weight_decay(by_path["word_embeddings/embeddings"])
    assert not opt.do_layer_adaptation(by_path["word_embeddings/embeddings"])  # defaults to same list
    assert opt.do_use_weight_decay(by_path["dense/bias"])
    assert opt.do_use_weight_decay(by_path["ln/gamma"])
    opt = AlbertLamb(exclude_from_layer_adaptation=["kernel"])
    assert opt.do_use_weight_decay(by_path["dense/kernel"])
    assert not opt.do_layer_adaptation(by_path["dense/kernel"])
    # An explicit layer-adaptation list replaces the default (as the original).
    assert opt.do_layer_adaptation(by_path["dense/bias"])
    assert not opt.do_layer_adaptation(by_path["ln/gamma"])  # gamma/beta name rule still on
    opt = AlbertLamb(weight_decay_rate=0.0)
    assert not opt.do_use_weight_decay(by_path["dense/kernel"])
    with pytest.raises(ValueError):
        AlbertLamb(weight_decay=0.01)


def test_global_clipnorm_applied():
    model = tiny_model()
    opt = AlbertLamb(learning_rate=0.01, global_clipnorm=1.0)
    ref = RefLamb(lr=0.01, clip=1.0)
    unclipped_ref = RefLamb(lr=0.01)
    # Same optimizer without clipping, fed gradients clipped by hand.
    model_manual = tiny_model()
    model_manual.set_weights(model.get_weights())
    opt_manual = AlbertLamb(learning_rate=0.01)
    rng = np.random.default_rng(3)
    params, excluded = params_of(model), excluded_keys(model)
    unclipped = dict(params)
    for scale in (100.0, 0.001, 50.0, 0.01):  # clipped, untouched, clipped, untouched
        grads = random_grads(model, rng, scale)
        apply(opt, model, grads)
        gnorm = np.sqrt(sum(np.sum(g.astype(np.float64) ** 2) for g in grads.values()))
        factor = 1.0 / max(gnorm, 1.0)
        apply(opt_manual, model_manual, {k: (g * factor).astype("float32") for k, g in grads.items()})
        params, _ = ref.step(params, grads, excluded)
        unclipped, _ = unclipped_ref.step(unclipped, grads, excluded)
        assert_close(params_of(model), params, rtol=2e-6)
        assert_close(params_of(model), params_of(model_manual), rtol=2e-6)
    # ...and clipping mattered: the unclipped trajectory is clearly different.
    diff = max(np.max(np.abs(params_of(model)[k] - unclipped[k])) for k in unclipped)
    assert diff > 1e-3


@pytest.mark.parametrize("power,end", [(1.0, 0.0), (2.0, 1e-5)])
def test_schedule_values(power, end):
    peak, total, warm = 1e-3, 100, 10
    s = PolynomialDecayWithWarmup(peak, total, warm, end_learning_rate=end, power=power)

    def decayed(step):
        return (peak - end) * (1 - min(step, total) / total) ** power + end

    expect = {
        0: 0.0,  # warm-up starts from 0
        5: peak * 5 / warm,  # mid warm-up
        9: peak * 9 / warm,
        10: decayed(10),  # warm-up end: decay counted from step 0, as the original
        55: decayed(55),  # mid-decay
        100: end,  # end
        150: end,  # stays at end
    }
    for step, want in expect.items():
        got = float(keras.ops.convert_to_numpy(s(step)))
        assert got == pytest.approx(want, rel=1e-5, abs=1e-10), step
    if power == 1.0:
        assert float(s(10)) == pytest.approx(0.9e-3, rel=1e-6)
        assert float(s(55)) == pytest.approx(0.45e-3, rel=1e-6)
    # No warm-up: pure polynomial decay from the peak.
    s0 = PolynomialDecayWithWarmup(peak, total, 0)
    assert float(s0(0)) == pytest.approx(peak)
    # The optimizer reads the schedule at its iteration count (first step lr = 0).
    model = tiny_model()
    before = params_of(model)
    opt = make_optimizer("lamb", peak, total, warm)
    apply(opt, model, random_grads(model, np.random.default_rng(0)))
    for k, w in params_of(model).items():
        np.testing.assert_array_equal(w, before[k])
    assert float(opt.learning_rate) == pytest.approx(peak * 1 / warm)


def test_get_config_round_trip():
    opt = AlbertLamb(
        learning_rate=PolynomialDecayWithWarmup(2e-3, 1000, 100, end_learning_rate=1e-6, power=2.0),
        weight_decay_rate=0.02,
        epsilon=1e-7,
        exclude_from_weight_decay=["foo", "bias"],
        exclude_from_layer_adaptation=["bar"],
        global_clipnorm=1.0,
    )
    config = opt.get_config()
    json.dumps(config)  # serialisable
    clone = AlbertLamb.from_config(copy.deepcopy(config))  # from_config mutates its argument
    assert clone.get_config() == config
    assert clone.exclude_from_layer_adaptation_patterns == ["bar"]
    assert isinstance(clone._learning_rate, PolynomialDecayWithWarmup)
    assert float(clone._learning_rate(500)) == pytest.approx(float(opt._learning_rate(500)))
    # Through Keras' generic (de)serialisation too.
    clone2 = keras.optimizers.deserialize(keras.optimizers.serialize(opt))
    assert type(clone2) is AlbertLamb and clone2.get_config() == config
    s = PolynomialDecayWithWarmup(1e-3, 10, 2)
    assert PolynomialDecayWithWarmup.from_config(s.get_config()).get_config() == s.get_config()


def test_make_optimizer():
    lamb = make_optimizer("lamb", 1e-3, 100, 10)
    assert isinstance(lamb, AlbertLamb)
    assert lamb.global_clipnorm == 1.0 and lamb.epsilon == 1e-6 and lamb.weight_decay_rate == 0.01
    assert lamb.beta_1 == 0.9 and lamb.beta_2 == 0.999
    adamw = make_optimizer("adamw", 1e-3, 100, 0)
    assert isinstance(adamw, keras.optimizers.AdamW)
    assert adamw.global_clipnorm == 1.0 and adamw.epsilon == 1e-6 and adamw.weight_decay == 0.01
    # Zero gradients: the Adam part is 0, so only decayed variables move.
    model = tiny_model(zero_kernel=False)
    before = params_of(model)
    apply(adamw, model, {k: np.zeros_like(w) for k, w in before.items()})
    after = params_of(model)
    for k in before:
        if k in excluded_keys(model):
            np.testing.assert_array_equal(after[k], before[k], err_msg=k)
        else:
            np.testing.assert_allclose(after[k], before[k] * (1 - 1e-3 * 0.01), rtol=1e-6, err_msg=k)
    with pytest.raises(ValueError):
        make_optimizer("sgd", 1e-3, 100, 10)


def test_module_uses_no_tensorflow():
    tree = ast.parse((ROOT / "albert_cli" / "model" / "optimizers.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            assert not any(a.name.split(".")[0] == "tensorflow" for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert (node.module or "").split(".")[0] not in {"tensorflow", "albert_cli"}
        elif isinstance(node, ast.Name):
            assert node.id != "tf"


JAX_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import numpy as np
    import keras
    assert keras.backend.backend() == "jax", keras.backend.backend()
    from albert_cli.model.optimizers import AlbertLamb, make_optimizer

    w0 = np.array(json.loads(sys.argv[1]), dtype="float32")
    g0 = np.array(json.loads(sys.argv[2]), dtype="float32")
    layer = keras.layers.Dense(3, use_bias=True, name="dense")
    layer.build((None, 4))
    layer.kernel.assign(w0)
    opt = AlbertLamb(learning_rate=0.01)
    opt.apply_gradients([(g0, layer.kernel), (np.ones(3, "float32"), layer.bias)])
    out = {"kernel": np.asarray(layer.kernel.numpy()).tolist(), "bias": np.asarray(layer.bias.numpy()).tolist()}

    # A jit-compiled fit() with the schedule (stateless_apply path).
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2), keras.layers.LayerNormalization()])
    model.compile(optimizer=make_optimizer("lamb", 1e-2, 10, 2), loss="mse")
    x = np.random.default_rng(0).normal(size=(16, 4)).astype("float32")
    hist = model.fit(x, x[:, :2], epochs=3, batch_size=8, verbose=0)
    out["loss"] = hist.history["loss"]
    out["iterations"] = int(model.optimizer.iterations.numpy())
    print("RESULT" + json.dumps(out))
    """
)


def test_runs_on_jax_backend():
    pytest.importorskip("jax")
    rng = np.random.default_rng(11)
    w0 = rng.normal(size=(4, 3)).astype("float32")
    g0 = rng.normal(size=(4, 3)).astype("float32")
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, "-c", JAX_SCRIPT, json.dumps(w0.tolist()), json.dumps(g0.tolist())],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")][-1]
    out = json.loads(line[len("RESULT"):])
    ref = RefLamb(lr=0.01)
    want, _ = ref.step({"kernel": w0, "bias": np.zeros(3, "float32")},
                       {"kernel": g0, "bias": np.ones(3, "float32")}, excluded={"bias"})
    np.testing.assert_allclose(np.array(out["kernel"]), want["kernel"], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(np.array(out["bias"]), want["bias"], rtol=1e-6)
    assert out["iterations"] == 6 and all(np.isfinite(out["loss"]))
