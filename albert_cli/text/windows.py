"""Long documents as overlapping windows: the geometry, in one place.

A text longer than the sequence length ``L`` is read as windows ``[CLS] piece_k*S .. piece_k*S+C-1 [SEP]`` with
``C = L - 2`` pieces each, starting every ``S`` pieces (the stride): window ``k`` starts at piece ``k * S`` and
the last window is the first that reaches the end of the text (it may be shorter than the others). Consecutive
windows share ``C - S`` pieces. A text of at most ``C`` pieces is one window, packed exactly as without windows.
At most ``max_windows`` windows are read: the pieces past the first ``C + (max_windows - 1) * S`` are not read
(by ALBERT nor by the bag of n-grams), so memory is bounded by ``batch x max_windows x L`` tokens.

`split_windows` (numpy) and ``albert_cli.text.tf_windows`` (in the SavedModel's graph) implement it; the model
side (``albert_cli.model.documents``) pools the windows into one document vector. Windows are for single texts:
pair models truncate as before.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

from albert_cli.errors import UsageError

WINDOW_POOLINGS = ("mean", "max")
"""How a document's window vectors become one vector: their mean or their element-wise maximum."""

DEFAULT_MAX_WINDOWS_CAP = 16  # the most windows a default from the data asks for (bench/README.md, long documents)
WINDOW_QUANTILE = 0.95  # max_windows covers this share of the training texts (when under the cap)


@dataclass(frozen=True)
class WindowSpec:
    """How a windowed model reads a text (stored in ``albert_cli.json`` as ``windows``).

    Args:
        stride: pieces from one window's start to the next (1 to ``sequence_length - 2``).
        max_windows: the most windows read per text.
        pooling: `WINDOW_POOLINGS`: how the window vectors are combined.
    """

    stride: int
    max_windows: int
    pooling: str = "mean"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict | None) -> "WindowSpec | None":
        if not d:
            return None
        return cls(int(d["stride"]), int(d["max_windows"]), str(d.get("pooling", "mean")))

    def check(self, sequence_length: int) -> "WindowSpec":
        """self, or a UsageError naming the option that is out of range for windows of `sequence_length`."""
        content = sequence_length - 2
        if not 1 <= self.stride <= content:
            raise UsageError(f"--window-stride must be between 1 and {content} (--max-seq-length - 2), "
                             f"got {self.stride}")
        if self.max_windows < 1:
            raise UsageError(f"--max-windows must be positive, got {self.max_windows}")
        if self.pooling not in WINDOW_POOLINGS:
            raise UsageError(f"--window-pooling must be one of {', '.join(WINDOW_POOLINGS)}, got '{self.pooling}'")
        return self

    def overlap(self, sequence_length: int) -> int:
        """Pieces shared by consecutive windows."""
        return sequence_length - 2 - self.stride

    def pieces_read(self, sequence_length: int) -> int:
        """The most pieces of a text the windows read."""
        return sequence_length - 2 + (self.max_windows - 1) * self.stride


def default_stride(sequence_length: int) -> int:
    """Three quarters of a window's pieces: a quarter of each window is context shared with the previous one."""
    return max(1, (3 * (sequence_length - 2)) // 4)


def count_windows(pieces: int, sequence_length: int, stride: int, max_windows: int | None = None) -> int:
    """Windows for a text of `pieces` pieces (at least 1), at most `max_windows`."""
    content = sequence_length - 2
    n = 1 if pieces <= content else 1 + math.ceil((pieces - content) / stride)
    return n if max_windows is None else min(n, max_windows)


def split_windows(ids: Sequence[int], sequence_length: int, spec: WindowSpec, cls_id: int,
                  sep_id: int) -> list[list[int]]:
    """The packed windows of one text's piece ids (`ids` without [CLS]/[SEP]), unpadded.

    Example:
        >>> split_windows(list(range(10, 17)), 6, WindowSpec(stride=3, max_windows=8), 1, 2)
        [[1, 10, 11, 12, 13, 2], [1, 13, 14, 15, 16, 2]]
    """
    content = sequence_length - 2
    ids = list(ids)
    n = count_windows(len(ids), sequence_length, spec.stride, spec.max_windows)
    return [[cls_id, *ids[k * spec.stride : k * spec.stride + content], sep_id] for k in range(n)]


def pad_windows(windows: list[list[int]]) -> np.ndarray:
    """One text's windows as int32 ``[windows, longest]``, padded with 0 (the pad id)."""
    width = max(len(w) for w in windows)
    out = np.zeros((len(windows), width), np.int32)
    for row, w in enumerate(windows):
        out[row, : len(w)] = w
    return out


def encode_windows(ids: Sequence[int], sequence_length: int, spec: WindowSpec, cls_id: int,
                   sep_id: int) -> tuple[np.ndarray, np.ndarray]:
    """One text's encoded example: its windows' token ids and segment ids (all 0), ``[windows, longest]`` each."""
    token_ids = pad_windows(split_windows(ids, sequence_length, spec, cls_id, sep_id))
    return token_ids, np.zeros_like(token_ids)


def choose_windows(lengths: np.ndarray, sequence_length: int, pair: bool, stride: int | None = None,
                   max_windows: int | None = None, pooling: str | None = None,
                   force: bool | None = None) -> WindowSpec | None:
    """The windows a run uses, from the training texts' packed `lengths` and the options.

    Windows are on (`force` None) when more than 1% of the texts are longer than the sequence length, which is
    when the sequence length chosen from the data hit its cap; never for pairs. Unset options are resolved:
    the stride by `default_stride`, max_windows to cover `WINDOW_QUANTILE` of the texts (at most
    `DEFAULT_MAX_WINDOWS_CAP`), pooling "mean".
    """
    lengths = np.asarray(lengths)
    if pair:
        if force:
            raise UsageError("--windows reads single texts; a pair model (--text-pair-column) truncates its pairs")
        return None
    longer = float(np.mean(lengths > sequence_length)) if len(lengths) else 0.0
    if force is False or (force is None and longer <= 0.01):
        return None
    stride = stride if stride is not None else default_stride(sequence_length)
    if max_windows is None:
        pieces = int(np.ceil(np.quantile(lengths - 2, WINDOW_QUANTILE))) if len(lengths) else 0
        max_windows = min(DEFAULT_MAX_WINDOWS_CAP, count_windows(pieces, sequence_length, max(1, stride)))
    return WindowSpec(stride, max_windows, pooling or "mean").check(sequence_length)
