"""`finetune --ema`: dev selection and the saved model use a moving average of the weights (the default from
scratch); the average is the plain mean of the weights until its momentum is reached."""

import json

import numpy as np

from conftest import model_meta, run_albert, write_two_class_csv


def test_averaging_adamw_is_the_running_mean_then_an_ema():
    import keras

    from albert_cli.model.optimizers import AveragingAdamW, make_optimizer

    var = keras.Variable(np.zeros(4, "float32"))
    opt = make_optimizer("adamw", 0.1, 100, 0, ema_momentum=0.6)
    assert isinstance(opt, AveragingAdamW)
    opt.build([var])
    rng = np.random.default_rng(0)
    expected, seen = None, []
    for t in range(6):
        opt.apply_gradients([(keras.ops.convert_to_tensor(rng.normal(size=4).astype("float32")), var)])
        w = keras.ops.convert_to_numpy(var)
        seen.append(w)
        m = min(0.6, t / (t + 1))  # 0, 1/2 (the mean of two), then the momentum 0.6
        expected = w if expected is None else m * expected + (1 - m) * w
        if t <= 1:
            np.testing.assert_allclose(expected, np.mean(seen, 0), rtol=1e-6)
    average = keras.ops.convert_to_numpy(opt._model_variables_moving_average[0])
    np.testing.assert_allclose(average, expected, rtol=1e-5)
    assert not np.allclose(average, seen[-1])
    plain = make_optimizer("adamw", 0.1, 100, 0)
    assert not plain.use_ema and not isinstance(plain, AveragingAdamW)


def _training(path):
    return model_meta(path)["training"]


def _saved_and_raw_kernel(path):
    """The classifier kernel in the saved model, and the arrays of that shape in the last checkpoint."""
    from safetensors.numpy import load_file

    saved = load_file(str(path / "assets" / "model.safetensors"))["mean_pooling_classifier.weight"].T
    ckpt = sorted((path / "checkpoints").glob("ckpt-*.safetensors"))[-1]
    arrays = load_file(str(ckpt))
    model = [a for k, a in arrays.items() if k.startswith("model/") and a.shape == saved.shape]
    optimizer = [a for k, a in arrays.items() if k.startswith("optimizer/") and a.shape == saved.shape]
    assert len(model) == 1
    return saved, model[0], optimizer


def test_finetune_saves_the_moving_average(tmp_path):
    write_two_class_csv(tmp_path)
    common = ["d.csv", "--config", "tiny", "--max-steps", "5", "--lr", "1e-2", "--keep-checkpoints"]
    res = run_albert("finetune", *common, "-o", "avg", cwd=tmp_path)  # the default from scratch: 0.995
    assert res.returncode == 0, res.stderr
    assert _training(tmp_path / "avg")["ema"] == 0.995
    saved, raw, opt_arrays = _saved_and_raw_kernel(tmp_path / "avg")
    assert not np.allclose(saved, raw)  # not the last weights ...
    assert any(np.allclose(saved, a, atol=1e-6) for a in opt_arrays)  # ... but their average, kept by the optimizer

    off = run_albert("finetune", *common, "-o", "off", "--ema", "0", cwd=tmp_path)
    assert off.returncode == 0, off.stderr
    saved_off, raw_off, _ = _saved_and_raw_kernel(tmp_path / "off")
    np.testing.assert_allclose(saved_off, raw_off, atol=1e-6)
    np.testing.assert_allclose(raw_off, raw, atol=1e-5)  # the average does not change the training itself

    # With dev selection the kept model is the averaged one that was evaluated: `evaluate` gives its score.
    dev = run_albert("finetune", *common, "-o", "dev", "--dev", "d.csv", "--eval-every", "2", "--ema", "0.9",
                     cwd=tmp_path)
    assert dev.returncode == 0, dev.stderr
    summary = json.loads(dev.stdout.strip().splitlines()[-1])
    ev = run_albert("evaluate", "dev", "d.csv", "--json", cwd=tmp_path)
    assert ev.returncode == 0, ev.stderr
    assert abs(json.loads(ev.stdout)["accuracy"] - summary["best_dev"]) < 1e-9
    assert _training(tmp_path / "dev")["ema"] == 0.9

    cont = run_albert("finetune", "d.csv", "-o", "cont", "--init", "avg", "--max-steps", "2", cwd=tmp_path)
    assert cont.returncode == 0, cont.stderr
    assert _training(tmp_path / "cont")["ema"] == 0.0  # off by default with --init

    bad = run_albert("finetune", "d.csv", "-o", "bad", "--ema", "1", cwd=tmp_path)
    assert bad.returncode == 2 and "--ema must be at least 0 (off) and below 1, got 1.0" in bad.stderr
    assert "Traceback" not in bad.stderr and not (tmp_path / "bad").exists()
