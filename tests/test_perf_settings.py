"""Speed settings of the serving path: inference precision choice, TensorFlow import (issue #6)."""

import subprocess
import sys

import pytest

from albert_cli._tf import cpu_has_native_bf16, inference_precision
from albert_cli.errors import UsageError

ZEN4_FLAGS = "flags\t\t: fpu avx2 avx512f avx512_bf16 avx512_vnni\n"
OLD_FLAGS = "flags\t\t: fpu avx2 avx512f avx512_vnni\n"


def test_native_bf16_detection_from_cpu_flags():
    assert cpu_has_native_bf16(ZEN4_FLAGS)
    assert cpu_has_native_bf16("flags : amx_bf16 amx_tile\n")
    assert not cpu_has_native_bf16(OLD_FLAGS)
    assert not cpu_has_native_bf16("")


def test_inference_precision_choices(monkeypatch):
    monkeypatch.delenv("ALBERT_PRECISION", raising=False)
    assert inference_precision() == "fp32"  # exact by default
    monkeypatch.setenv("ALBERT_PRECISION", "BF16")
    assert inference_precision() == "bf16"
    assert inference_precision("float32") == "fp32"
    monkeypatch.setattr("albert_cli._tf.cpu_has_native_bf16", lambda: False)
    assert inference_precision("auto") == "fp32"
    monkeypatch.setattr("albert_cli._tf.cpu_has_native_bf16", lambda: True)
    assert inference_precision("auto") == "bf16"
    with pytest.raises(UsageError, match="^--precision must be one of"):
        inference_precision("fp16")
    monkeypatch.setenv("ALBERT_PRECISION", "fp16")
    with pytest.raises(UsageError, match=r"^\$ALBERT_PRECISION must be one of .*got 'fp16'"):
        inference_precision()


def test_tensorflow_import_leaves_sklearn_importable():
    """import_tf hides scikit-learn from TensorFlow's import only; it stays importable afterwards."""
    code = (
        "import sys\n"
        "from albert_cli._tf import import_tf\n"
        "import_tf()\n"
        "assert 'sklearn' not in sys.modules, 'scikit-learn was imported with TensorFlow'\n"
        "from sklearn.metrics import f1_score\n"
        "print(f1_score([0, 1], [0, 1]))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip().endswith("1.0")
