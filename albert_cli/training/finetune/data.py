"""The labelled examples of a fine-tuning run: train and dev sets, the label vocabulary, targets and weights."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from albert_cli.console import warn
from albert_cli.data.labels import LABEL_KINDS, LabelVocab
from albert_cli.data.readers import Dataset, read_dataset
from albert_cli.errors import DataError
from albert_cli.training.finetune.options import FinetuneOptions


@dataclass(frozen=True)
class FinetuneData:
    """What `read_data` returns.

    Args:
        train: the training set.
        dev: the dev set (--dev or --dev-split), or None.
        labels: the label vocabulary (None for regression).
        task: single_label, multi_label or regression.
    """

    train: Dataset
    dev: Dataset | None
    labels: LabelVocab | None
    task: str

    @property
    def num_outputs(self) -> int:
        return 1 if self.labels is None else len(self.labels)

    def targets(self, ds: Dataset) -> np.ndarray:
        """Regression values, multi-hot rows or label indices (-1 for a dev label never seen in training)."""
        if self.task == "regression":
            return np.asarray(ds.labels, np.float32)
        if self.task == "multi_label":
            return self.labels.encode(ds.labels)
        idx = self.labels.index
        return np.asarray([idx.get(str(y), -1) for y in ds.labels], np.int32)


def read_data(o: FinetuneOptions) -> FinetuneData:
    """Read TRAIN and --dev (or split --dev-split off TRAIN) and build the label vocabulary."""
    def read(path):
        return read_dataset(path, fmt=o.format, text_column=o.text_column, text_pair_column=o.text_pair_column,
                            label_column=o.label_column, label_kind=LABEL_KINDS[o.task],
                            skip_bad_rows=o.skip_bad_rows)

    train = read(o.train)
    dev = read(o.dev) if o.dev else None
    if dev is None and o.dev_split:
        train, dev = split_dev(train, o.dev_split, o.seed, o.task)
    labels = None
    if o.task != "regression":
        labels = LabelVocab.from_labels(train.labels, multi_label=o.task == "multi_label", name=train.name,
                                        column=o.label_column)
        unseen = labels.unknown(dev.labels) if dev is not None else None
        if unseen:
            warn(f"{dev.name}: {sum(unseen.values())} dev label(s) never seen in training: "
                 + ", ".join(sorted(unseen)[:5]) + "; they count as errors")
    elif len(set(train.labels)) < 2:
        raise DataError(f"{train.name}: every label in column '{o.label_column}' has the same value")
    return FinetuneData(train, dev, labels, o.task)


def split_dev(ds: Dataset, fraction: float, seed: int, task: str) -> tuple[Dataset, Dataset]:
    """A seeded hold-out split (stratified by label for single-label data): (train, dev)."""
    rng = np.random.default_rng(seed)
    n = len(ds)
    if task == "single_label":
        dev_idx = []
        by_label: dict[str, list[int]] = {}
        for i, y in enumerate(ds.labels):
            by_label.setdefault(y, []).append(i)
        for idx in by_label.values():
            idx = rng.permutation(idx)
            dev_idx.extend(idx[: int(round(len(idx) * fraction))])
        dev_set = set(int(i) for i in dev_idx)
    else:
        dev_set = set(int(i) for i in rng.permutation(n)[: int(round(n * fraction))])

    def take(keep):
        idx = [i for i in range(n) if (i in dev_set) == keep]
        return Dataset(
            name=ds.name + (" (dev split)" if keep else ""),
            texts=[ds.texts[i] for i in idx],
            pairs=[ds.pairs[i] for i in idx] if ds.pairs is not None else None,
            labels=[ds.labels[i] for i in idx],
            rows=[ds.rows[i] for i in idx],
        )

    return take(False), take(True)


def sample_weights(y: np.ndarray, task: str, class_weights: str | None, num_labels: int) -> np.ndarray:
    """Per-example loss weights: 1, or with ``balanced`` the inverse frequency of the example's (rarest) label."""
    n = len(y)
    if class_weights != "balanced" or task == "regression":
        return np.ones(n, np.float32)
    if task == "multi_label":
        pos = y.sum(0) + 1.0
        w = (n / (len(pos) * pos))[None, :] * y + (1 - y)
        return w.max(1).astype(np.float32)
    counts = np.bincount(y, minlength=num_labels).astype(np.float64)
    weights = n / (len(counts) * np.maximum(counts, 1))
    return weights[y].astype(np.float32)
