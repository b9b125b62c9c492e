"""What every checkpoint format shares: the name tables' row type and expansion, the canonical-name
conversion, the loaded-checkpoint record and where a checkpoint's tokenizer is.

Canonical names are the Keras variable paths of `albert_cli.model` (e.g. `group_0_inner_1/ffn/kernel`), with
dense kernels laid out [in, out]. Every format module (`google`, `hf`) owns ONE table of
`(canonical, external, transpose)` rows that drives both loading and saving; `{g}` / `{i}` in a row expand over
the hidden groups and inner blocks of the config.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from albert_cli.errors import ModelError
from albert_cli.model.config import AlbertConfig
from albert_cli.text.constants import (
    HF_TOKENIZER_CONFIG,
    SENTENCEPIECE,
    SENTENCEPIECE_FILES,
    WORDPIECE,
    WORDPIECE_FILES,
)

# (canonical name, name in the external format, transpose 2-D array?)
Row = tuple[str, str, bool]

HEAD_PREFIXES = {
    "mlm_head/": "mlm", "sop_head/": "sop", "classifier/": "classifier", "bow/": "classifier", "bow_mix/": "classifier"
}


def head_of(name: str) -> str:
    """Weight group of a canonical name: "backbone", "mlm", "sop" or "classifier"."""
    for prefix, head in HEAD_PREFIXES.items():
        if name.startswith(prefix):
            return head
    return "backbone"


@dataclass
class TokenizerInfo:
    """Where the vocabulary of a checkpoint lives and how to normalise text.

    Args:
        kind: "sentencepiece" or "wordpiece".
        path: the ``spiece.model`` / ``vocab.txt`` file.
        do_lower_case, keep_accents: Hugging Face's ``tokenizer_config.json`` settings.
    """

    kind: str
    path: Path
    do_lower_case: bool = True
    keep_accents: bool = False


# Config key of a classifier on the mean of the token vectors (see `albert_cli.weights.hf`); absent = tanh pooler.
POOLING_KEY = "albert_cli_pooling"


@dataclass
class LoadedWeights:
    """A checkpoint converted to canonical names (numpy float arrays).

    `source_names` maps every canonical name the format knows (present or not)
    to its external name, for error messages. `extra_tensors` holds tensors of
    the file that have no canonical name (kept so that they round-trip).
    `source_config` is the raw config JSON (e.g. HF `id2label`, `problem_type`).
    """

    config: AlbertConfig
    weights: dict[str, np.ndarray]
    format: str
    path: Path
    source_names: dict[str, str] = field(default_factory=dict)
    tokenizer: TokenizerInfo | None = None
    extra_tensors: dict[str, np.ndarray] = field(default_factory=dict)
    source_config: dict = field(default_factory=dict)

    @property
    def pooling(self) -> str:
        """What a classifier head of this checkpoint reads: "mean" (token mean) or "pooler" (tanh pooler)."""
        return "mean" if self.source_config.get(POOLING_KEY) == "mean" else "pooler"

    @property
    def bow_buckets(self) -> int:
        """Hashed bigram rows of the classifier's bag-of-n-grams member; 0 when it has none."""
        bigram = self.weights.get("bow/bigram")
        return 0 if bigram is None else int(np.shape(bigram)[0])

    @property
    def heads(self) -> set[str]:
        """Head groups present in the weights ("mlm", "sop", "classifier")."""
        return {head_of(name) for name in self.weights} - {"backbone"}

    def describe(self, name: str) -> str:
        """`canonical (external)` for error messages."""
        external = self.source_names.get(name)
        return f"{name} ({external})" if external and external != name else name


def expand_table(table: Iterable[Row], config: AlbertConfig) -> list[Row]:
    """Expand `{g}` / `{i}` rows over hidden groups and inner blocks."""
    rows: list[Row] = []
    for canonical, external, transpose in table:
        if "{g}" in canonical:
            rows.extend(
                (canonical.format(g=g, i=i), external.format(g=g, i=i), transpose)
                for g in range(config.num_hidden_groups)
                for i in range(config.inner_group_num)
            )
        else:
            rows.append((canonical, external, transpose))
    return rows


def to_canonical(tensors: dict[str, np.ndarray], rows: list[Row]) -> dict[str, np.ndarray]:
    """External tensors -> canonical arrays (rows whose tensor is absent are skipped)."""
    return {
        canonical: (np.ascontiguousarray(tensors[external].T) if transpose else np.asarray(tensors[external]))
        for canonical, external, transpose in rows
        if external in tensors
    }


def from_canonical(weights: dict[str, np.ndarray], rows: list[Row]) -> dict[str, np.ndarray]:
    """Canonical arrays -> external tensors; canonical names without a row raise ModelError."""
    known = {canonical for canonical, _, _ in rows}
    unknown = sorted(set(weights) - known)
    if unknown:
        raise ModelError(f"weight {unknown[0]} has no name in the target checkpoint format")
    return {
        external: np.ascontiguousarray(weights[canonical].T if transpose else weights[canonical])
        for canonical, external, transpose in rows
        if canonical in weights
    }


def collect_weights(source) -> tuple[dict[str, np.ndarray], AlbertConfig | None]:
    """Canonical numpy weights and config from a Keras model, LoadedWeights or dict."""
    if isinstance(source, LoadedWeights):
        return dict(source.weights), source.config
    if isinstance(source, dict):
        return dict(source), None
    weights = {v.path: np.asarray(v.numpy()) for v in source.weights}
    config = getattr(source, "config", None) or getattr(getattr(source, "backbone", None), "config", None)
    return weights, config


def _read_settings(info: TokenizerInfo, settings: Path) -> None:
    """Set `info`'s case and accent handling from a Hugging Face ``tokenizer_config.json``."""
    try:
        data = json.loads(settings.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{settings}: cannot read JSON: {exc}") from None
    info.do_lower_case = bool(data.get("do_lower_case", info.do_lower_case))
    info.keep_accents = bool(data.get("keep_accents", info.keep_accents))


def find_tokenizer(*dirs: Path) -> TokenizerInfo | None:
    """First SentencePiece model or WordPiece vocab found in `dirs`.

    `do_lower_case` / `keep_accents` come from an HF `tokenizer_config.json`
    in the same directory when present (defaults: lower-case, strip accents).
    """
    for directory in dirs:
        for kind, names in ((SENTENCEPIECE, SENTENCEPIECE_FILES), (WORDPIECE, WORDPIECE_FILES)):
            for name in names:
                if (directory / name).is_file():
                    info = TokenizerInfo(kind=kind, path=directory / name)
                    settings = directory / HF_TOKENIZER_CONFIG
                    if settings.is_file():
                        _read_settings(info, settings)
                    return info
    return None
