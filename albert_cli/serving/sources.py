"""What a MODEL argument of ``albert serve`` names, and which versions it holds.

A model directory (``albert finetune``'s, or a TFLite one from ``albert export``) is served as version 1. A base
path with numeric version folders is TensorFlow Serving's layout (``news/1/``, ``news/2/``): the highest version
that is a complete model directory is served. ``albert finetune -o news/3`` writes ``news/3.partial/`` and renames it
when done, so a version folder never appears half-written.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from albert_cli.artifacts.modeldir import ASSETS, META_FILE, TFLITE_FILE, open_model_dir
from albert_cli.errors import ModelError


def is_model_dir(path: Path) -> bool:
    """A complete model directory: its metadata and a SavedModel or a TFLite model (cheap: no parsing)."""
    return (path / ASSETS / META_FILE).is_file() and (
        (path / "saved_model.pb").is_file() or (path / TFLITE_FILE).is_file()
    )


@dataclass(frozen=True)
class ModelSource:
    """A served model's files.

    Args:
        path: the MODEL argument.
        versioned: True for a base path of numeric version folders, False for one model directory.
    """

    path: Path
    versioned: bool

    def versions(self) -> dict[int, Path]:
        """Version number -> model directory, for every complete version now on disk."""
        if not self.versioned:
            return {1: self.path} if is_model_dir(self.path) else {}
        found = {}
        try:
            entries = list(self.path.iterdir())
        except OSError:
            return {}
        for entry in entries:
            if entry.name.isdigit() and entry.name.isascii() and is_model_dir(entry):
                found[int(entry.name)] = entry
        return found

    def latest(self) -> tuple[int, Path] | None:
        """The highest complete version and its directory, or None."""
        versions = self.versions()
        if not versions:
            return None
        number = max(versions)
        return number, versions[number]


def open_source(path) -> ModelSource:
    """The `ModelSource` of a MODEL argument, or a one-line `ModelError` saying what the path lacks."""
    path = Path(path)
    if not path.is_dir():
        open_model_dir(path)  # raises its one-line error: missing (with a hint at an unfinished run), or a file
    if is_model_dir(path):
        return ModelSource(path, versioned=False)
    source = ModelSource(path, versioned=True)
    if not source.versions():
        raise ModelError(
            f"{path}: neither a model directory (assets/{META_FILE} with saved_model.pb or {TFLITE_FILE}) nor a base "
            "path with numeric version folders (1/, 2/, ...) holding one"
        )
    return source


def default_name(source: ModelSource) -> str:
    """The name a model is served under when ``--name`` does not say: its directory's (or base path's) name."""
    return source.path.resolve().name
