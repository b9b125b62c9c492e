"""The preprocessor: a tokenizer and the sequence length, the one owner of that length (as keras-hub's).

Training encodes with it, the exported model's in-graph tokenizer and the TFLite predictor are made from it, and
the model directory stores its length once (``albert_cli.json``: ``max_seq_length``). `check_sequence_length`
is the one place a length is validated.
"""

from __future__ import annotations

from typing import Callable, Iterator, Sequence

import numpy as np

from albert_cli.errors import UsageError
from albert_cli.text.packing import pack
from albert_cli.text.tokenizers import make_in_graph_tokenizer
from albert_cli.text.windows import WindowSpec, encode_windows

MIN_SEQUENCE_LENGTH = 8
MAX_SEQUENCE_LENGTH = 4096


def check_sequence_length(length: int | None, positions: int | None = None, option: str = "--max-seq-length",
                          minimum: int = MIN_SEQUENCE_LENGTH) -> int | None:
    """`length` if it is a usable sequence length (None passes), else a UsageError naming `option`.

    Args:
        length: the tokens per example, [CLS] and [SEP]s included.
        positions: the model's position embeddings, when known.
        option: the option the length came from.
        minimum: the shortest allowed (`embed` takes 2: [CLS] and [SEP] alone).
    """
    if length is None:
        return None
    if length < minimum:
        raise UsageError(f"{option} must be at least {minimum}, got {length}")
    # The model's own limit first, when known: its number is the one that matters to the user.
    if positions is not None and length > positions:
        raise UsageError(f"{option} {length} exceeds the model's {positions} positions (max_position_embeddings)")
    if length > MAX_SEQUENCE_LENGTH:
        raise UsageError(f"{option} must be between {minimum} and {MAX_SEQUENCE_LENGTH}, got {length}")
    return int(length)


def choose_sequence_length(lengths: np.ndarray, cap: int, quantile: float = 0.99) -> int:
    """The `quantile` of token lengths, rounded up to a multiple of 8, at least 16, at most `cap`."""
    if len(lengths) == 0:
        return min(cap, 128)
    q = int(np.ceil(np.quantile(lengths, quantile)))
    return int(min(cap, max(16, -(-q // 8) * 8)))


class Preprocessor:
    """Texts (and pairs) to packed ``[CLS] A [SEP] (B [SEP])`` token and segment ids.

    Args:
        tokenizer: a SentencePiece or WordPiece tokenizer (`albert_cli.text.tokenizers`).
        sequence_length: the longest packed example; checked against `positions`.
        positions: the model's position embeddings (None: unchecked).
        windows: read each text as windows of `sequence_length` (`albert_cli.text.windows`): `encode` then
            gives ``[windows, longest]`` arrays per text. None: texts (and pairs) are cut at `sequence_length`.

    Example:
        >>> pre = Preprocessor(tokenizer, sequence_length=128)
        >>> ids, segments = pre.encode(["a text"])[0]
    """

    def __init__(self, tokenizer, sequence_length: int, positions: int | None = None,
                 windows: WindowSpec | None = None):
        self.tokenizer = tokenizer
        self.sequence_length = check_sequence_length(sequence_length, positions)
        self.windows = windows.check(self.sequence_length) if windows is not None else None

    @staticmethod
    def raw_lengths(tokenizer, texts, pairs=None) -> np.ndarray:
        """Full packed lengths before truncation (to choose a default sequence length)."""
        a = [len(x) for x in tokenizer.encode_batch(texts)]
        b = [len(x) + 1 for x in tokenizer.encode_batch(pairs)] if pairs is not None else [0] * len(a)
        return np.asarray([x + y + 2 for x, y in zip(a, b)])

    def encode(self, texts, pairs=None) -> list[tuple[np.ndarray, np.ndarray]]:
        """Token ids and segment ids per example, unpadded (``[windows, longest]`` each with windows)."""
        tok = self.tokenizer
        ids_a = tok.encode_batch(texts)
        if self.windows is not None:
            return [encode_windows(a, self.sequence_length, self.windows, tok.cls_id, tok.sep_id) for a in ids_a]
        ids_b = tok.encode_batch(pairs) if pairs is not None else [None] * len(ids_a)
        out = []
        for a, b in zip(ids_a, ids_b):
            packed = pack(a, b, max_seq_length=self.sequence_length, cls_id=tok.cls_id, sep_id=tok.sep_id, pad=False)
            out.append((np.asarray(packed["token_ids"], np.int32), np.asarray(packed["segment_ids"], np.int32)))
        return out

    def in_graph(self, signatures: bool = True):
        """The TensorFlow tokenizer for the exported SavedModel, with this sequence length."""
        return make_in_graph_tokenizer(self.tokenizer, self.sequence_length, signatures=signatures,
                                       windows=self.windows)


def length_groups(lengths: Sequence[int], batch_size: int) -> Iterator[np.ndarray]:
    """Indices of batches of similar length (a stable sort on `lengths`), `batch_size` at most each.

    Example:
        >>> [list(b) for b in length_groups([5, 1, 3], 2)]
        [[1, 2], [0]]
    """
    order = np.argsort(np.asarray(lengths), kind="stable")
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def run_length_grouped(lengths: Sequence[int], batch_size: int, run_batch: Callable[[np.ndarray], dict]) -> dict:
    """Run `run_batch` on `length_groups` and scatter its outputs back into input order.

    Args:
        lengths: one grouping key per item.
        batch_size: items per batch.
        run_batch: ``run_batch(idx)`` returns a dict of arrays with one row per index of `idx`.
    """
    n = len(lengths)
    results: dict = {}
    for idx in length_groups(lengths, batch_size):
        for key, value in run_batch(idx).items():
            if key not in results:
                results[key] = np.empty((n,) + value.shape[1:], value.dtype)
            results[key][idx] = value
    return results


def length_grouped_batches(lengths, batch_size: int, rng: np.random.Generator, group: int = 50) -> list:
    """Training batches of indices with similar lengths: shuffle, sort within windows of ``group`` batches, cut
    into batches, shuffle the batch order (`length_groups` is the inference order)."""
    n = len(lengths)
    lengths = np.asarray(lengths)
    perm = rng.permutation(n)
    window = batch_size * group
    batches = []
    for start in range(0, n, window):
        chunk = perm[start : start + window]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def example_size(example) -> int:
    """The tokens of an encoded example (a document's windows together): the key batches are grouped by."""
    return int(np.asarray(example[0]).size)


def pad_batch(encoded, indices, multiple: int = 8, rows: int | None = None) -> dict[str, np.ndarray]:
    """Pad the selected examples to the longest of them (rounded up to `multiple`).

    `rows` pads the batch with empty rows (padding_mask 0) up to a fixed size, so that an XLA-compiled step sees
    one shape per length bucket. Windowed examples (``[windows, length]`` each) give ``[rows, windows, width]``
    arrays, a document's missing windows empty.
    """
    first = np.asarray(encoded[indices[0]][0])
    longest = max(np.asarray(encoded[i][0]).shape[-1] for i in indices)
    width = -(-longest // multiple) * multiple
    shape = (max(rows or 0, len(indices)),)
    if first.ndim == 2:
        shape += (max(np.asarray(encoded[i][0]).shape[0] for i in indices),)
    token_ids = np.zeros(shape + (width,), np.int32)
    segment_ids = np.zeros_like(token_ids)
    padding_mask = np.zeros_like(token_ids)
    for row, i in enumerate(indices):
        ids, seg = (np.asarray(x) for x in encoded[i])
        mask = np.ones_like(ids) if ids.ndim == 1 else (np.cumsum(ids[:, ::-1] != 0, axis=1)[:, ::-1] > 0)
        where = (row, Ellipsis) if ids.ndim == 1 else (row, slice(0, ids.shape[0]))
        token_ids[where][..., : ids.shape[-1]] = ids
        segment_ids[where][..., : ids.shape[-1]] = seg
        padding_mask[where][..., : ids.shape[-1]] = mask
    return {"token_ids": token_ids, "segment_ids": segment_ids, "padding_mask": padding_mask}
