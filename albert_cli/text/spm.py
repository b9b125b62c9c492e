"""SentencePiece vocabularies the ALBERT way: training and Python-side tokenization.

Training follows google-research/albert's recipe for ``30k-clean.model``: a unigram model whose ids 0..4 are
``<pad> <unk> [CLS] [SEP] [MASK]``, no BOS/EOS, and a character coverage of 0.99995 (0.9995 for CJK-heavy text).
Texts are normalized with :func:`albert_cli.text.normalize.normalize_text` first, and the options are recorded in
the ``PREFIX.json`` sidecar so that encoding uses the same normalization.

Tokenization reproduces Hugging Face 4.x ``AlbertTokenizer._tokenize`` (with its digit-comma re-split), except
that special tokens written in the raw text are ordinary text here (as in google-research/albert).
"""

from __future__ import annotations

import itertools
import json
import os
import random
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

from albert_cli.console import progress as make_progress
from albert_cli.console import warn
from albert_cli.data.readers import iter_texts
from albert_cli.errors import DataError, ModelError, UsageError
from albert_cli.text.constants import CLS, MASK, SEP, SPIECE_UNDERLINE, SPM_PAD
from albert_cli.text.normalize import NormalizerOptions, normalize_text

# sentencepiece is imported where it is used, so that importing this module (e.g. for `sidecar_path`) stays cheap.

CONTROL_SYMBOLS = (CLS, SEP, MASK)
USER_DEFINED_SYMBOLS = ("(", ")", '"', "-", ".", "\u2013", "\u00a3", "\u20ac")
CHARACTER_COVERAGE_DEFAULT = 0.99995
CHARACTER_COVERAGE_CJK = 0.9995
CJK_SHARE_THRESHOLD = 0.20
DEFAULT_INPUT_SENTENCE_SIZE = 1_000_000
MAX_SENTENCE_LENGTH = 16384  # bytes; SentencePiece's default (4192) silently drops long paragraphs
SIDECAR_VERSION = 1
SIDECAR_FORMAT = "albert-cli-sentencepiece"
SPECIAL_IDS = {"pad": 0, "unk": 1, "cls": 2, "sep": 3, "mask": 4}

_CJK_RANGES = (
    (0x3040, 0x30FF),  # hiragana, katakana
    (0x3400, 0x4DBF),  # CJK ext A
    (0x4E00, 0x9FFF),  # CJK unified
    (0xAC00, 0xD7AF),  # hangul syllables
    (0xF900, 0xFAFF),  # CJK compatibility
    (0x20000, 0x3134F),  # CJK ext B..G
)


def _is_cjk(ch: str) -> bool:
    cp = ord(ch)
    return any(lo <= cp <= hi for lo, hi in _CJK_RANGES)


def cjk_share(texts: Iterable[str]) -> float:
    """Share of non-space characters that are CJK (Chinese, Japanese kana, Hangul).

    Example:
        >>> cjk_share(["ab 中文"])
        0.5
    """
    total = cjk = 0
    for text in texts:
        for ch in text:
            if ch.isspace():
                continue
            total += 1
            if _is_cjk(ch):
                cjk += 1
    return cjk / total if total else 0.0


class VocabTooLarge(DataError):
    """The data cannot support the requested vocabulary; `max_size` is what it can."""

    def __init__(self, message: str, max_size: int):
        super().__init__(message)
        self.max_size = max_size


def write_sidecar(model_path: str | os.PathLike, normalizer: NormalizerOptions, **extra) -> Path:
    """Record the normalizer next to a model copied from elsewhere (``PREFIX.json``).

    Args:
        model_path: the ``PREFIX.model`` file.
        normalizer: the normalization to record.
        **extra: further top-level keys of the sidecar.
    """
    side = sidecar_path(model_path)
    data = {"format": SIDECAR_FORMAT, "version": SIDECAR_VERSION, "normalizer": normalizer.to_dict(), **extra}
    side.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return side


def sidecar_path(model_path: str | os.PathLike) -> Path:
    """``PREFIX.model`` -> ``PREFIX.json``."""
    p = Path(model_path)
    return p.with_suffix(".json") if p.suffix == ".model" else Path(str(p) + ".json")


# --------------------------------------------------------------------------- training


def _iter_inputs(inputs, fmt: str | None, text_column: str) -> Iterator[str]:
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    items = list(inputs) if isinstance(inputs, (list, tuple)) else None
    if items is not None and all(isinstance(x, (str, os.PathLike)) for x in items) and items:
        # Paths. (A list of plain strings is always treated as paths; pass an
        # iterator/generator to train on texts directly.)
        for path in items:
            yield from iter_texts(path, fmt=fmt, text_column=text_column)
    else:
        for text in items if items is not None else inputs:
            yield text


def _reservoir(lines: Iterable[str], size: int, seed: int, on_line: Callable[[int], None] | None):
    """Uniform sample of at most `size` lines from a stream (Algorithm R). Returns (sample, n_seen)."""
    rng = random.Random(seed)
    sample: list[str] = []
    n = 0
    for line in lines:
        n += 1
        if len(sample) < size:
            sample.append(line)
        else:
            j = rng.randrange(n)
            if j < size:
                sample[j] = line
        if on_line is not None and n % 10000 == 0:
            on_line(n)
    if on_line is not None:
        on_line(n)
    return sample, n


_TOO_SMALL = re.compile(r"smaller than required_chars\. (\d+) vs (\d+)")
_TOO_HIGH = re.compile(r"Vocabulary size (?:is )?too high \((\d+)\).*?<=\s*(\d+)", re.S)


def _output_dir(prefix: Path, vocab_size: int, input_sentence_size: int, character_coverage: float | None) -> Path:
    """Check the options; the directory the files go to."""
    if vocab_size < 10:
        raise UsageError(f"--vocab-size must be at least 10, got {vocab_size}")
    if input_sentence_size < 1:
        raise UsageError(f"--input-sentence-size must be positive, got {input_sentence_size}")
    if character_coverage is not None and not (0.9 <= character_coverage <= 1.0):
        raise UsageError(f"--character-coverage must be between 0.9 and 1.0, got {character_coverage}")
    out_dir = prefix.parent if str(prefix.parent) else Path(".")
    if not out_dir.is_dir():
        raise DataError(f"{out_dir}: output directory does not exist")
    if not os.access(out_dir, os.W_OK):
        raise DataError(f"{out_dir}: output directory is not writable")
    return out_dir


def _read_sample(inputs, normalizer, fmt, text_column, input_sentence_size, seed, progress):
    """Normalized non-blank texts, reservoir-sampled. Returns (sample, n_seen, callback for later events)."""
    bar = None
    callback = progress if callable(progress) else None
    if progress is True:
        bar = make_progress(transient=True)
        bar.start()
        task = bar.add_task("reading", total=None, status="")

        def callback(event, info):  # noqa: F811
            if event == "read":
                bar.update(task, completed=info["lines"], status=f"{info['lines']:,} lines")

    try:
        texts = (normalize_text(t, normalizer) for t in _iter_inputs(inputs, fmt, text_column))
        texts = (t for t in texts if t)
        on_line = (lambda n: callback("read", {"lines": n})) if callback else None
        sample, n_seen = _reservoir(texts, input_sentence_size, seed, on_line)
    finally:
        if bar is not None:
            bar.stop()
    if not sample:
        names = ", ".join(str(p) for p in inputs) if isinstance(inputs, (list, tuple)) else "input"
        raise DataError(f"{names}: no text to train on (all lines are empty)")
    return sample, n_seen, callback


def _trainer_settings(vocab_size, character_coverage, input_sentence_size, seed) -> dict:
    """The SentencePiece trainer flags of ALBERT's recipe (also recorded in the sidecar)."""
    return {
        "model_type": "unigram",
        "vocab_size": vocab_size,
        "character_coverage": character_coverage,
        "input_sentence_size": input_sentence_size,
        "seed": seed,
        "pad_id": SPECIAL_IDS["pad"],
        "unk_id": SPECIAL_IDS["unk"],
        "bos_id": -1,
        "eos_id": -1,
        "control_symbols": list(CONTROL_SYMBOLS),
        "user_defined_symbols": list(USER_DEFINED_SYMBOLS),
        "shuffle_input_sentence": True,
        "max_sentence_length": MAX_SENTENCE_LENGTH,
    }


def _training_error(exc: RuntimeError, vocab_size: int, n_sample: int) -> DataError:
    """SentencePiece's trainer error as a one-line DataError that says which --vocab-size would work."""
    msg = " ".join(str(exc).split())
    m = _TOO_HIGH.search(msg)
    if m:
        # caught by _train_fitting, which trains again with fewer pieces
        return VocabTooLarge(f"--vocab-size {vocab_size} is too large for this data ({n_sample:,} lines): "
                             f"it supports at most {m.group(2)} pieces", max_size=int(m.group(2)))
    m = _TOO_SMALL.search(msg)
    if m:
        return DataError(
            f"--vocab-size {vocab_size} is too small for this data: it needs at least {m.group(2)} pieces "
            f"for its characters and the special symbols; use --vocab-size {m.group(2)} or more, "
            f"or a lower --character-coverage"
        )
    return DataError(f"SentencePiece training failed: {msg}")


def _train(sentences: Iterable[str], n_sample: int, model_prefix: Path, settings: dict, num_threads) -> None:
    """Run SentencePiece's trainer on `sentences` (`n_sample` of them, for messages)."""
    import sentencepiece as spm

    spm.set_random_generator_seed(settings["seed"])
    flags = {key: value for key, value in settings.items() if key != "seed"}
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences),
            model_prefix=str(model_prefix),
            num_threads=num_threads or max(1, os.cpu_count() or 1),
            minloglevel=0 if os.environ.get("ALBERT_DEBUG") else 2,
            **flags,
        )
    except RuntimeError as exc:
        raise _training_error(exc, settings["vocab_size"], n_sample) from None


def fitting_vocab_size(max_size: int) -> int:
    """The size used when the text supports only `max_size` pieces (`tokenize train` and `finetune` alike): a
    tenth below it, since the maximum keeps every piece however rare; at least 100 when the text allows."""
    return max(min(100, max_size), int(max_size * 0.9))


def _drain_to(sample: list[str], spill: Path) -> Iterator[str]:
    """Empty `sample` (the trainer keeps its own copy) while saving it as JSON lines, for a second training."""
    with open(spill, "w", encoding="utf-8") as out:
        while sample:
            text = sample.pop()
            out.write(json.dumps(text, ensure_ascii=False) + "\n")
            yield text


def _train_fitting(sample: list[str], tmp: Path, settings: dict, num_threads: int | None) -> dict:
    """Train into ``tmp/spm``; when the text cannot support the vocabulary size asked for, warn and train once
    more with `fitting_vocab_size`. Returns the settings used."""
    n_sample = len(sample)
    spill = tmp / "sample.jsonl"
    sentences = _drain_to(sample, spill)
    try:
        _train(sentences, n_sample, tmp / "spm", settings, num_threads)
    except VocabTooLarge as exc:
        sentences.close()
        size = fitting_vocab_size(exc.max_size)
        warn(
            f"the text ({n_sample:,} lines) supports at most {exc.max_size:,} pieces, fewer than the "
            f"{settings['vocab_size']:,} asked for: using {size:,}"
        )
        settings = {**settings, "vocab_size": size}
        with open(spill, encoding="utf-8") as saved:  # the same texts in the same order, then any not reached
            _train(itertools.chain(map(json.loads, saved), reversed(sample)), n_sample, tmp / "spm", settings,
                   num_threads)
    finally:
        spill.unlink(missing_ok=True)
    return settings


def _publish(tmp: Path, prefix: Path) -> dict[str, Path]:
    """Move ``spm.{vocab,json,model}`` from `tmp` to ``PREFIX.*``, the model last."""
    paths = {"model": Path(f"{prefix}.model"), "vocab": Path(f"{prefix}.vocab"), "sidecar": Path(f"{prefix}.json")}
    for kind in ("vocab", "sidecar", "model"):  # model last: a `.model` with a stale sidecar is worse than the reverse
        os.replace(tmp / f"spm{paths[kind].suffix}", paths[kind])
    return paths


def train_sentencepiece(
    inputs,
    prefix: str | os.PathLike,
    vocab_size: int = 30000,
    normalizer: NormalizerOptions = NormalizerOptions(),
    input_sentence_size: int = DEFAULT_INPUT_SENTENCE_SIZE,
    character_coverage: float | None = None,
    seed: int = 12345,
    progress: bool | Callable[[str, dict], None] = False,
    fmt: str | None = None,
    text_column: str = "text",
    num_threads: int | None = None,
) -> dict[str, Path]:
    """Train an ALBERT-style unigram SentencePiece model; returns ``{"model", "vocab", "sidecar"}`` paths.

    Args:
        inputs: a path, a list of paths (txt/csv/tsv/jsonl, read with
            ``albert_cli.data.readers.iter_texts``), or an iterator of texts. Lines are streamed; when there
            are more than `input_sentence_size` non-blank texts, a uniform reservoir sample of that many is used.
        prefix: writes ``PREFIX.model``, ``PREFIX.vocab`` and ``PREFIX.json`` (replacing them).
        vocab_size: pieces, the 5 special ones included. When the text supports fewer, a warning on stderr and
            `fitting_vocab_size` of what it supports (the sidecar records the size used).
        character_coverage: None picks 0.99995, or 0.9995 when more than 20% of the sampled characters are CJK.
        progress: True shows a rich progress bar on stderr; a callable receives
            ``(event, info)``: (``"read"``, ``{"lines": n}``) and (``"train"``, ``{...}``).

    Example:
        >>> paths = train_sentencepiece("corpus.txt", "out/spm", vocab_size=8000)  # doctest: +SKIP
    """
    prefix = Path(prefix)
    out_dir = _output_dir(prefix, vocab_size, input_sentence_size, character_coverage)
    t0 = time.time()
    sample, n_seen, callback = _read_sample(inputs, normalizer, fmt, text_column, input_sentence_size, seed, progress)
    share = cjk_share(sample[:: max(1, len(sample) // 20000)])
    if character_coverage is None:
        character_coverage = CHARACTER_COVERAGE_CJK if share > CJK_SHARE_THRESHOLD else CHARACTER_COVERAGE_DEFAULT
    settings = _trainer_settings(vocab_size, character_coverage, input_sentence_size, seed)
    if callback:
        callback("train", {"sentences": len(sample), "seen": n_seen, "cjk_share": share, **settings})
    n_sample = len(sample)
    tmp = Path(tempfile.mkdtemp(prefix=f".{prefix.name}.", suffix=".tmp", dir=out_dir))
    try:
        settings = _train_fitting(sample, tmp, settings, num_threads)
        sidecar = {
            "format": SIDECAR_FORMAT,
            "version": SIDECAR_VERSION,
            "normalizer": normalizer.to_dict(),
            "training": {**settings, "sentences": n_sample, "lines_seen": n_seen, "cjk_share": round(share, 4)},
            "special_ids": dict(SPECIAL_IDS),
            "seconds": round(time.time() - t0, 2),
        }
        (tmp / "spm.json").write_text(json.dumps(sidecar, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return _publish(tmp, prefix)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------- tokenizer


class SentencePieceTokenizer:
    """ALBERT tokenization with a SentencePiece model (HF 4.x ``AlbertTokenizer`` semantics).

    Args:
        processor: a loaded ``sentencepiece.SentencePieceProcessor``.
        normalizer: the text normalization applied before SentencePiece.
        path: where the model came from (for messages).

    Example:
        >>> tok = SentencePieceTokenizer.from_file("spm.model")  # doctest: +SKIP
        >>> tok.encode("Hello, World!")  # doctest: +SKIP
    """

    def __init__(self, processor, normalizer: NormalizerOptions, path: str | None = None):
        self._sp = processor
        self.normalizer = normalizer
        self.path = path

    # -- loading
    @classmethod
    def from_file(cls, model_path: str | os.PathLike, normalizer: NormalizerOptions | None = None):
        """Load ``PREFIX.model``; without `normalizer`, read ``PREFIX.json`` if present, else ALBERT defaults."""
        p = Path(model_path)
        if not p.exists():
            raise ModelError(f"{p}: no such SentencePiece model file")
        if p.is_dir():
            raise ModelError(f"{p}: is a directory, expected a SentencePiece .model file")
        try:
            data = p.read_bytes()
        except OSError as exc:
            raise ModelError(f"{p}: cannot read ({exc.strerror})") from None
        tok = cls.from_bytes(data, normalizer=normalizer, name=str(p))
        if normalizer is None:
            side = sidecar_path(p)
            if side.is_file():
                try:
                    meta = json.loads(side.read_text(encoding="utf-8"))
                    tok.normalizer = NormalizerOptions.from_dict(meta.get("normalizer"))
                except (ValueError, AttributeError, UnicodeDecodeError) as exc:
                    raise ModelError(f"{side}: not a valid tokenizer sidecar ({exc})") from None
        return tok

    @classmethod
    def from_bytes(cls, data: bytes, normalizer: NormalizerOptions | None = None, name: str = "<bytes>"):
        """Load a serialized model proto (`name` is used in messages); ALBERT's normalizer unless given."""
        import sentencepiece as spm

        sp = spm.SentencePieceProcessor()
        try:
            if not data:
                raise ValueError("empty")
            sp.LoadFromSerializedProto(data)
            ok = sp.GetPieceSize() > 0
        except Exception:
            ok = False
        if not ok:
            raise ModelError(f"{name}: not a SentencePiece model")
        return cls(sp, normalizer or NormalizerOptions(), path=name)

    # -- vocabulary
    @property
    def vocab_size(self) -> int:
        """The number of pieces."""
        return self._sp.GetPieceSize()

    def __len__(self) -> int:
        return self.vocab_size

    def id_to_piece(self, index: int) -> str:
        """The piece of `index` (IndexError outside the vocabulary)."""
        if not 0 <= int(index) < self.vocab_size:
            raise IndexError(f"token id {index} out of range [0, {self.vocab_size})")
        return self._sp.IdToPiece(int(index))

    def piece_to_id(self, piece: str) -> int:
        """Id of `piece`, or the unk id when the vocabulary lacks it."""
        return self._sp.PieceToId(piece)

    def _special(self, piece: str) -> int:
        i = self._sp.PieceToId(piece)
        if self._sp.IdToPiece(i) != piece:
            raise ModelError(
                f"{self.path}: SentencePiece model has no '{piece}' piece; "
                "train it with 'albert tokenize train' (ALBERT special symbols)"
            )
        return i

    @property
    def pad_id(self) -> int:
        """Id of ``<pad>`` (special ids: a ModelError when the model lacks the piece)."""
        return self._special(SPM_PAD)

    @property
    def unk_id(self) -> int:
        return self._sp.unk_id()

    @property
    def cls_id(self) -> int:
        return self._special(CLS)

    @property
    def sep_id(self) -> int:
        return self._special(SEP)

    @property
    def mask_id(self) -> int:
        return self._special(MASK)

    def serialized_model(self) -> bytes:
        """The model proto bytes (for ``tensorflow_text.SentencepieceTokenizer(model=...)``)."""
        return self._sp.serialized_model_proto()

    # -- tokenization
    def preprocess(self, text: str) -> str:
        """`text` normalized as SentencePiece sees it."""
        return normalize_text(text, self.normalizer)

    def tokenize(self, text: str) -> list[str]:
        """Pieces, as HF 4.x ``AlbertTokenizer._tokenize`` (with the digit-comma re-split)."""
        sp = self._sp
        pieces = sp.EncodeAsPieces(self.preprocess(text))
        out: list[str] = []
        for piece in pieces:
            if len(piece) > 1 and piece[-1] == "," and piece[-2].isdigit():
                # `9,9` -> ['▁9', ',', '9'] instead of ['▁9,', '9'] (google-research/bert README)
                cur = sp.EncodeAsPieces(piece[:-1].replace(SPIECE_UNDERLINE, ""))
                if piece[0] != SPIECE_UNDERLINE and cur and cur[0][0] == SPIECE_UNDERLINE:
                    if len(cur[0]) == 1:
                        cur = cur[1:]
                    else:
                        cur[0] = cur[0][1:]
                cur.append(piece[-1])
                out.extend(cur)
            else:
                out.append(piece)
        return out

    def encode(self, text: str) -> list[int]:
        """Token ids without [CLS]/[SEP]."""
        return [self._sp.PieceToId(p) for p in self.tokenize(text)]

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """`encode` of each text."""
        return [self.encode(t) for t in texts]

    def decode(self, ids: Sequence[int]) -> str:
        """Text of `ids` (SentencePiece's detokenization)."""
        return self._sp.DecodeIds([int(i) for i in ids])
