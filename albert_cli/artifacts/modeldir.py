"""The one model directory format shared by every command.

A finished model directory ``OUT`` is a TensorFlow SavedModel (``saved_model.pb``
at its root) whose ``serving_default`` signature takes raw strings. Next to the
graph, ``OUT/assets`` holds everything needed to rebuild or continue training:

* ``albert_cli.json`` - format version, task, labels, thresholds, normalizer,
  tokenizer, sequence length, columns, training metadata and metrics;
* ``config.json`` + ``model.safetensors`` - the weights under Hugging Face
  names (an HF ``AlbertForSequenceClassification`` directory, readable by
  ``finetune --init`` and by ``transformers``; for a mean-pooled head an
  ``AlbertModel`` directory with the head under ``mean_pooling_classifier.*``,
  see ``albert_cli.weights.POOLING_KEY``);
* ``spiece.model`` - the SentencePiece model.

``OUT/logs`` holds TensorBoard logs and ``OUT/checkpoints`` the last training
checkpoint. While training runs, all of this is built in ``OUT.partial`` and
renamed into place only when complete, so an interrupted run never leaves a
half-written ``OUT`` (``--resume`` continues from ``OUT.partial``).

``albert export --format tflite`` writes the other accepted kind: ``model.tflite``
at the root instead of the SavedModel, with ``assets/albert_cli.json`` and the
tokenizer files (see ``albert_cli.artifacts.tflite``).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from albert_cli._tf import import_tf
from albert_cli.console import warn
from albert_cli.errors import ModelError, UsageError

FORMAT = "albert-cli-model"
FORMAT_VERSION = 1
META_FILE = "albert_cli.json"
ASSETS = "assets"
PARTIAL_SUFFIX = ".partial"
TFLITE_FILE = "model.tflite"  # a TFLite export (`albert export --format tflite`)


@dataclass
class ModelMeta:
    task: str  # single_label | multi_label | regression
    labels: list[str]
    normalizer: dict
    max_seq_length: int
    pooling: str = "pooler"  # classifier head: "pooler" (tanh pooler on [CLS], as published) or "mean" (token mean)
    bow_buckets: int = 0  # hashed bigram rows of the classifier's bag-of-n-grams member; 0: none (ALBERT alone)
    tokenizer: dict = field(default_factory=lambda: {"kind": "sentencepiece", "file": "spiece.model"})
    thresholds: list[float] | None = None
    pair: bool = False
    windows: dict | None = None  # long texts as windows (`albert_cli.text.windows.WindowSpec`); None: truncated
    columns: dict = field(default_factory=dict)
    training: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, indent=1)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelMeta":
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def partial_dir(out: Path) -> Path:
    out = Path(out)
    return out.with_name(out.name + PARTIAL_SUFFIX)


def check_output(out: Path, overwrite: bool, resume: bool) -> None:
    """Fail early (before any work) if OUT may not be written."""
    out = Path(out)
    recover(out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not (overwrite or resume):
        raise UsageError(f"{out}: directory exists and is not empty (use --overwrite to replace it)")
    parent = out.absolute().parent
    existing = parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK):
        raise UsageError(f"{out}: cannot write to {existing} (permission denied or not a directory)")
    check_writable_dir(existing, out)
    if resume and not partial_dir(out).is_dir() and not (out / "checkpoints").is_dir():
        raise UsageError(f"{out}: nothing to resume (no {partial_dir(out).name}/ or {out.name}/checkpoints)")


def check_writable_dir(directory: Path, name) -> None:
    """A one-line UsageError naming `name` unless something can really be created in `directory`.

    `os.access` is not enough: it says yes to root everywhere, in /proc and on read-only mounts too, and the
    failure would only come after the work, as a raw OSError.
    """
    try:
        probe = tempfile.mkdtemp(prefix=".albert-probe-", dir=directory)
    except OSError as exc:
        raise UsageError(f"{name}: cannot write to {directory} ({exc.strerror or type(exc).__name__})") from None
    os.rmdir(probe)


def prepare_output(out: Path, overwrite: bool, resume: bool) -> Path:
    """Check that OUT may be written; return the staging directory to build it in."""
    check_output(out, overwrite, resume)
    return make_staging(out, resume)


def make_staging(out: Path, resume: bool) -> Path:
    """The staging directory OUT.partial: fresh, or (resuming) kept or seeded from a finished OUT's checkpoints.
    Call `check_output` first."""
    out = Path(out)
    try:
        out.absolute().parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{out}: cannot create the parent directory ({exc.strerror})") from None
    staging = partial_dir(out)
    try:
        if resume:
            if not staging.is_dir():  # resume from the checkpoints (and vocabulary) of a finished model
                shutil.copytree(out / "checkpoints", staging / "checkpoints")
                (staging / ASSETS).mkdir()
                for name in ("spiece.model", "spiece.json"):
                    if (out / ASSETS / name).is_file():
                        shutil.copy2(out / ASSETS / name, staging / ASSETS / name)
        elif staging.exists():
            shutil.rmtree(staging)
        staging.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # the checks passed, yet the filesystem refuses (a race, a quota): still one line
        raise UsageError(f"{out}: cannot create {staging.name} ({exc.strerror or type(exc).__name__})") from None
    return staging


def discard_if_empty(staging: Path) -> None:
    """After a failure: remove the staging directory unless it holds a checkpoint to resume from."""
    staging = Path(staging)
    if staging.is_dir() and not any((staging / "checkpoints").glob("ckpt-*.json")):
        shutil.rmtree(staging, ignore_errors=True)


def _fsync_path(path) -> None:
    """fsync a file or a directory (best effort: some filesystems refuse)."""
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def _fsync_tree(path: Path) -> None:
    for root, dirs, files in os.walk(path):
        for name in files:
            _fsync_path(os.path.join(root, name))
        _fsync_path(root)


OLD_INFIX = ".old-"


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def _set_aside(out: Path) -> list[tuple[Path, int]]:
    """``.OUT.old-PID-TIME`` directories next to OUT (a replaced model, set aside by `commit`), newest first."""
    prefix = f".{out.name}{OLD_INFIX}"
    found = []
    try:
        entries = list(out.absolute().parent.iterdir())
    except OSError:
        return []
    for p in entries:
        if p.name.startswith(prefix) and p.is_dir():
            pid, _, stamp = p.name[len(prefix):].partition("-")
            if pid.isdigit() and stamp.isdigit():
                found.append((p, int(pid), int(stamp)))
    return [(p, pid) for p, pid, _ in sorted(found, key=lambda x: x[2], reverse=True)]


def recover(out: Path) -> bool:
    """Undo a `commit` that crashed between setting OUT aside and renaming the new model in.

    If OUT is missing and a ``.OUT.old-PID-TIME`` left by a process that no longer
    runs exists, rename it back to OUT (the new model, if complete, is still in
    OUT.partial). If OUT exists, such leftovers are removed. Returns True if OUT
    was restored.
    """
    out = Path(out)
    leftovers = [(p, pid) for p, pid in _set_aside(out) if not _pid_alive(pid)]
    if not leftovers:
        return False
    restored = False
    if not out.exists():
        newest = leftovers.pop(0)[0]
        os.rename(newest, out)
        _fsync_path(out.absolute().parent)
        warn(f"{out}: restored the previous model from {newest.name} (an earlier save was interrupted)")
        restored = True
    for p, _ in leftovers:
        shutil.rmtree(p, ignore_errors=True)
    return restored


def commit(staging: Path, out: Path) -> None:
    """Replace OUT by the finished staging directory.

    OUT is renamed aside to ``.OUT.old-PID-TIME``, the staging directory renamed
    to OUT, then the old one deleted. A crash between the two renames leaves OUT
    missing; `recover` (called by every command that reads or writes OUT) puts
    the old model back.
    """
    staging, out = Path(staging), Path(out)
    _fsync_tree(staging)
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}{OLD_INFIX}{os.getpid()}-{time.time_ns()}")
        os.rename(out, old)
    try:
        os.rename(staging, out)
    except OSError:
        if old is not None:
            os.rename(old, out)
        raise
    _fsync_path(out.absolute().parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def atomic_write_text(path: Path, text: str) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def is_tflite_dir(path) -> bool:
    """True for a TFLite export (``model.tflite``, no ``saved_model.pb``): predict/evaluate run it
    with the TFLite interpreter (`albert_cli.inference.lite`)."""
    path = Path(path)
    return (path / TFLITE_FILE).is_file() and not (path / "saved_model.pb").is_file()


def open_model_dir(path) -> tuple[Path, ModelMeta]:
    """Validate an albert-cli model directory and read its metadata (no TensorFlow)."""
    path = Path(path)
    recover(path)
    if not path.exists():
        partial = partial_dir(path)
        hint = f" (an unfinished run is in {partial.name}/: use finetune --resume)" if partial.is_dir() else ""
        raise ModelError(f"{path}: no such model directory{hint}")
    if not path.is_dir():
        raise ModelError(f"{path}: is a file, expected a model directory")
    if not any(path.iterdir()):
        raise ModelError(f"{path}: model directory is empty")
    tflite = is_tflite_dir(path)
    if not tflite and not (path / "saved_model.pb").is_file():
        raise ModelError(f"{path}: not an albert-cli model (no saved_model.pb or {TFLITE_FILE})")
    meta_path = path / ASSETS / META_FILE
    if not meta_path.is_file():
        kind = "a TFLite model" if tflite else "a SavedModel"
        raise ModelError(f"{path}: {kind}, but not one written by albert-cli (no {ASSETS}/{META_FILE})")
    try:
        data = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{meta_path}: corrupted model metadata ({exc})") from None
    if data.get("format") != FORMAT:
        raise ModelError(f"{meta_path}: not albert-cli model metadata")
    if int(data.get("format_version", 0)) > FORMAT_VERSION:
        raise ModelError(f"{path}: written by a newer albert-cli (format {data.get('format_version')})")
    try:
        meta = ModelMeta.from_dict(data)
    except TypeError as exc:
        raise ModelError(f"{meta_path}: corrupted model metadata ({exc})") from None
    tok = meta.tokenizer or {}
    if tok.get("kind", "sentencepiece") == "sentencepiece":
        _check_tokenizer(path / ASSETS / tok.get("file", "spiece.model"))
    return path, meta


def _check_tokenizer(spm_path: Path) -> None:
    """The SentencePiece model in assets/ must load (the serving graph has its own copy,
    but a damaged one means a damaged directory, and `finetune --init`/`embed` read it)."""
    if not spm_path.is_file():
        raise ModelError(f"{spm_path}: missing tokenizer file")
    import sentencepiece as spm

    try:
        spm.SentencePieceProcessor(model_proto=spm_path.read_bytes())
    except Exception as exc:  # truncated or corrupted protobuf
        first = " ".join(str(exc).split())[:200]
        raise ModelError(f"{spm_path}: corrupted tokenizer model ({first})") from None


def load_saved_model(path: Path):
    """Load the SavedModel, turning TensorFlow's errors into one-line ModelErrors."""
    tf = import_tf()
    import tensorflow_text  # noqa: F401  (registers the SentencePiece ops)

    try:
        return tf.saved_model.load(str(path))
    except Exception as exc:  # corrupted variables, truncated graph, missing op, ...
        first = " ".join(str(exc).split())[:300]
        raise ModelError(f"{path}: cannot load the SavedModel ({type(exc).__name__}: {first})") from None
