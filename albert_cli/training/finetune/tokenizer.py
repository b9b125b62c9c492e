"""The vocabulary of a fine-tuning run: the --init checkpoint's, --tokenizer, or one trained on the data.

It is stored in ``OUT.partial/assets``: ``spiece.model`` with its normalizer in ``spiece.json``, or a WordPiece
``vocab.txt`` with ``tokenizer.json``. A resumed run reads back what the interrupted one chose.
"""

from __future__ import annotations

import itertools
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from albert_cli.console import info
from albert_cli.text.constants import SENTENCEPIECE, SPIECE_MODEL, TOKENIZER_META, VOCAB_TXT, WORDPIECE
from albert_cli.text.normalize import NormalizerOptions
from albert_cli.text.spm import SentencePieceTokenizer, train_sentencepiece, write_sidecar
from albert_cli.text.tokenizers import tokenizer_for_pretrained
from albert_cli.text.wordpiece import WordPieceTokenizer
from albert_cli.training.finetune.options import FinetuneOptions
from albert_cli.training.tapt import iter_unlabeled_texts

DEFAULT_VOCAB_SIZE = 8000
SPM_SPEC = {"kind": SENTENCEPIECE, "file": SPIECE_MODEL}
WORDPIECE_SPEC = {"kind": WORDPIECE, "file": VOCAB_TXT}


@dataclass(frozen=True)
class TokenizerChoice:
    """The tokenizer, how the model directory names it (``spec``) and its text normalizer."""

    tokenizer: object
    spec: dict
    normalizer: NormalizerOptions

    @property
    def is_sentencepiece(self) -> bool:
        return self.spec["kind"] == SENTENCEPIECE


def prepare_tokenizer(o: FinetuneOptions, pretrained, assets: Path, texts) -> TokenizerChoice:
    """Put the run's vocabulary into `assets` (unless a resumed run has it already) and load it.

    Args:
        o: the options (--tokenizer, --vocab-size, --unlabeled, --resume).
        pretrained: the --init checkpoint (`load_pretrained`), or None.
        assets: ``OUT.partial/assets``.
        texts: the training texts (and pairs), for a new vocabulary.
    """
    assets.mkdir(parents=True, exist_ok=True)
    target = assets / SPIECE_MODEL
    chosen = o.resume and (target.exists() or (assets / VOCAB_TXT).exists())
    if not chosen and pretrained is not None:
        tok = tokenizer_for_pretrained(pretrained)  # SentencePiece or WordPiece, as the checkpoint has
        if pretrained.tokenizer.kind == WORDPIECE:
            shutil.copyfile(pretrained.tokenizer.path, assets / VOCAB_TXT)
            normalizer = NormalizerOptions(lowercase=tok.do_lower_case, strip_accents=tok.do_lower_case)
            (assets / TOKENIZER_META).write_text(json.dumps({**WORDPIECE_SPEC, "normalizer": normalizer.to_dict()}))
            return TokenizerChoice(tok, WORDPIECE_SPEC, normalizer)
        shutil.copyfile(pretrained.tokenizer.path, target)
        write_sidecar(target, tok.normalizer, source=str(o.init))
    elif not chosen and o.tokenizer:
        given = SentencePieceTokenizer.from_file(o.tokenizer)  # reads its PREFIX.json normalizer
        shutil.copyfile(o.tokenizer, target)
        write_sidecar(target, given.normalizer, source=str(o.tokenizer))
    elif not chosen:
        _train_vocabulary(o, assets / "spiece", list(texts))
    if (assets / VOCAB_TXT).is_file() and not target.exists():  # resuming a WordPiece run
        lower = json.loads((assets / TOKENIZER_META).read_text())["normalizer"]["lowercase"]
        tok = WordPieceTokenizer.from_file(assets / VOCAB_TXT, do_lower_case=lower)
        return TokenizerChoice(tok, WORDPIECE_SPEC, NormalizerOptions(lowercase=lower, strip_accents=lower))
    tok = SentencePieceTokenizer.from_file(target)
    return TokenizerChoice(tok, SPM_SPEC, tok.normalizer)


def _train_vocabulary(o: FinetuneOptions, prefix: Path, texts: list) -> None:
    """A SentencePiece model on the training texts (and --unlabeled); `train_sentencepiece` shrinks it, with a
    warning, when the text supports fewer pieces than --vocab-size (default 8,000)."""
    extra = list(o.unlabeled) if o.tapt_steps else []

    def source():
        return itertools.chain(texts, iter_unlabeled_texts(extra, o.text_column))

    size = o.vocab_size or DEFAULT_VOCAB_SIZE
    info(f"training a SentencePiece vocabulary ({size} pieces) on {len(texts)} texts"
         + (f" and the --unlabeled texts of {', '.join(extra)}" if extra else ""))
    train_sentencepiece(source(), prefix, vocab_size=size, seed=o.seed)  # fewer pieces, with a warning, if need be
