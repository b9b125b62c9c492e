"""One entry point for "the tokenizer of this checkpoint", SentencePiece or WordPiece.

Every command that reads a checkpoint (``embed``, ``finetune --init``, ...) gets its tokenizer here so that it
follows the checkpoint's vocabulary: :func:`load_tokenizer` (from a ``TokenizerInfo``),
:func:`tokenizer_for_pretrained` (from a ``LoadedWeights``), :func:`tokenizer_for_model_dir` (from an albert-cli
model directory) and :func:`make_in_graph_tokenizer` (the matching TensorFlow tokenizer).

Both tokenizer classes share the interface: ``encode(text)`` / ``encode_batch(texts)`` (ids without
[CLS]/[SEP]), ``tokenize``, ``decode``, ``vocab_size``, ``pad_id``, ``unk_id``, ``cls_id``, ``sep_id``,
``mask_id`` and ``path``. Nothing here imports TensorFlow at import time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Union

from albert_cli.artifacts.modeldir import ASSETS, META_FILE
from albert_cli.errors import ModelError
from albert_cli.text.constants import SENTENCEPIECE, TOKENIZER_KINDS, TOKENIZER_META, WORDPIECE, default_vocab_file
from albert_cli.text.normalize import NormalizerOptions
from albert_cli.text.spm import SentencePieceTokenizer
from albert_cli.text.wordpiece import WordPieceTokenizer
from albert_cli.weights.common import LoadedWeights, TokenizerInfo

Tokenizer = Union[SentencePieceTokenizer, WordPieceTokenizer]
KINDS = TOKENIZER_KINDS
META_FILES = (META_FILE, TOKENIZER_META)  # in a model directory's assets/, where a normalizer is recorded


def _normalizer(value) -> NormalizerOptions | None:
    if value is None or isinstance(value, NormalizerOptions):
        return value
    try:
        return NormalizerOptions.from_dict(value)
    except (ValueError, AttributeError) as exc:
        raise ModelError(f"invalid normalizer settings: {exc}") from None


def load_tokenizer(info: TokenizerInfo, normalizer: NormalizerOptions | Mapping[str, Any] | None = None) -> Tokenizer:
    """`SentencePieceTokenizer` or `WordPieceTokenizer` for `info`.

    Args:
        info: where the vocabulary is and which kind it is (a ModelError when None).
        normalizer: overrides the ``do_lower_case`` / ``keep_accents`` of `info` (our model directories record
            one). For WordPiece only ``lowercase`` matters (BERT strips accents exactly when it lowercases).

    Example:
        >>> tok = load_tokenizer(TokenizerInfo("sentencepiece", Path("spiece.model")))  # doctest: +SKIP
    """
    if info is None:
        raise ModelError("no tokenizer found next to the weights (spiece.model, 30k-clean.model or vocab.txt)")
    normalizer = _normalizer(normalizer)
    if info.kind == SENTENCEPIECE:
        if normalizer is None:
            normalizer = NormalizerOptions(lowercase=info.do_lower_case, strip_accents=not info.keep_accents)
        return SentencePieceTokenizer.from_file(info.path, normalizer=normalizer)
    if info.kind == WORDPIECE:
        lower = normalizer.lowercase if normalizer is not None else info.do_lower_case
        return WordPieceTokenizer.from_file(info.path, do_lower_case=lower)
    raise ModelError(f"{info.path}: unknown tokenizer kind {info.kind!r} (expected one of {', '.join(KINDS)})")


def _read_normalizer(assets: Path) -> dict | None:
    """The normalizer recorded in an albert-cli model's assets (albert_cli.json, else tokenizer.json)."""
    for name in META_FILES:
        path = assets / name
        if path.is_file():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, ValueError) as exc:
                raise ModelError(f"{path}: cannot read JSON: {exc}") from None
            if isinstance(data, dict) and isinstance(data.get("normalizer"), dict):
                return data["normalizer"]
    return None


def tokenizer_for_pretrained(loaded: LoadedWeights) -> Tokenizer:
    """The tokenizer of a checkpoint read by ``load_pretrained`` (one-line ModelError if none)."""
    if loaded.tokenizer is None:
        raise ModelError(
            f"{loaded.path}: no tokenizer next to the weights "
            "(expected spiece.model, 30k-clean.model, vocab.txt or vocab_chinese.txt)"
        )
    normalizer = None
    if loaded.format == "albert_cli":
        root = Path(loaded.path)
        assets = root if root.name == ASSETS else root / ASSETS
        normalizer = _read_normalizer(assets)
    return load_tokenizer(loaded.tokenizer, normalizer)


def tokenizer_for_model_dir(path, meta) -> Tokenizer:
    """The tokenizer of an albert-cli model directory (`meta`: its ``ModelMeta``)."""
    spec = dict(meta.tokenizer or {})
    kind = spec.get("kind", SENTENCEPIECE)
    info = TokenizerInfo(kind=kind, path=Path(path) / ASSETS / spec.get("file", default_vocab_file(kind)))
    return load_tokenizer(info, meta.normalizer)


def make_in_graph_tokenizer(tokenizer, max_seq_length: int = 512, signatures: bool = True, windows=None):
    """The in-graph (TensorFlow) tokenizer matching `tokenizer` (same ids), for SavedModel export.

    Both kinds are called as ``tok(texts)`` / ``tok(texts, pairs)`` -> dict of int32
    ``token_ids`` / ``segment_ids`` / ``padding_mask``; ``signatures=False`` leaves out
    their standalone ``call_single`` / ``call_pair`` / ``encode_ids`` functions. With `windows` (a
    ``WindowSpec``), ``tok(texts)`` gives each text's ``[W, L]`` windows (``albert_cli.text.tf_windows``).
    """
    # TensorFlow-importing modules, hence imported here.
    if isinstance(tokenizer, WordPieceTokenizer):
        from albert_cli.text.tf_wordpiece import TFWordPieceTokenizer

        tf_tok = TFWordPieceTokenizer(
            tokenizer.vocab, lower_case=tokenizer.do_lower_case, max_seq_length=max_seq_length, signatures=signatures
        )
    else:
        from albert_cli.text.tf_tokenizer import make_tf_tokenizer

        tf_tok = make_tf_tokenizer(tokenizer.serialized_model(), tokenizer.normalizer, max_seq_length,
                                   signatures=signatures)
    if windows is None:
        return tf_tok
    from albert_cli.text.tf_windows import WindowedTokenizer

    return WindowedTokenizer(tf_tok, max_seq_length, windows)
