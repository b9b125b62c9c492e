"""The vocabulary view that pretraining-data creation needs: pieces, special ids and where words start."""

from __future__ import annotations

import string
from collections.abc import Iterable, Sequence

import numpy as np

from albert_cli.text.constants import CLS, MASK, SEP, SPIECE_UNDERLINE, SPM_PAD

# The original's `special_pieces` (note: no apostrophe, '<', '=', '>').
_ORIG_PUNCT = frozenset('!"#$%&()*+,-./:;?@[\\]^_`{|}~')
_WORD_CHARS = frozenset(string.ascii_lowercase) | _ORIG_PUNCT


def is_start_piece(piece: str) -> bool:
    """Whether a SentencePiece piece starts a new word (the original's ``_is_start_piece_sp``).

    A piece starts a word when it starts with ``▁`` or ``<``, is a single punctuation character, or contains a
    character that is neither an ASCII letter nor that punctuation; otherwise it continues the previous word.

    Example:
        >>> is_start_piece("\u2581the"), is_start_piece("ing")
        (True, False)
    """
    if not piece:
        return True
    if piece.startswith(SPIECE_UNDERLINE) or piece.startswith("<") or piece in _ORIG_PUNCT:
        return True
    # Pieces with digits / foreign characters are always whole words.
    return not all(ch.lower() in _WORD_CHARS for ch in piece)


def _looks_special(piece: str) -> bool:
    return len(piece) > 2 and (
        (piece.startswith("<") and piece.endswith(">"))
        or (piece.startswith("[") and piece.endswith("]"))
    )


class Vocab:
    """Piece strings and special ids, all that pretraining-data creation needs.

    Args:
        pieces: ``pieces[id]`` is the SentencePiece piece string of ``id``.
        pad_id, unk_id, cls_id, sep_id, mask_id: the special ids (ALBERT:
            0, 1, 2, 3, 4).
        control_ids: further ids to treat as special.

    Special ids (``special_ids``) -- the five above, ``control_ids`` and every
    piece written ``<...>`` or ``[...]`` -- are never mask candidates and never
    random replacements (``replacement_ids`` is everything else).
    """

    def __init__(
        self,
        pieces: Sequence[str],
        *,
        pad_id: int = 0,
        unk_id: int = 1,
        cls_id: int = 2,
        sep_id: int = 3,
        mask_id: int = 4,
        control_ids: Iterable[int] = (),
    ):
        self.pieces: list[str] = list(pieces)
        n = len(self.pieces)
        self.pad_id, self.unk_id = int(pad_id), int(unk_id)
        self.cls_id, self.sep_id, self.mask_id = int(cls_id), int(sep_id), int(mask_id)
        special = {self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id}
        special.update(int(i) for i in control_ids)
        special.update(i for i, p in enumerate(self.pieces) if _looks_special(p))
        bad = [i for i in special if not 0 <= i < n]
        if bad:
            raise ValueError(f"special ids {sorted(bad)} are outside the vocabulary (size {n})")
        self.special_ids: frozenset[int] = frozenset(special)
        self.is_special = np.zeros(n, dtype=bool)
        self.is_special[list(special)] = True
        self.is_word_start = np.array([is_start_piece(p) for p in self.pieces], dtype=bool)
        self.replacement_ids = np.flatnonzero(~self.is_special).astype(np.int32)
        if self.replacement_ids.size == 0:
            raise ValueError("the vocabulary has no non-special pieces")

    def __len__(self) -> int:
        return len(self.pieces)

    @property
    def size(self) -> int:
        """The number of pieces."""
        return len(self.pieces)

    def __repr__(self) -> str:
        return f"Vocab(size={len(self)}, special={sorted(self.special_ids)[:12]}...)"


def vocab_from_sentencepiece(model_path) -> Vocab:
    """A :class:`Vocab` from a SentencePiece ``.model`` (ALBERT's ``30k-clean.model``).

    ``[CLS]``, ``[SEP]`` and ``[MASK]`` must be pieces of the model; control,
    unknown and unused pieces are special.
    """
    import sentencepiece as spm  # (imported on use, as everywhere in albert_cli)

    sp = spm.SentencePieceProcessor()
    sp.Load(str(model_path))
    n = sp.get_piece_size()
    pieces = [sp.id_to_piece(i) for i in range(n)]
    control = [i for i in range(n) if sp.is_control(i) or sp.is_unknown(i) or sp.is_unused(i)]

    def piece_id(piece: str) -> int:
        i = sp.piece_to_id(piece)
        if i < 0 or i >= n or pieces[i] != piece:
            raise ValueError(f"SentencePiece model {model_path} has no {piece!r} piece")
        return i

    pad_id = sp.pad_id() if sp.pad_id() >= 0 else piece_id(SPM_PAD)
    unk_id = sp.unk_id()
    return Vocab(
        pieces,
        pad_id=pad_id,
        unk_id=unk_id,
        cls_id=piece_id(CLS),
        sep_id=piece_id(SEP),
        mask_id=piece_id(MASK),
        control_ids=control,
    )
