"""`finetune --pooling`: mean pooling by default from scratch, the published [CLS] pooler on request; the model
directory records it, serves it, continues it with --init and embeds with it."""

import json

import numpy as np
import pytest

from conftest import assert_served, mean_pooled, model_meta, run_albert, write_two_class_csv

TEXTS = ["good fine item 3", "bad poor item 5", "fine good good"]


def _hf_config(path):
    return json.loads((path / "assets" / "config.json").read_text())


def test_pooling_default_option_and_continuation(tmp_path):
    write_two_class_csv(tmp_path)
    # --no-bow: ALBERT alone, so that the served logits are the pooled head's (tests/test_bow.py covers both).
    res = run_albert("finetune", "d.csv", "-o", "m", "--config", "tiny", "--max-steps", "4", "--no-bow", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "Gradients do not exist" not in res.stderr  # the unused tanh pooler is frozen, not left without a gradient
    m = tmp_path / "m"
    assert model_meta(m)["pooling"] == "mean"
    assert _hf_config(m)["architectures"] == ["AlbertModel"] and _hf_config(m)["albert_cli_pooling"] == "mean"

    # What `predict` serves is the mean-pooled head on our backbone, recomputed here from the assets.
    pred = run_albert("predict", "m", "-", "--all-scores", input="\n".join(TEXTS) + "\n", cwd=tmp_path)
    assert pred.returncode == 0, pred.stderr
    loaded, _, pooled = mean_pooled(m, TEXTS)
    assert_served(pred.stdout, pooled @ loaded.weights["classifier/kernel"] + loaded.weights["classifier/bias"],
                  model_meta(m)["labels"])

    # --init keeps the model's own pooling and its head; --pooling pooler starts a new published head.
    cont = run_albert("finetune", "d.csv", "-o", "m2", "--init", "m", "--max-steps", "2", cwd=tmp_path)
    assert cont.returncode == 0, cont.stderr
    assert "continuing from the classifier head" in cont.stderr and model_meta(tmp_path / "m2")["pooling"] == "mean"
    cls = run_albert("finetune", "d.csv", "-o", "m3", "--init", "m", "--pooling", "pooler", "--max-steps", "2",
                     cwd=tmp_path)
    assert cls.returncode == 0, cls.stderr
    assert "continuing from the classifier head" not in cls.stderr and model_meta(tmp_path / "m3")["pooling"] == "pooler"
    assert _hf_config(tmp_path / "m3")["architectures"] == ["AlbertForSequenceClassification"]
    assert "albert_cli_pooling" not in _hf_config(tmp_path / "m3")

    # embed uses the mean by default for a mean-pooled model (its tanh pooler was never trained).
    from albert_cli.inference.embed import Embedder

    from albert_cli.errors import UsageError

    default, mean = (Embedder(str(m), pooling=p).embed(TEXTS) for p in (None, "mean"))
    np.testing.assert_array_equal(default, mean)
    np.testing.assert_allclose(mean, pooled, atol=1e-5)
    with pytest.raises(UsageError, match="never trained"):  # asking for it is refused (issue 22, item 4)
        Embedder(str(m), pooling="pooler").embed(TEXTS)

    bad = run_albert("finetune", "d.csv", "-o", "m4", "--pooling", "max", cwd=tmp_path)
    assert bad.returncode == 2 and "--pooling must be one of pooler, mean, got 'max'" in bad.stderr
    assert "Traceback" not in bad.stderr and not (tmp_path / "m4").exists()
