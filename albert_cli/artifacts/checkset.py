"""The check set of a model directory: real texts an export is verified on.

``albert finetune`` keeps a seeded sample of its dev texts (of its training texts without dev) in
``assets/check_texts.jsonl``, one ``{"text": ..., "text_pair": ...}`` object a line. ``albert export`` runs the
SavedModel and the converted TFLite model on them (or on ``--calibration FILE``) and refuses an export whose
labels agree less than ``--min-agreement`` (:func:`agreement`). Nothing here imports TensorFlow.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from albert_cli.artifacts.modeldir import ASSETS, ModelMeta, atomic_write_text
from albert_cli.errors import ModelError

CHECK_TEXTS_FILE = "check_texts.jsonl"  # in assets/ of a model directory
CHECK_SIZE = 200  # texts kept with a model, and checked on at most from --calibration
REGRESSION_TOLERANCE = 0.01  # a value "agrees" within this share of the SavedModel's range on the check texts


def sample(texts, pairs, limit: int = CHECK_SIZE, seed: int = 0) -> tuple[list[str], list[str] | None]:
    """Up to `limit` of `texts` (and their `pairs`), a seeded sample in input order when there are more."""
    texts = list(texts)
    pairs = list(pairs) if pairs is not None else None
    if len(texts) > limit:
        pick = np.sort(np.random.default_rng(seed).choice(len(texts), limit, replace=False))
        texts = [texts[i] for i in pick]
        pairs = [pairs[i] for i in pick] if pairs is not None else None
    return texts, pairs


def write_check_texts(assets: Path, texts, pairs=None, seed: int = 0) -> int:
    """Keep a sample of `texts` (and `pairs`) in `assets/check_texts.jsonl`; returns how many."""
    texts, pairs = sample(texts, pairs, CHECK_SIZE, seed)
    rows = [{"text": t} if pairs is None else {"text": t, "text_pair": pairs[i]} for i, t in enumerate(texts)]
    atomic_write_text(Path(assets) / CHECK_TEXTS_FILE, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return len(rows)


def read_check_texts(model_dir: Path, meta: ModelMeta) -> tuple[list[str], list[str] | None] | None:
    """The texts (and pairs) kept with a model directory, or None when it has none (made before they were)."""
    path = Path(model_dir) / ASSETS / CHECK_TEXTS_FILE
    if not path.is_file():
        return None
    texts, pairs = [], []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            row = json.loads(line)
            texts.append(str(row["text"]))
            pairs.append(str(row.get("text_pair", "")))
        except (ValueError, KeyError, TypeError):
            raise ModelError(f"{path}: line {n}: not a check text object") from None
    return (texts, pairs if meta.pair else None) if texts else None


@dataclass(frozen=True)
class Agreement:
    """How far an export's outputs are from the SavedModel's on the check texts.

    Args:
        texts: how many texts were checked.
        label_agreement: the share with the same labels (regression: a value within
            `REGRESSION_TOLERANCE` of the SavedModel's range).
        max_abs_diff: the largest difference of a probability (or value).
        source: where the texts came from.
    """

    texts: int
    label_agreement: float
    max_abs_diff: float
    source: str

    def to_dict(self) -> dict:
        return {"texts": self.texts, "source": self.source, "label_agreement": round(self.label_agreement, 6),
                "max_abs_diff": float(self.max_abs_diff)}


def agreement(meta: ModelMeta, want: np.ndarray, got: np.ndarray, source: str) -> Agreement:
    """Compare raw outputs (probabilities, or values) of the SavedModel (`want`) and an export (`got`).

    Labels follow the serving rules (`albert_cli.inference.base.serving_outputs`): the most probable label,
    or the labels at or above the tuned thresholds (multi-label, the whole set must match).
    """
    from albert_cli.inference.base import serving_outputs

    want, got = np.asarray(want, np.float32), np.asarray(got, np.float32).reshape(np.shape(want))
    diff = float(np.abs(got - want).max()) if want.size else 0.0
    if meta.task == "regression":
        spread = float(want.max() - want.min()) if want.size else 0.0
        same = np.abs(got - want).reshape(len(want), -1).max(-1) <= REGRESSION_TOLERANCE * max(spread, 1e-6)
    else:
        same = serving_outputs(meta, want)["label"] == serving_outputs(meta, got)["label"]
    return Agreement(len(want), float(np.mean(same)) if len(want) else 1.0, diff, source)
