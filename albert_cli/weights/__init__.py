"""Checkpoint import/export for ALBERT (HF safetensors, Google TF1, albert-cli dirs).

`loader` is the user-facing entry point (`load_pretrained`, `apply_to`); `hf` and `google` read and write one
format each; `common` holds what they share. This package only re-exports their public names.
"""

from albert_cli.text.constants import SENTENCEPIECE_FILES, WORDPIECE_FILES
from albert_cli.weights.common import (
    HEAD_PREFIXES,
    POOLING_KEY,
    LoadedWeights,
    Row,
    TokenizerInfo,
    collect_weights,
    expand_table,
    find_tokenizer,
    from_canonical,
    head_of,
    to_canonical,
)
from albert_cli.weights.google import load_google_dir, save_google_checkpoint
from albert_cli.weights.hf import load_hf_dir, save_hf_dir
from albert_cli.weights.loader import apply_to, build_backbone, detect_format, load_pretrained

__all__ = [
    "HEAD_PREFIXES",
    "POOLING_KEY",
    "SENTENCEPIECE_FILES",
    "WORDPIECE_FILES",
    "LoadedWeights",
    "Row",
    "TokenizerInfo",
    "apply_to",
    "build_backbone",
    "collect_weights",
    "detect_format",
    "expand_table",
    "find_tokenizer",
    "from_canonical",
    "head_of",
    "load_google_dir",
    "load_hf_dir",
    "load_pretrained",
    "save_google_checkpoint",
    "save_hf_dir",
    "to_canonical",
]
