"""TFLite (LiteRT) export of a model directory, and a predictor that runs it.

A TFLite model directory ``OUT`` holds

* ``model.tflite`` - the ``classify_ids`` path of the SavedModel: int32
  ``token_ids`` / ``segment_ids`` / ``padding_mask`` ``[batch, seq]`` (both
  dimensions dynamic) in, float32 ``probabilities`` ``[batch, num_labels]``
  (softmax, or sigmoid for multi-label) or ``value`` ``[batch]`` (regression)
  out. Only TFLite builtin ops: it runs on the plain LiteRT runtime.
* ``assets/albert_cli.json`` - the model's metadata, unchanged;
* ``assets/spiece.model`` (+ ``spiece.json``) or ``assets/vocab.txt`` - the
  tokenizer: tensorflow-text's SentencePiece ops are not TFLite builtins, so
  texts are tokenized in Python with the same ids as the in-graph tokenizer;
* ``assets/export.json`` - how it was exported (source, quantization, the
  largest difference to the SavedModel seen on a conversion check).

Labels, scores and multi-label thresholds are applied in numpy, so
:class:`LitePredictor` returns the same dict of arrays as the SavedModel's
``serving_default`` signature. Nothing here imports TensorFlow at import time.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import warnings
from pathlib import Path

import numpy as np

from albert_cli.errors import DataError, ModelError, UsageError
from albert_cli.modeldir import ASSETS, META_FILE, TFLITE_FILE, ModelMeta, open_model_dir
from albert_cli.predict import run_length_grouped

FORMATS = ("saved_model", "tflite")
QUANTIZE_MODES = ("none", "dynamic", "float16", "int8")
EXPORT_FILE = "export.json"  # in assets/ of an export
INPUT_NAMES = ("token_ids", "segment_ids", "padding_mask")
DEFAULT_CALIBRATION_SIZE = 200
SAVED_MODEL_SKIP = ("logs", "checkpoints")  # training leftovers, not part of a deployable model
NONE_TOLERANCE = 1e-3  # largest output difference a float32 conversion may show on the check inputs


def _cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _output_key(meta: ModelMeta) -> str:
    return "value" if meta.task == "regression" else "probabilities"


def _first_line(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split())
    return text[:limit] + ("..." if len(text) > limit else "")


# ------------------------------------------------------------------ tokenization
class _Packer:
    """Python tokenization + packing with the ids of the model's in-graph tokenizer."""

    def __init__(self, path: Path, meta: ModelMeta):
        from albert_cli.text.tokenizers import tokenizer_for_model_dir

        self.meta = meta
        self.tokenizer = tokenizer_for_model_dir(path, meta)
        tok = self.tokenizer
        self.cls_id, self.sep_id, self.pad_id = tok.cls_id, tok.sep_id, tok.pad_id
        self.max_seq_length = int(meta.max_seq_length)

    def encode(self, texts: list[str], pairs: list[str] | None) -> list:
        ids_a = self.tokenizer.encode_batch(texts)
        if pairs is None:
            return ids_a
        return list(zip(ids_a, self.tokenizer.encode_batch(pairs)))

    def packed_length(self, example) -> int:
        if isinstance(example, tuple):
            return min(len(example[0]) + len(example[1]) + 3, self.max_seq_length)
        return min(len(example) + 2, self.max_seq_length)

    def pack(self, examples, max_seq_length: int | None = None):
        from albert_cli.text.packing import pack_batch

        return pack_batch(
            examples, max_seq_length=max_seq_length or self.max_seq_length, cls_id=self.cls_id,
            sep_id=self.sep_id, pad_id=self.pad_id,
        )


def _outputs_from(meta: ModelMeta, raw: np.ndarray) -> dict[str, np.ndarray]:
    """The SavedModel's ``serving_default`` outputs, from the TFLite model's one output."""
    raw = np.asarray(raw, np.float32)
    if meta.task == "regression":
        return {"value": raw.reshape(-1)}
    labels = list(meta.labels)
    probs = raw
    if meta.task == "single_label":
        best = probs.argmax(-1)
        names = np.empty(len(probs), dtype=object)
        names[:] = [labels[j].encode("utf-8") for j in best]
        return {"label": names, "score": probs.max(-1), "probabilities": probs}
    thresholds = np.asarray(meta.thresholds or [0.5], np.float32)
    predicted = (probs >= thresholds[None, :]).astype(np.int32)
    names = np.empty(len(probs), dtype=object)
    names[:] = ["|".join(l for l, p in zip(labels, row) if p and l).encode("utf-8") for row in predicted]
    return {"label": names, "score": probs.max(-1), "probabilities": probs, "predicted": predicted}


# ------------------------------------------------------------------ interpreter
def _make_interpreter(model_path: Path | None = None, content: bytes | None = None, num_threads: int | None = None):
    """``tf.lite.Interpreter`` with the default XNNPACK delegate, quietly.

    TensorFlow 2.21 still ships the interpreter (and links it into the wheel we
    already depend on); it warns that it moves to ``ai_edge_litert``, a package
    we do not need, so that warning and XNNPACK's start-up notice are hidden.
    """
    from albert_cli._tf import _quiet_stderr_fd, import_tf

    tf = import_tf()
    threads = int(num_threads or _cpu_count())
    with _quiet_stderr_fd(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"(?s).*tf\.lite\.Interpreter is deprecated")
        try:
            if content is not None:
                interpreter = tf.lite.Interpreter(model_content=content, num_threads=threads)
            else:
                interpreter = tf.lite.Interpreter(model_path=str(model_path), num_threads=threads)
            interpreter.allocate_tensors()  # applies the delegate (and prints its notice) now
        except (ValueError, RuntimeError) as exc:
            where = model_path if model_path is not None else "the converted model"
            raise ModelError(f"{where}: cannot load the TFLite model ({_first_line(exc)})") from None
    return interpreter


class _Runner:
    """Feeds packed batches to an interpreter, resizing its inputs when the shape changes."""

    def __init__(self, interpreter, where):
        self.interpreter = interpreter
        details = interpreter.get_input_details()
        self.inputs = {}
        for name in INPUT_NAMES:
            found = [d["index"] for d in details if d["name"] == name or d["name"].endswith(f"_{name}:0")]
            if len(found) != 1:
                raise ModelError(f"{where}: the TFLite model has no '{name}' input")
            self.inputs[name] = found[0]
        outputs = interpreter.get_output_details()
        if len(outputs) != 1:
            raise ModelError(f"{where}: expected one TFLite output, found {len(outputs)}")
        self.output = outputs[0]["index"]
        self.shape: tuple | None = None

    def __call__(self, packed) -> np.ndarray:
        it = self.interpreter
        shape = tuple(packed.token_ids.shape)
        if shape != self.shape:
            for index in self.inputs.values():
                it.resize_tensor_input(index, list(shape), strict=False)
            it.allocate_tensors()
            self.shape = shape
        for name, index in self.inputs.items():
            it.set_tensor(index, np.ascontiguousarray(packed[name], dtype=np.int32))
        it.invoke()
        return it.get_tensor(self.output).copy()


class LitePredictor:
    """Runs ``model.tflite`` of a TFLite model directory; the interface of `albert_cli.predict.Predictor`."""

    def __init__(self, model_dir, batch_size: int = 32, num_threads: int | None = None):
        if batch_size < 1:
            raise UsageError(f"--batch-size must be positive, got {batch_size}")
        self.path, self.meta = open_model_dir(model_dir)
        tflite = self.path / TFLITE_FILE
        if not tflite.is_file():
            raise ModelError(f"{self.path}: no {TFLITE_FILE} (not a TFLite export)")
        self.batch_size = batch_size
        self.packer = _Packer(self.path, self.meta)
        self.interpreter = _make_interpreter(tflite, num_threads=num_threads)
        self._run_packed = _Runner(self.interpreter, tflite)

    @property
    def task(self) -> str:
        return self.meta.task

    def predict(self, texts: list[str], pairs: list[str] | None = None) -> dict[str, np.ndarray]:
        """Outputs for every text, in input order (batches grouped by token length)."""
        if self.meta.pair and pairs is None:
            raise UsageError(f"{self.path}: this model classifies text pairs; set --text-pair-column")
        n = len(texts)
        if n == 0:
            return {}
        examples = self.packer.encode(list(texts), list(pairs) if self.meta.pair else None)
        return run_length_grouped(
            [self.packer.packed_length(e) for e in examples], self.batch_size,
            lambda idx: _outputs_from(self.meta, self._run_packed(self.packer.pack([examples[i] for i in idx]))),
        )


# ------------------------------------------------------------------ conversion
def _expand_new_axis_slices(graph_def) -> int:
    """Rewrite ``x[:, None, None, :]`` (StridedSlice with ``new_axis_mask``) as ExpandDims.

    The TFLite converter cannot legalize such a slice when the input has two
    dynamic dimensions (it would need a reshape to ``[?, 1, 1, ?]``), and the
    attention mask of every layer is built that way. Only slices that take
    every element of the existing dimensions (begin/end masks set, stride 1,
    no ellipsis or shrink) are rewritten; they are exactly ExpandDims.
    Returns the number of rewritten nodes.
    """
    from tensorflow.core.framework import node_def_pb2, types_pb2
    from tensorflow.python.framework import tensor_util

    consts = {n.name: n for n in graph_def.node if n.op == "Const"}
    rewritten = 0
    nodes = []
    for node in graph_def.node:
        new_axis = node.attr["new_axis_mask"].i if node.op == "StridedSlice" else 0
        strides_node = consts.get(node.input[3].split(":")[0]) if new_axis and len(node.input) >= 4 else None
        if strides_node is None:
            nodes.append(node)
            continue
        strides = tensor_util.MakeNdarray(strides_node.attr["value"].tensor).reshape(-1)
        begin, end = node.attr["begin_mask"].i, node.attr["end_mask"].i
        full = all((new_axis >> j) & 1 or ((begin >> j) & 1 and (end >> j) & 1) for j in range(len(strides)))
        plain = node.attr["ellipsis_mask"].i == 0 and node.attr["shrink_axis_mask"].i == 0
        if not (full and plain and (strides == 1).all()):
            nodes.append(node)
            continue
        axes = [j for j in range(len(strides)) if (new_axis >> j) & 1]
        previous = node.input[0]
        controls = [i for i in node.input if i.startswith("^")]
        for k, axis in enumerate(axes):
            const = node_def_pb2.NodeDef(name=f"{node.name}/expand_axis_{k}", op="Const")
            const.attr["dtype"].type = types_pb2.DT_INT32
            const.attr["value"].tensor.CopyFrom(tensor_util.make_tensor_proto(np.int32(axis)))
            expand = node_def_pb2.NodeDef(op="ExpandDims", device=node.device)
            expand.name = node.name if k == len(axes) - 1 else f"{node.name}/expand_{k}"
            expand.input.extend([previous, const.name] + (controls if k == 0 else []))
            expand.attr["T"].CopyFrom(node.attr["T"])
            expand.attr["Tdim"].type = types_pb2.DT_INT32
            nodes += [const, expand]
            previous = expand.name
        rewritten += 1
    del graph_def.node[:]
    graph_def.node.extend(nodes)
    return rewritten


def _ids_function(tf, loaded, meta: ModelMeta, where):
    """A concrete function: the ids -> probabilities (or value) part of the SavedModel, with constants."""
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2_as_graph

    try:
        signature = loaded.signatures["classify_ids"]
    except KeyError:
        raise ModelError(f"{where}: the SavedModel has no classify_ids signature (re-run finetune)") from None
    key = _output_key(meta)
    if key not in signature.structured_outputs:
        raise ModelError(f"{where}: the classify_ids signature has no '{key}' output")
    spec = [tf.TensorSpec([None, None], tf.int32, name=name) for name in INPUT_NAMES]

    @tf.function(input_signature=spec)
    def ids_to_output(token_ids, segment_ids, padding_mask):
        out = signature(token_ids=token_ids, segment_ids=segment_ids, padding_mask=padding_mask)
        return {key: tf.identity(out[key], name=key)}

    concrete = ids_to_output.get_concrete_function()
    frozen, graph_def = convert_variables_to_constants_v2_as_graph(concrete, aggressive_inlining=True)
    _expand_new_axis_slices(graph_def)
    inputs = [t.name for t in frozen.inputs]
    outputs = [t.name for t in frozen.outputs]
    wrapped = tf.compat.v1.wrap_function(lambda: tf.compat.v1.import_graph_def(graph_def, name=""), [])
    graph = wrapped.graph
    return wrapped.prune([graph.get_tensor_by_name(n) for n in inputs], [graph.get_tensor_by_name(n) for n in outputs])


def _calibration_batches(packer: _Packer, texts: list[str], pairs: list[str] | None):
    """Representative inputs for int8: one example per sample, all of one shape.

    TFLite's calibrator does not re-derive shape-dependent tensors (the
    position embeddings) when the input shape changes, so every sample has the
    same length: the median packed length of the calibration texts. Longer
    texts are truncated to it; shorter ones are left out, so no sample holds
    padding (its -10000 attention bias would swamp the activation ranges).
    """
    examples = packer.encode(texts, pairs)
    lengths = np.asarray([packer.packed_length(e) for e in examples])
    width = int(np.median(lengths))
    keep = [e for e, n in zip(examples, lengths) if n >= width]
    return [packer.pack([e], max_seq_length=width) for e in keep], width


def read_calibration(path, meta: ModelMeta, text_column=None, text_pair_column=None, limit=DEFAULT_CALIBRATION_SIZE):
    """Up to `limit` texts (and pairs) from a CSV/TSV/JSONL/txt file, a seeded sample when there are more."""
    from albert_cli.data.readers import read_dataset

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
    texts, pairs = list(ds.texts), list(ds.pairs) if ds.pairs is not None else None
    if len(texts) > limit:
        pick = np.sort(np.random.default_rng(0).choice(len(texts), limit, replace=False))
        texts = [texts[i] for i in pick]
        pairs = [pairs[i] for i in pick] if pairs is not None else None
    return texts, pairs


def _check_inputs(packer: _Packer, vocab_size: int):
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


def convert_to_tflite(model_dir: Path, meta: ModelMeta, quantize: str, calibration=None) -> tuple[bytes, dict]:
    """The ``model.tflite`` bytes for a SavedModel directory, and facts for ``export.json``.

    `calibration` is ``(texts, pairs)`` for ``int8``.
    """
    from albert_cli._tf import _quiet_stderr_fd, import_tf
    from albert_cli.modeldir import load_saved_model

    tf = import_tf()
    loaded = load_saved_model(model_dir)
    packer = _Packer(model_dir, meta)
    concrete = _ids_function(tf, loaded, meta, model_dir)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    facts: dict = {}
    if quantize in ("dynamic", "float16", "int8"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if quantize == "int8":
        samples, width = _calibration_batches(packer, *calibration)
        facts["calibration"] = {"examples": len(samples), "length": width}

        def representative():
            for packed in samples:
                yield [packed[name] for name in INPUT_NAMES]

        converter.representative_dataset = representative
    try:
        with _quiet_stderr_fd(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            content = converter.convert()
    except Exception as exc:  # ConverterError: unsupported ops, ...
        text = str(exc)
        ops = [ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.strip().startswith("TF Select ops:")]
        detail = f"ops that are not TFLite builtins: {ops[0]}" if ops else _first_line(exc)
        raise ModelError(f"{model_dir}: cannot convert to TFLite ({type(exc).__name__}: {detail})") from None

    # Check: the TFLite model against the SavedModel on the same ids.
    signature = loaded.signatures["classify_ids"]
    key = _output_key(meta)
    runner = _Runner(_make_interpreter(content=content), "the converted model")
    worst = 0.0
    for packed in _check_inputs(packer, packer.tokenizer.vocab_size):
        want = signature(**{name: tf.constant(packed[name]) for name in INPUT_NAMES})[key].numpy()
        got = runner(packed).reshape(want.shape)
        worst = max(worst, float(np.abs(got - want).max()))
    facts["check_max_abs_diff"] = worst
    if quantize == "none" and not worst <= NONE_TOLERANCE:
        raise ModelError(
            f"{model_dir}: the converted TFLite model differs from the SavedModel by {worst:.3g} "
            f"(more than {NONE_TOLERANCE}); not written"
        )
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
) -> dict:
    """Export model directory `model` to `out`; returns a summary (also written to ``assets/export.json``)."""
    from albert_cli.console import info
    from albert_cli.modeldir import atomic_write_text, commit, discard_if_empty, is_tflite_dir, prepare_output

    fmt = (fmt or "").lower()
    quantize = (quantize or "").lower()
    if fmt not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}, got '{fmt}'")
    if quantize not in QUANTIZE_MODES:
        raise UsageError(f"--quantize must be one of {', '.join(QUANTIZE_MODES)}, got '{quantize}'")
    if fmt == "saved_model" and quantize != "none":
        raise UsageError(f"--quantize {quantize} is not supported for --format saved_model (use --format tflite)")
    if quantize == "int8" and calibration is None:
        raise UsageError("--quantize int8 needs --calibration FILE (texts that calibrate the activation ranges)")
    if calibration is not None and quantize != "int8":
        raise UsageError("--calibration is only used with --quantize int8")
    if calibration_size < 1:
        raise UsageError(f"--calibration-size must be positive, got {calibration_size}")
    src, meta = open_model_dir(model)
    if is_tflite_dir(src):
        raise ModelError(f"{src}: already a TFLite export; export from the SavedModel model directory")
    out = Path(out)
    if out.absolute() == src.absolute() or src.absolute() in out.absolute().parents:
        raise UsageError(f"{out}: the output must not be the model directory or inside it")
    cal = None
    if calibration is not None:  # read (and fail on bad data) before any TensorFlow work
        cal = read_calibration(calibration, meta, text_column, text_pair_column, calibration_size)
    staging = prepare_output(out, overwrite=overwrite, resume=False)
    started = time.monotonic()
    summary: dict = {"output": str(out), "source": str(src), "format": fmt, "quantize": quantize}
    try:
        if fmt == "saved_model":
            for entry in sorted(src.iterdir()):
                if entry.name in SAVED_MODEL_SKIP:
                    continue
                if entry.is_dir():
                    shutil.copytree(entry, staging / entry.name)
                else:
                    shutil.copy2(entry, staging / entry.name)
            size = sum(p.stat().st_size for p in (staging / "variables").rglob("*") if p.is_file())
            summary["variables_bytes"] = size
        else:
            content, facts = convert_to_tflite(src, meta, quantize, cal)
            (staging / TFLITE_FILE).write_bytes(content)
            assets = staging / ASSETS
            assets.mkdir()
            shutil.copy2(src / ASSETS / META_FILE, assets / META_FILE)
            for name in _tokenizer_files(meta):
                if (src / ASSETS / name).is_file():
                    shutil.copy2(src / ASSETS / name, assets / name)
            summary["tflite_bytes"] = len(content)
            summary.update(facts)
            from albert_cli import __version__

            record = {k: v for k, v in summary.items() if k != "output"}
            record.update(albert_cli=__version__, inputs=list(INPUT_NAMES), output_name=_output_key(meta))
            atomic_write_text(assets / EXPORT_FILE, json.dumps(record, ensure_ascii=False, indent=1) + "\n")
            open_model_dir(staging)  # the result must be a directory predict/evaluate accept
        commit(staging, out)
    except BaseException:
        discard_if_empty(staging)
        raise
    summary["seconds"] = round(time.monotonic() - started, 2)
    info(f"wrote {out}")
    return summary
