"""`albert_cli.text.preprocessor`, in process: the one sequence-length check, packing and padding."""

from __future__ import annotations

import numpy as np
import pytest

from albert_cli.errors import UsageError


class _Tok:
    """Whitespace tokenizer with ids = word lengths + 10 (enough to check packing)."""

    cls_id, sep_id = 2, 3

    def encode_batch(self, texts):
        return [[len(w) + 10 for w in t.split()] for t in texts]


def test_sequence_length_is_checked_in_one_place():
    from albert_cli.text.preprocessor import Preprocessor, check_sequence_length, choose_sequence_length

    assert check_sequence_length(None) is None and check_sequence_length(64, 512) == 64
    with pytest.raises(UsageError, match="at least 8"):
        check_sequence_length(4)
    with pytest.raises(UsageError, match="exceeds the model's 32 positions"):
        Preprocessor(_Tok(), 64, positions=32)
    assert choose_sequence_length(np.array([5, 9, 30]), cap=128) % 8 == 0
    assert choose_sequence_length(np.array([500] * 10), cap=128) == 128


def test_preprocessor_packs_and_truncates_to_its_length():
    from albert_cli.text.preprocessor import Preprocessor, pad_batch

    pre = Preprocessor(_Tok(), sequence_length=8)
    (ids, seg), (ids2, seg2) = pre.encode(["a bb ccc", " ".join(["w"] * 20)])
    assert ids.tolist() == [2, 11, 12, 13, 3] and seg.tolist() == [0] * 5
    assert len(ids2) == 8 and ids2[0] == 2 and ids2[-1] == 3
    (pa, sa), = pre.encode(["a"], ["bb"])
    assert pa.tolist() == [2, 11, 3, 12, 3] and sa.tolist() == [0, 0, 0, 1, 1]
    batch = pad_batch(pre.encode(["a", "a bb ccc"]), [0, 1], multiple=8, rows=3)
    assert batch["token_ids"].shape == (3, 8) and batch["padding_mask"].sum() == 3 + 5
