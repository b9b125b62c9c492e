"""Text normalization applied before SentencePiece, exactly as ALBERT does it.

`preprocess_text` reproduces ``AlbertTokenizer.preprocess_text`` from Hugging Face
transformers 4.x (and ``preprocess_text`` in google-research/albert
``tokenization.py``), in the same order:

1. (collapse_whitespace) ``" ".join(text.strip().split())``
2. replace ``````  and ``''`` with ``"``
3. (strip_accents) NFKD, then drop every character with a non-zero canonical
   combining class (``unicodedata.combining``)
4. (lowercase) ``str.lower()``
"""

from __future__ import annotations

import unicodedata
from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping


@dataclass(frozen=True)
class NormalizerOptions:
    """How raw text is normalized before SentencePiece (ALBERT defaults)."""

    lowercase: bool = True
    strip_accents: bool = True
    collapse_whitespace: bool = True

    def to_dict(self) -> dict[str, bool]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "NormalizerOptions":
        """Build from a dict; unknown keys are ignored, missing keys take the defaults."""
        if not data:
            return cls()
        known = {f.name for f in fields(cls)}
        kwargs = {}
        for key, value in data.items():
            if key in known:
                if not isinstance(value, bool):
                    raise ValueError(f"normalizer option {key!r} must be true or false, got {value!r}")
                kwargs[key] = value
        return cls(**kwargs)


DEFAULT_NORMALIZER = NormalizerOptions()


def preprocess_text(text: str, opts: NormalizerOptions = DEFAULT_NORMALIZER) -> str:
    """Normalize `text` exactly like ALBERT / HF 4.x ``AlbertTokenizer.preprocess_text``."""
    if opts.collapse_whitespace:
        outputs = " ".join(text.strip().split())
    else:
        outputs = text
    outputs = outputs.replace("``", '"').replace("''", '"')
    if opts.strip_accents:
        outputs = unicodedata.normalize("NFKD", outputs)
        outputs = "".join(c for c in outputs if not unicodedata.combining(c))
    if opts.lowercase:
        outputs = outputs.lower()
    return outputs


def lower_per_char(text: str) -> str:
    """``str.lower`` applied one character at a time (no Greek final-sigma rule).

    Hugging Face's ``PreTrainedTokenizer.tokenize`` lowercases the raw text this
    way (``re.sub("(.+?)", lambda m: m.group(1).lower(), text)``) before calling
    ``preprocess_text`` when ``do_lower_case`` is set, so ``"ΟΔΟΣ"`` becomes
    ``"οδοσ"``, not ``"οδος"``. Final sigma is the only context-dependent rule
    in ``str.lower``, so this equals ``str.lower`` on any text without ``Σ``.
    """
    if "\u03a3" not in text:
        return text.lower()
    return "".join(map(str.lower, text))


def normalize_text(text: str, opts: NormalizerOptions = DEFAULT_NORMALIZER) -> str:
    """What the tokenizer feeds SentencePiece: HF 4.x ``AlbertTokenizer.tokenize`` normalization.

    Equals :func:`preprocess_text` except that, with ``lowercase``, the raw text
    is first lowercased per character (see :func:`lower_per_char`); the only
    visible effect is that a word-final capital sigma becomes ``σ`` (as in HF),
    not ``ς``.
    """
    if opts.lowercase:
        text = lower_per_char(text)
    return preprocess_text(text, opts)
