"""Label vocabularies: class names <-> indices, saved with every model."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from albert_cli.errors import DataError, ModelError


# How a model's task reads its labels (`read_dataset(label_kind=...)`).
LABEL_KINDS = {"single_label": "single", "multi_label": "multi", "regression": "regression"}


def _sort_key(label: str):
    # numeric labels sort numerically ("2" before "10"); names alphabetically
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, 0.0, label)


@dataclass
class LabelVocab:
    """The class names of a classifier, in output order.

    Args:
        labels: the names; index i is the model's output i.
        multi_label: whether an example has a set of labels (multi-hot targets) rather than one.

    Example:
        >>> LabelVocab.from_labels(["b", "a", "b"]).encode(["a", "b"]).tolist()
        [0, 1]
    """

    labels: list[str]
    multi_label: bool = False

    @classmethod
    def from_labels(cls, labels: list, multi_label: bool = False, name: str = "data", column: str = "label"):
        """Build from training labels; at least two classes are required."""
        if multi_label:
            names = {l for row in labels for l in row}
        else:
            names = set(labels)
        ordered = sorted((str(n) for n in names), key=_sort_key)
        if len(ordered) < 2:
            only = f" ('{ordered[0]}')" if ordered else ""
            raise DataError(
                f"{name}: only {len(ordered)} class{only} in column '{column}'; need at least two to train a classifier"
            )
        return cls(ordered, multi_label)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def index(self) -> dict[str, int]:
        """{name: output index}."""
        return {l: i for i, l in enumerate(self.labels)}

    def encode(self, labels: list) -> np.ndarray:
        """int32 class ids, or a float32 multi-hot matrix for multi-label."""
        idx = self.index
        if self.multi_label:
            out = np.zeros((len(labels), len(self.labels)), np.float32)
            for i, row in enumerate(labels):
                for l in row:
                    if l in idx:
                        out[i, idx[l]] = 1.0
            return out
        return np.asarray([idx[str(l)] for l in labels], np.int32)

    def unknown(self, labels: list) -> Counter:
        """Labels (with counts) that this vocabulary has never seen."""
        idx = self.index
        flat = [l for row in labels for l in row] if self.multi_label else [str(l) for l in labels]
        return Counter(l for l in flat if l not in idx)

    def counts(self, labels: list) -> np.ndarray:
        """int64 [classes]: how often each class occurs in `labels`."""
        idx = self.index
        flat = [l for row in labels for l in row] if self.multi_label else [str(l) for l in labels]
        out = np.zeros(len(self.labels), np.int64)
        for l in flat:
            out[idx[l]] += 1
        return out

    def to_dict(self) -> dict:
        """The JSON form (`from_dict` reads it back)."""
        return {"labels": self.labels, "multi_label": self.multi_label}

    @classmethod
    def from_dict(cls, d: dict) -> "LabelVocab":
        """Read the `to_dict` form."""
        return cls(list(d["labels"]), bool(d.get("multi_label", False)))

    def save(self, path: Path) -> None:
        """Write the `to_dict` form as JSON to `path`."""
        Path(path).write_text(json.dumps(self.to_dict(), ensure_ascii=False, indent=1), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> "LabelVocab":
        """Read what `save` wrote (a one-line ModelError if it cannot)."""
        try:
            return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError) as exc:
            raise ModelError(f"{path}: cannot read labels ({exc})") from None
