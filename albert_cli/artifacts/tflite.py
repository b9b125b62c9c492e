"""``albert export``: a model directory copied for deployment, or converted to TFLite (LiteRT).

A TFLite model directory ``OUT`` holds

* ``model.tflite`` - the ``classify_ids`` path of the SavedModel: int32
  ``token_ids`` / ``segment_ids`` / ``padding_mask`` ``[batch, seq]`` (both
  dimensions dynamic) in, float32 ``probabilities`` ``[batch, num_labels]``
  (softmax, or sigmoid for multi-label) or ``value`` ``[batch]`` (regression)
  out. Only TFLite builtin ops: it runs on the plain LiteRT runtime.
* ``assets/albert_cli.json`` - the model's metadata, unchanged;
* ``assets/spiece.model`` (+ ``spiece.json``) or ``assets/vocab.txt`` - the
  tokenizer (texts are tokenized in Python: ``albert_cli.inference.lite``);
* ``assets/export.json`` - how it was exported (source, quantization, the
  largest difference to the SavedModel on random ids, and ``check``: the
  share of the SavedModel's labels kept on real texts, see
  ``albert_cli.artifacts.checkset``).

Nothing here imports TensorFlow at import time.
"""

from __future__ import annotations

import json
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from albert_cli import __version__
from albert_cli._tf import _quiet_stderr_fd, import_tf
from albert_cli.artifacts.checkset import CHECK_SIZE, agreement, read_check_texts, sample
from albert_cli.artifacts.graph import ids_function
from albert_cli.artifacts.savedmodel import copy_saved_model
from albert_cli.console import info
from albert_cli.data.readers import read_dataset
from albert_cli.errors import DataError, ModelError, UsageError
from albert_cli.inference.base import output_key
from albert_cli.inference.lite import INPUT_NAMES, Packer, Runner, first_line, make_interpreter
from albert_cli.text.preprocessor import run_length_grouped
from albert_cli.artifacts.modeldir import (
    ASSETS, META_FILE, TFLITE_FILE, ModelMeta, atomic_write_text, commit, discard_if_empty, is_tflite_dir,
    load_saved_model, open_model_dir, prepare_output,
)

FORMATS = ("saved_model", "tflite")
QUANTIZE_MODES = ("none", "dynamic", "float16", "int8")
EXPORT_FILE = "export.json"  # in assets/ of an export
DEFAULT_CALIBRATION_SIZE = CHECK_SIZE
DEFAULT_MIN_AGREEMENT = 0.99  # share of the SavedModel's labels an export must keep on the check texts
NONE_TOLERANCE = 1e-3  # largest output difference a float32 conversion may show on the check inputs


# ------------------------------------------------------------------ inputs
def _calibration_batches(packer: Packer, texts: list[str], pairs: list[str] | None):
    """Representative inputs for int8: one example per sample, all of one shape.

    TFLite's calibrator does not re-derive shape-dependent tensors (the
    position embeddings) when the input shape changes, so every sample has the
    same length: the median packed length of the calibration texts. Longer
    texts are truncated to it; shorter ones are left out, so no sample holds
    padding (its -10000 attention bias would swamp the activation ranges).
    """
    examples = packer.encode(texts, pairs)
    lengths = np.asarray([packer.packed_length(e) for e in examples])
    width = min(int(np.median(lengths)), packer.max_seq_length)
    keep = [e for e, n in zip(examples, lengths) if n >= width]
    return [packer.pack([e], max_seq_length=width) for e in keep], width


def read_calibration(path, meta: ModelMeta, text_column=None, text_pair_column=None, limit=CHECK_SIZE):
    """Up to `limit` texts (and pairs) from a CSV/TSV/JSONL/txt file, a seeded sample when there are more."""
    cols = meta.columns or {}
    ds = read_dataset(
        path,
        text_column=text_column or cols.get("text") or "text",
        text_pair_column=(text_pair_column or cols.get("text_pair")) if meta.pair else None,
        label_column=None,
        skip_bad_rows=True,
    )
    if len(ds) == 0:
        raise DataError(f"{ds.name}: no texts to calibrate with")
    return sample(ds.texts, ds.pairs, limit)


def _check_inputs(packer: Packer, vocab_size: int):
    """Deterministic check batches (random ids, with padding) of two shapes."""
    rng = np.random.default_rng(1234)
    batches = []
    for batch, width in ((3, min(16, packer.max_seq_length)), (2, min(40, packer.max_seq_length))):
        rows = []
        for b in range(batch):
            n = max(0, width - 2 - 5 * b)
            rows.append([int(x) for x in rng.integers(5, max(6, vocab_size), n)])
        batches.append(packer.pack(rows))
    return batches


# ------------------------------------------------------------------ conversion
def _converter(tf, concrete, quantize: str, samples):
    """A ``TFLiteConverter`` for builtin ops only, set up for `quantize` (`samples`: int8 calibration)."""
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantize in ("dynamic", "float16", "int8"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if quantize == "int8":

        def representative():
            for packed in samples:
                yield [packed[name] for name in INPUT_NAMES]

        converter.representative_dataset = representative
    return converter


def _convert(converter, model_dir) -> bytes:
    try:
        with _quiet_stderr_fd(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return converter.convert()
    except Exception as exc:  # ConverterError: unsupported ops, ...
        text = str(exc)
        ops = [ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.strip().startswith("TF Select ops:")]
        detail = f"ops that are not TFLite builtins: {ops[0]}" if ops else first_line(exc)
        raise ModelError(f"{model_dir}: cannot convert to TFLite ({type(exc).__name__}: {detail})") from None


def _largest_difference(tf, loaded, meta: ModelMeta, packer: Packer, content: bytes) -> float:
    """The TFLite model against the SavedModel's ``classify_ids`` on the same ids: the largest difference."""
    signature = loaded.signatures["classify_ids"]
    key = output_key(meta)
    runner = Runner(make_interpreter(content=content), "the converted model")
    worst = 0.0
    for packed in _check_inputs(packer, packer.tokenizer.vocab_size):
        want = signature(**{name: tf.constant(packed[name]) for name in INPUT_NAMES})[key].numpy()
        got = runner(packed).reshape(want.shape)
        worst = max(worst, float(np.abs(got - want).max()))
    return worst


@dataclass(frozen=True)
class CheckSet:
    """Real texts an export is checked on (and int8 calibrated with), and where they came from."""

    texts: list[str]
    pairs: list[str] | None
    source: str


def _check_on_texts(tf, loaded, meta: ModelMeta, packer: Packer, content: bytes, check: CheckSet):
    """The SavedModel's ``classify_ids`` and the TFLite model on the same packed check texts: their agreement."""
    signature, key = loaded.signatures["classify_ids"], output_key(meta)
    runner = Runner(make_interpreter(content=content), "the converted model")
    examples = packer.encode(check.texts, check.pairs)

    def run_batch(idx):  # both models on the same packed batch
        packed = packer.pack([examples[i] for i in idx])
        want = signature(**{name: tf.constant(packed[name]) for name in INPUT_NAMES})[key].numpy()
        return {"want": want, "got": runner(packed).reshape(want.shape)}

    out = run_length_grouped([packer.packed_length(e) for e in examples], 16, run_batch)
    return agreement(meta, out["want"], out["got"], check.source)


def _refuse_below(model_dir, quantize: str, found, min_agreement: float) -> None:
    if found.label_agreement >= min_agreement:
        return
    instead = {"int8": "--quantize dynamic", "dynamic": "--quantize float16"}.get(quantize, "--quantize none")
    raise ModelError(
        f"{model_dir}: --quantize {quantize} keeps {found.label_agreement:.1%} of the SavedModel's labels on "
        f"{found.texts} check texts ({found.source}), below --min-agreement {min_agreement:.1%}; nothing written "
        f"(use {instead}, or lower --min-agreement)"
    )


def convert_to_tflite(model_dir: Path, meta: ModelMeta, quantize: str, check: CheckSet | None = None,
                      min_agreement: float = DEFAULT_MIN_AGREEMENT) -> tuple[bytes, dict]:
    """The ``model.tflite`` bytes for a SavedModel directory, and facts for ``export.json``.

    Args:
        model_dir: a SavedModel model directory.
        meta: its metadata.
        quantize: one of ``QUANTIZE_MODES``.
        check: texts the result is checked on (needed for quantized modes), and ``int8`` calibrated with.
        min_agreement: refuse (`ModelError`) a result that keeps a smaller share of the SavedModel's labels.
    """
    tf = import_tf()
    loaded = load_saved_model(model_dir)
    packer = Packer(model_dir, meta)
    concrete = ids_function(tf, loaded, output_key(meta), INPUT_NAMES, model_dir)
    facts: dict = {}
    samples = None
    if quantize == "int8":
        samples, width = _calibration_batches(packer, check.texts, check.pairs)
        facts["calibration"] = {"examples": len(samples), "length": width}
    content = _convert(_converter(tf, concrete, quantize, samples), model_dir)
    worst = _largest_difference(tf, loaded, meta, packer, content)
    facts["check_max_abs_diff"] = worst
    if quantize == "none" and not worst <= NONE_TOLERANCE:
        raise ModelError(
            f"{model_dir}: the converted TFLite model differs from the SavedModel by {worst:.3g} "
            f"(more than {NONE_TOLERANCE}); not written"
        )
    if check is not None:
        found = _check_on_texts(tf, loaded, meta, packer, content, check)
        facts["check"] = found.to_dict()
        _refuse_below(model_dir, quantize, found, min_agreement)
    return content, facts


# ------------------------------------------------------------------ export
def _tokenizer_files(meta: ModelMeta) -> list[str]:
    spec = dict(meta.tokenizer or {})
    kind = spec.get("kind", "sentencepiece")
    name = spec.get("file", "spiece.model" if kind == "sentencepiece" else "vocab.txt")
    files = [name]
    if kind == "sentencepiece":
        files.append(str(Path(name).with_suffix(".json")))  # the normalizer sidecar, when present
    return files


def _check_options(fmt: str, quantize: str, calibration, calibration_size: int, min_agreement: float) -> None:
    if fmt not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}, got '{fmt}'")
    if quantize not in QUANTIZE_MODES:
        raise UsageError(f"--quantize must be one of {', '.join(QUANTIZE_MODES)}, got '{quantize}'")
    if fmt == "saved_model" and quantize != "none":
        raise UsageError(f"--quantize {quantize} is not supported for --format saved_model (use --format tflite)")
    if calibration is not None and fmt != "tflite":
        raise UsageError("--calibration is only used with --format tflite")
    if not 0.0 <= min_agreement <= 1.0:
        raise UsageError(f"--min-agreement must be between 0 and 1, got {min_agreement}")
    if calibration_size < 1:
        raise UsageError(f"--calibration-size must be positive, got {calibration_size}")


def _check_set(src: Path, meta: ModelMeta, quantize: str, calibration, columns, size: int) -> CheckSet | None:
    """``--calibration FILE``, else the texts kept with the model; a quantized export cannot go without."""
    if calibration is not None:
        texts, pairs = read_calibration(calibration, meta, *columns, size)
        return CheckSet(texts, pairs, f"from {calibration}")
    kept = read_check_texts(src, meta)
    if kept is not None:
        texts, pairs = sample(*kept, size)
        return CheckSet(texts, pairs, "kept with the model")
    if quantize != "none":
        raise UsageError(
            f"{src}: --quantize {quantize} checks the export on real texts, and this model directory keeps none "
            "(it predates them): add --calibration FILE with texts like the ones it will classify"
        )
    return None


def _write_tflite_dir(src: Path, meta: ModelMeta, staging: Path, quantize: str, check, min_agreement: float,
                      summary: dict) -> None:
    """``model.tflite`` and ``assets/`` (metadata, tokenizer, ``export.json``) into `staging`; updates `summary`."""
    content, facts = convert_to_tflite(src, meta, quantize, check, min_agreement)
    (staging / TFLITE_FILE).write_bytes(content)
    assets = staging / ASSETS
    assets.mkdir()
    shutil.copy2(src / ASSETS / META_FILE, assets / META_FILE)
    for name in _tokenizer_files(meta):
        if (src / ASSETS / name).is_file():
            shutil.copy2(src / ASSETS / name, assets / name)
    summary["tflite_bytes"] = len(content)
    summary.update(facts)
    record = {k: v for k, v in summary.items() if k != "output"}
    record.update(albert_cli=__version__, inputs=list(INPUT_NAMES), output_name=output_key(meta))
    atomic_write_text(assets / EXPORT_FILE, json.dumps(record, ensure_ascii=False, indent=1) + "\n")
    open_model_dir(staging)  # the result must be a directory predict/evaluate accept


def export_model(
    model,
    out,
    fmt: str = "tflite",
    quantize: str = "none",
    calibration=None,
    text_column: str | None = None,
    text_pair_column: str | None = None,
    calibration_size: int = DEFAULT_CALIBRATION_SIZE,
    overwrite: bool = False,
    min_agreement: float = DEFAULT_MIN_AGREEMENT,
) -> dict:
    """Export model directory `model` to `out`; returns a summary (also written to ``assets/export.json``).

    Args:
        model: a SavedModel model directory (``albert finetune``'s output).
        out: the directory to write (built in ``OUT.partial``, renamed into place when complete).
        fmt: ``tflite`` or ``saved_model`` (a copy without ``logs/`` and ``checkpoints/``).
        quantize: TFLite only: ``none``, ``dynamic``, ``float16`` or ``int8``.
        calibration: a file of texts to check the export on (and calibrate ``int8`` with) [default: the texts
            kept with the model]; `text_column` / `text_pair_column` name its columns.
        calibration_size: check (and calibrate) with at most this many texts.
        overwrite: replace `out` if it exists.
        min_agreement: refuse an export that keeps a smaller share of the SavedModel's labels on the check texts.

    Example:
        >>> export_model("news-model", "news-lite", quantize="dynamic")["tflite_bytes"]  # doctest: +SKIP
    """
    fmt, quantize = (fmt or "").lower(), (quantize or "").lower()
    _check_options(fmt, quantize, calibration, calibration_size, min_agreement)
    src, meta = open_model_dir(model)
    if is_tflite_dir(src):
        raise ModelError(f"{src}: already a TFLite export; export from the SavedModel model directory")
    if quantize == "int8" and meta.bow_buckets:
        raise UsageError(
            f"{src}: --quantize int8 makes every activation int8, and the bag of n-grams member computes hashed "
            "word ids: use --quantize dynamic (int8 weights), or train with --no-bow for full int8"
        )
    out = Path(out)
    if out.absolute() == src.absolute() or src.absolute() in out.absolute().parents:
        raise UsageError(f"{out}: the output must not be the model directory or inside it")
    check = None
    if fmt == "tflite":  # read (and fail on bad data) before any TensorFlow work
        check = _check_set(src, meta, quantize, calibration, (text_column, text_pair_column), calibration_size)
    staging = prepare_output(out, overwrite=overwrite, resume=False)
    started = time.monotonic()
    summary: dict = {"output": str(out), "source": str(src), "format": fmt, "quantize": quantize}
    try:
        if fmt == "saved_model":
            summary["variables_bytes"] = copy_saved_model(src, staging)
        else:
            _write_tflite_dir(src, meta, staging, quantize, check, min_agreement, summary)
        commit(staging, out)
    except BaseException:
        discard_if_empty(staging)
        raise
    summary["seconds"] = round(time.monotonic() - started, 2)
    info(f"wrote {out}")
    return summary
