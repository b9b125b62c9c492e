"""``albert predict MODEL INPUT... --runner RUNNER -o PREFIX``: batch prediction as an Apache Beam pipeline.

The pipeline (the same on the DirectRunner here and on Dataflow, Flink or Spark):

1. the inputs' files (globs expanded by Beam's file systems, before the pipeline starts) are spread over the
   workers, and each file is read whole by one worker with ``albert predict``'s own readers: plain text line by
   line (`albert_cli.inference.streaming.stream_lines`: empty, NUL-containing and undecodable lines are error
   records), CSV/TSV/JSONL through `albert_cli.data.readers.read_dataset`;
2. the examples are spread again (a reshuffle), so that one large file does not keep one worker busy alone;
3. Beam's ``RunInference`` batches them (between ``--batch-size`` and :data:`BEAM_BATCH` texts) for
   :class:`AlbertModelHandler`, which loads the model directory once per worker process (Beam's shared handle)
   with `albert_cli.inference.predict.make_predictor` (SavedModel or TFLite) and formats each output with
   `albert_cli.inference.writers.format_rows`: the record ``albert predict --format jsonl`` prints;
4. each record gets its origin (``source`` and ``line``, or ``row`` for a table, plus ``id`` with
   ``--id-column``) and is written to sharded JSONL, ``PREFIX-00000-of-000NN.jsonl``.

Everything that can be checked is checked before the pipeline starts (`plan_job`), with one-line errors: the
options, the model (loaded once here), every input pattern, each table's header.

This module imports Apache Beam (the ``beam`` extra); the CLI imports it only when ``--runner`` is given.
"""

from __future__ import annotations

import contextlib
import csv
import glob
import io
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics.metric import Metrics, MetricsFilter
from apache_beam.ml.inference.base import KeyedModelHandler, ModelHandler, PredictionResult, RunInference
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.runner import create_runner

from albert_cli.artifacts.modeldir import open_model_dir
from albert_cli.data.readers import decode, detect_format, read_dataset, split_pair, text_problem
from albert_cli.errors import AlbertError, DataError, ModelError, UsageError, debug_enabled
from albert_cli.inference.predict import make_predictor
from albert_cli.inference.streaming import stream_lines
from albert_cli.inference.writers import OutputOptions, check_output_options, format_rows

BEAM_BATCH = 256
"""The most texts in one of RunInference's batches (at least 8 x ``--batch-size``): the predictor groups each
batch by length into ``--batch-size`` batches, as ``albert predict`` does with its chunks of 256 lines."""

METRICS = "albert"
SHARD_SUFFIX = ".jsonl"
HEAD_BYTES = 1 << 16  # enough of a table to read its header before the pipeline starts


@dataclass(frozen=True)
class BeamJob:
    """``albert predict --runner``'s options, checked by `plan_job`.

    Args:
        model: the model directory (a local path, or one that Beam's file systems read, like ``gs://...``).
        inputs: files or globs (local or any Beam file system).
        output_prefix: shards are ``OUTPUT_PREFIX-00000-of-000NN.jsonl``.
        runner: a Beam runner (DirectRunner, DataflowRunner, FlinkRunner, SparkRunner, ...).
        pipeline_options: ``KEY=VALUE`` (or ``KEY`` for a flag) of Beam's pipeline options.
        input_format, text_column, text_pair_column: as ``albert predict``'s.
        id_column: a table column carried into each record as ``id``.
        skip_bad_rows: tables: skip rows with an empty text instead of failing.
        output: what a record holds (``--all-scores``, ``--top-k``, ``--threshold``); jsonl only.
        batch_size: texts per model batch (length-grouped).
        precision: ``--precision`` (fp32, bf16, auto) or None for $ALBERT_PRECISION.
    """

    model: str
    inputs: tuple[str, ...]
    output_prefix: str
    runner: str
    pipeline_options: tuple[str, ...] = ()
    input_format: str | None = None
    text_column: str | None = None
    text_pair_column: str | None = None
    id_column: str | None = None
    skip_bad_rows: bool = False
    output: OutputOptions = field(default_factory=OutputOptions)
    batch_size: int = 32
    precision: str | None = None


@dataclass(frozen=True)
class ReadSpec:
    """How a worker reads one input file (from `plan_job`): its format, the columns, the pair rule."""

    fmt: str
    text_column: str
    text_pair_column: str | None
    id_column: str | None
    skip_bad_rows: bool
    pair: bool


@dataclass(frozen=True)
class Plan:
    """A checked job: the files to read (globs expanded), how to read each, and the pipeline options."""

    job: BeamJob
    files: tuple[tuple[str, ReadSpec], ...]
    options: PipelineOptions
    output: OutputOptions


# ---------------------------------------------------------------------------------------------------------------
# The model handler


def local_model_dir(model: str) -> str:
    """`model` if it is a local directory, else a local copy of it made with Beam's file systems (``gs://...``,
    ``s3://...``): the predictors read local files."""
    if os.path.isdir(model) or "://" not in model:
        return model
    return copy_dir(model)


def copy_dir(model: str) -> str:
    """A local temporary copy of the directory `model` on any of Beam's file systems."""
    prefix = model.rstrip("/") + "/"
    found = FileSystems.match([prefix + "**"])[0].metadata_list
    if not found:
        raise ModelError(f"{model}: no such model directory")
    local = tempfile.mkdtemp(prefix="albert-model-")
    for meta in found:
        target = os.path.join(local, meta.path[len(prefix):])
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with FileSystems.open(meta.path, compression_type="uncompressed") as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst)
    return local


class AlbertModelHandler(ModelHandler):
    """RunInference's handler for a model directory: examples are texts (or ``(text, pair)``), inferences are
    ``albert predict``'s jsonl records.

    Not Beam's TensorFlow handler: that one loads with ``tf.keras.models.load_model``, which Keras 3 refuses for
    a SavedModel (apache/beam#30616). The predictor is `make_predictor`'s: the SavedModel's ``serving_default``
    (tokenization in the graph, with tensorflow-text's ops) or the TFLite interpreter.
    """

    def __init__(self, model: str, output: OutputOptions, batch_size: int = 32, precision: str | None = None):
        env = {"ALBERT_PRECISION": precision} if precision else {}
        super().__init__(min_batch_size=batch_size, max_batch_size=max(BEAM_BATCH, 8 * batch_size), env_vars=env)
        self.model, self.output, self.batch_size = model, output, batch_size

    def load_model(self):
        return make_predictor(local_model_dir(self.model), batch_size=self.batch_size)

    def run_inference(self, batch, model, inference_args=None):
        if model.meta.pair:
            out = model.predict([t for t, _ in batch], [p for _, p in batch])
        else:
            out = model.predict(list(batch))
        return [PredictionResult(x, rec) for x, rec in zip(batch, format_rows(model.meta, out, self.output))]

    def get_num_bytes(self, batch) -> int:
        return sum(len(x) if isinstance(x, str) else len(x[0]) + len(x[1]) for x in batch)

    def get_metrics_namespace(self) -> str:
        return METRICS


# ---------------------------------------------------------------------------------------------------------------
# Reading the inputs on the workers


def _text_examples(path: str, spec: ReadSpec):
    """(origin, example, error) for each line of a plain-text file: ``albert predict``'s line rules; a pair
    model's line without exactly one tab is an error record (``albert predict`` stops at such a first line)."""
    with FileSystems.open(path) as raw:
        for lineno, text, err in stream_lines(raw, path):
            if err is None and spec.pair:
                first, second, err = split_pair(text)
                text = (first, second)
            yield {"source": path, "line": lineno}, text, err


def _raw_rows(text: str, spec: ReadSpec) -> dict[int, dict]:
    """Every data row of a decoded table as ``{row: {column: value}}`` (the columns asked for), numbered as
    `read_dataset` numbers them: CSV/TSV rows from 1 after the header, JSONL lines (blank ones are no rows)."""
    columns = [c for c in (spec.text_column, spec.text_pair_column, spec.id_column) if c is not None]
    if spec.fmt == "jsonl":
        rows = {}
        for lineno, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                record = json.loads(line)  # read_dataset has parsed it already: it is an object
                rows[lineno] = {c: record.get(c) for c in columns}
        return rows
    import pandas as pd

    frame = pd.read_csv(io.StringIO(text), sep="," if spec.fmt == "csv" else "\t", dtype=str, keep_default_na=False,
                        quoting=csv.QUOTE_MINIMAL if spec.fmt == "csv" else csv.QUOTE_NONE, skip_blank_lines=True)
    return {i: dict(zip(columns, values)) for i, values in enumerate(zip(*(frame[c] for c in columns)), start=1)}


def _row_problem(values: dict, spec: ReadSpec) -> str:
    """Why `read_dataset` skipped a row: the reader's own words for an empty or non-string text."""
    for column in (spec.text_column, spec.text_pair_column):
        problem = text_problem(column, values.get(column)) if column is not None else None
        if problem is not None:
            return problem
    return "bad row"


def _table_examples(path: str, spec: ReadSpec):
    """(origin, example, error) for each row of a CSV/TSV/JSONL file, read whole by `read_dataset`. A row that
    ``albert predict`` would stop at (an empty text) is an error record in its place; with ``--skip-bad-rows`` it
    is skipped, as ``predict`` skips it, and counted in the ``skipped_rows`` metric."""
    with FileSystems.open(path) as raw:
        data = raw.read()
    quiet = contextlib.nullcontext() if spec.skip_bad_rows else contextlib.redirect_stderr(io.StringIO())
    with quiet:  # without --skip-bad-rows the reader's "skipped N rows" warning is wrong: they are error records
        ds = read_dataset(path, fmt=spec.fmt, text_column=spec.text_column, text_pair_column=spec.text_pair_column,
                          label_column=None, skip_bad_rows=True, data=data)
    rows = _raw_rows(decode(data, path), spec) if spec.id_column or ds.skipped else {}
    good = dict(zip(ds.rows, range(len(ds.rows))))
    if spec.skip_bad_rows:
        Metrics.counter(METRICS, "skipped_rows").inc(ds.skipped)
    for row in sorted(set(good) | (set() if spec.skip_bad_rows else set(rows))):
        origin = {"source": path, "row": row}
        if spec.id_column:
            origin["id"] = rows[row][spec.id_column]
        if row not in good:
            yield origin, None, _row_problem(rows[row], spec)
            continue
        i = good[row]
        yield origin, ((ds.texts[i], ds.pairs[i]) if ds.pairs is not None else ds.texts[i]), None


class ReadExamples(beam.DoFn):
    """One input file -> its examples ``(origin, text)`` and, tagged ``errors``, its error records: a bad line
    or row, or one record ``{"error": ..., "source": FILE}`` for a file that cannot be read at all (malformed
    CSV, invalid JSON, not UTF-8), counted in the ``failed_files`` metric."""

    ERRORS = "errors"

    def __init__(self):
        self.examples = Metrics.counter(METRICS, "examples")
        self.errors = Metrics.counter(METRICS, "errors")
        self.failed = Metrics.counter(METRICS, "failed_files")

    def process(self, item):
        path, spec = item
        read = _text_examples if spec.fmt == "txt" else _table_examples
        try:
            for origin, example, err in read(path, spec):
                if err is None:
                    self.examples.inc()
                    yield origin, example
                else:
                    self.errors.inc()
                    yield beam.pvalue.TaggedOutput(self.ERRORS, {"error": err, **origin})
        except AlbertError as exc:
            self.failed.inc()
            self.errors.inc()
            yield beam.pvalue.TaggedOutput(self.ERRORS, {"error": exc.message, "source": path})


def _with_origin(origin: dict, result: PredictionResult) -> dict:
    return {**result.inference, **origin}


def _to_json(record: dict) -> str:
    return json.dumps(record, ensure_ascii=False)


def build_pipeline(pipeline: beam.Pipeline, plan: Plan) -> None:
    """The prediction pipeline of `plan` on `pipeline` (read, spread, RunInference, origin, sharded JSONL)."""
    job = plan.job
    handler = AlbertModelHandler(job.model, plan.output, job.batch_size, job.precision)
    read = (pipeline
            | "Files" >> beam.Create(list(plan.files))
            | "SpreadFiles" >> beam.Reshuffle()
            | "Read" >> beam.ParDo(ReadExamples()).with_outputs(ReadExamples.ERRORS, main="examples"))
    predicted = (read.examples
                 | "SpreadExamples" >> beam.Reshuffle()
                 | "Predict" >> RunInference(KeyedModelHandler(handler))
                 | "Origin" >> beam.MapTuple(_with_origin))
    _ = ((predicted, read[ReadExamples.ERRORS])
         | "Records" >> beam.Flatten()
         | "Json" >> beam.Map(_to_json)
         | "Write" >> beam.io.WriteToText(job.output_prefix, file_name_suffix=SHARD_SUFFIX))


# ---------------------------------------------------------------------------------------------------------------
# Before the pipeline starts: every check that does not need a worker


def pipeline_options(runner: str, pairs: tuple[str, ...]) -> PipelineOptions:
    """Beam's options from ``--runner`` and ``--pipeline-option KEY=VALUE`` (``KEY`` alone: a flag); an
    option Beam does not know is a one-line UsageError (Beam itself would only log that it discards it)."""
    flags = [f"--runner={runner}"]
    for pair in pairs:
        key, sep, value = pair.lstrip("-").partition("=")
        if not key:
            raise UsageError(f"--pipeline-option '{pair}': expected KEY=VALUE")
        flags.append(f"--{key}={value}" if sep else f"--{key}")
    if runner == "DirectRunner" and not any(f.startswith("--default_sdk_harness_log_level") for f in flags):
        if not debug_enabled():  # the local workers' stderr is the terminal: their INFO lines would flood it
            flags.append("--default_sdk_harness_log_level=CRITICAL")  # a failure comes back as the run's error
    options = PipelineOptions(flags)
    known = options.get_all_options(retain_unknown_options=False)
    for flag in flags[1:]:
        key = flag[2:].partition("=")[0].replace("-", "_")
        if key not in known:
            raise UsageError(f"--pipeline-option {key}: not one of Beam's pipeline options "
                             f"(see `python -m apache_beam.examples.wordcount --help`)")
    return options


def check_runner(runner: str) -> None:
    """A one-line UsageError for a runner Beam does not know, or one whose extra is missing."""
    try:
        create_runner(runner)
    except ValueError:
        raise UsageError(f"--runner {runner}: not a Beam runner (DirectRunner, DataflowRunner, FlinkRunner, "
                         f"SparkRunner, PrismRunner, PortableRunner, or a PipelineRunner's full name)") from None
    except ImportError as exc:
        raise UsageError(f"--runner {runner}: {exc} (Dataflow needs pip install 'apache-beam[gcp]')") from None


def _match(pattern: str) -> list:
    """The files of one INPUT pattern, or a one-line DataError."""
    try:
        found = FileSystems.match([pattern])[0].metadata_list
    except Exception as exc:  # a file system Beam lacks (s3:// without apache-beam[aws]), a bad bucket, ...
        raise DataError(f"{pattern}: cannot list ({' '.join(str(exc).split())[:200]})") from None
    if not found:
        raise DataError(f"{pattern}: no such file")
    for meta in found:
        if "://" not in meta.path and os.path.isdir(meta.path):
            raise DataError(f"{meta.path}: is a directory, expected a file (a glob like {meta.path}/*.txt?)")
    return sorted(found, key=lambda m: m.path)


def _check_table_head(path: str, spec: ReadSpec) -> None:
    """The header of a CSV/TSV file (or the first record of a JSONL one) names every column asked for."""
    with FileSystems.open(path) as raw:
        head = raw.read(HEAD_BYTES)
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return  # UTF-16: read_dataset decodes it on the worker
    first = next((ln for ln in head.decode("utf-8-sig", "replace").splitlines() if ln.strip()), None)
    if first is None:
        raise DataError(f"{path}: file is empty")
    if spec.fmt == "jsonl":
        try:
            names = list(json.loads(first))
        except (ValueError, TypeError):
            return  # a long first record, or a bad one: read_dataset says which on the worker
    else:
        names = next(csv.reader([first], delimiter="," if spec.fmt == "csv" else "\t"))
    wanted = (("--text-column", spec.text_column), ("--text-pair-column", spec.text_pair_column),
              ("--id-column", spec.id_column))
    for option, column in wanted:
        if column is not None and column not in names:
            shown = ", ".join(repr(n) for n in names) or "(none)"
            raise DataError(f"{path}: no column '{column}' (set it with {option}); columns are: {shown}")


def _read_spec(job: BeamJob, meta, path: str) -> ReadSpec:
    """How to read `path`, with ``albert predict``'s option rules for its format."""
    fmt = detect_format(path, job.input_format)
    if job.text_pair_column is not None and not meta.pair:
        raise UsageError("--text-pair-column: this model classifies single texts, it has no second input")
    cols = meta.columns or {}
    if fmt == "txt":
        for option, value in (("--text-column", job.text_column), ("--text-pair-column", job.text_pair_column),
                              ("--id-column", job.id_column), ("--skip-bad-rows", job.skip_bad_rows or None)):
            if value is not None:
                raise UsageError(f"{option} applies to CSV/TSV/JSONL input, not plain text ({path}); "
                                 f"a plain-text line is named by its source and line")
    return ReadSpec(fmt=fmt, text_column=job.text_column or cols.get("text") or "text",
                    text_pair_column=job.text_pair_column or (cols.get("text_pair") if meta.pair else None),
                    id_column=job.id_column, skip_bad_rows=job.skip_bad_rows, pair=bool(meta.pair))


def _check_output_prefix(prefix: str) -> None:
    old = FileSystems.match([f"{prefix}-*-of-*{SHARD_SUFFIX}"])[0].metadata_list
    if old:
        raise UsageError(f"{old[0].path}: output shards of an earlier run are there; remove "
                         f"{prefix}-*-of-*{SHARD_SUFFIX} or choose another -o")


def plan_job(job: BeamJob) -> Plan:
    """Every check that needs no worker, with one-line errors: options, the model (opened and loaded once
    here), the inputs (globs expanded, tables' headers read), the output prefix."""
    check_runner(job.runner)
    options = pipeline_options(job.runner, job.pipeline_options)
    _check_output_prefix(job.output_prefix)
    local = local_model_dir(job.model)
    try:
        meta = open_model_dir(local)[1]
        output = check_output_options(meta, job.output)
        files = _input_files(job, meta)
        make_predictor(local, batch_size=job.batch_size)  # a model that cannot load fails here, not on each worker
    finally:
        if local != job.model:  # the launcher's copy of a remote model
            shutil.rmtree(local, ignore_errors=True)
    return Plan(job=job, files=files, options=options, output=output)


def _input_files(job: BeamJob, meta) -> tuple[tuple[str, ReadSpec], ...]:
    """Every file of the INPUT patterns with how to read it; tables' headers checked."""
    files = []
    for pattern in job.inputs:
        for found in _match(pattern):
            spec = _read_spec(job, meta, found.path)
            if spec.fmt != "txt":
                _check_table_head(found.path, spec)
            files.append((found.path, spec))
    if len({p for p, _ in files}) != len(files):
        raise UsageError("the same input file is named twice (two INPUT patterns match it)")
    return tuple(files)


def _counter(result, name: str) -> int:
    found = result.metrics().query(MetricsFilter().with_namespace(METRICS).with_name(name))["counters"]
    return int(sum(c.committed or c.attempted or 0 for c in found))


def _model_loads(result) -> int:
    """How many times RunInference loaded the model (its load-latency distribution counts one per load)."""
    found = result.metrics().query(MetricsFilter().with_namespace(METRICS))["distributions"]
    loads = [d for d in found if d.key.metric.name.endswith("load_model_latency_milli_secs")]
    return int(sum((d.committed or d.attempted).count for d in loads if (d.committed or d.attempted)))


def _remove_temporary(prefix: str) -> None:
    """The sink's ``beam-temp-*`` folder that a failed run leaves next to the shards (best effort)."""
    parent, name = os.path.split(prefix)
    pattern = f"{parent or '.'}/beam-temp-{name}-*"
    try:
        if "://" not in prefix:
            for folder in glob.glob(pattern):
                shutil.rmtree(folder, ignore_errors=True)
            return
        found = FileSystems.match([pattern + "/*"])[0].metadata_list
        if found:
            FileSystems.delete([m.path for m in found])
    except Exception:  # the run's own error is the one to report
        pass


def _pipeline_error(exc: Exception) -> AlbertError | None:
    """The one-line AlbertError a worker raised (the runner wraps it in its own error), if it was one."""
    text = str(exc)
    for cls in (DataError, ModelError, UsageError):
        marker = f"{cls.__name__}: "
        if marker in text:
            return cls(text.rsplit(marker, 1)[1].splitlines()[0])
    return None


def run_job(job: BeamJob) -> dict:
    """Check `job` (`plan_job`), run the pipeline to its end and return its summary (what the CLI prints):
    the runner, the files read, the shards, the examples predicted and the error records written."""
    plan = plan_job(job)
    pipeline = beam.Pipeline(options=plan.options)
    build_pipeline(pipeline, plan)
    try:
        result = pipeline.run()
        result.wait_until_finish()
    except Exception as exc:
        _remove_temporary(job.output_prefix)
        error = _pipeline_error(exc)
        if error is None:
            raise
        raise error from None
    shards = FileSystems.match([f"{job.output_prefix}-*-of-*{SHARD_SUFFIX}"])[0].metadata_list
    return {"runner": job.runner, "files": len(plan.files), "shards": sorted(m.path for m in shards),
            "examples": _counter(result, "examples"), "errors": _counter(result, "errors"),
            "skipped_rows": _counter(result, "skipped_rows"), "failed_files": _counter(result, "failed_files"),
            "model_loads": _model_loads(result)}

